package vrrp

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// simNode is one router on the simulated segment: a Machine plus the
// effects its actions would have had on a real host.
type simNode struct {
	cfg     Config
	m       *Machine
	crashed bool // not stepped; receives nothing

	holdsVIP, listening, stopped bool
	announces                    []time.Time
	transitions                  []simTransition
}

type simTransition struct {
	at       time.Time
	from, to State
	reason   string
}

type simDelivery struct {
	at  time.Time
	seq uint64
	to  int
	ev  AdvertReceived
}

// simNet is an in-memory network of machines in the style of etcd-io/raft's
// network: SendAdvert actions reach every other node after delay unless the
// link is cut or drop says so, and a simulated clock drives every machine's
// deadline. Nothing sleeps; a run of minutes takes microseconds.
type simNet struct {
	t     *testing.T
	now   time.Time
	nodes []*simNode
	delay time.Duration
	cut   map[[2]int]bool                            // directed from -> to
	drop  func(from, to int, ev AdvertReceived) bool // optional
	queue []simDelivery                              // sorted by (at, seq)
	seq   uint64
	heard map[[2]int]time.Time // (from, to) -> last delivery

	// noGap: once any node held the VIP, after every event at least one
	// node must hold it (DESIGN.md section 4: make before break).
	noGap bool
}

const simMaxEvents = 100_000

func newSimNet(t *testing.T, delay time.Duration, cfgs ...Config) *simNet {
	t.Helper()
	n := &simNet{t: t, now: t0, delay: delay, cut: map[[2]int]bool{}, heard: map[[2]int]time.Time{}}
	for _, cfg := range cfgs {
		n.nodes = append(n.nodes, &simNode{cfg: cfg, m: newMachine(t, cfg)})
	}
	return n
}

// simConfigs returns configs for nodes 10.0.0.1, .2, ... with the given
// priorities and a 200ms interval (vipd's default).
func simConfigs(prios ...uint8) []Config {
	var cfgs []Config
	for i, p := range prios {
		cfgs = append(cfgs, Config{
			VRID: 51, Priority: p, AdvertInterval: 200 * time.Millisecond, Preempt: true,
			Addr:            netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}),
			LowerPrioRounds: 1, LowerPrioEvery: 5 * time.Second,
		})
	}
	return cfgs
}

func (n *simNet) startAll() {
	for i := range n.nodes {
		n.step(i, Start{})
	}
}

// step feeds one event to node i at the current simulated time.
func (n *simNet) step(i int, ev Event) {
	nd := n.nodes[i]
	if nd.crashed || nd.stopped {
		return
	}
	for _, a := range nd.m.Step(n.now, ev) {
		switch a.Kind {
		case ActionTransition:
			nd.transitions = append(nd.transitions, simTransition{n.now, a.From, a.To, a.Reason})
		case ActionListen:
			nd.listening = true
		case ActionAddVIP:
			nd.holdsVIP = true
		case ActionAnnounce:
			nd.announces = append(nd.announces, n.now)
		case ActionSendAdvert:
			n.broadcast(i, a.Priority)
		case ActionRemoveVIP:
			nd.holdsVIP = false
		case ActionUnlisten:
			nd.listening = false
		case ActionStopped:
			nd.stopped = true
		}
	}
	if nd.holdsVIP && !nd.listening {
		n.t.Errorf("t0%+v: %v holds the VIP with no listener", n.now.Sub(t0), nd.cfg.Addr)
	}
}

func (n *simNet) broadcast(from int, prio uint8) {
	ev := AdvertReceived{From: n.nodes[from].cfg.Addr, Priority: prio, Interval: n.nodes[from].cfg.AdvertInterval}
	for to := range n.nodes {
		if to == from || n.cut[[2]int{from, to}] || (n.drop != nil && n.drop(from, to, ev)) {
			continue
		}
		n.seq++
		n.queue = append(n.queue, simDelivery{at: n.now.Add(n.delay), seq: n.seq, to: to, ev: ev})
	}
	slices.SortStableFunc(n.queue, func(a, b simDelivery) int { return a.at.Compare(b.at) })
}

// runFor advances the clock by d, delivering adverts and timers in time
// order (an advert before a timer due at the same instant).
func (n *simNet) runFor(d time.Duration) {
	n.t.Helper()
	end := n.now.Add(d)
	for range simMaxEvents {
		next, node, isTimer := time.Time{}, -1, false
		if len(n.queue) > 0 {
			next, node = n.queue[0].at, n.queue[0].to
		}
		for i, nd := range n.nodes {
			if nd.crashed || nd.stopped {
				continue
			}
			if at, _ := nd.m.Deadline(); !at.IsZero() && (node < 0 || at.Before(next)) {
				next, node, isTimer = at, i, true
			}
		}
		if node < 0 || next.After(end) {
			n.now = end
			return
		}
		if next.After(n.now) {
			n.now = next
		}
		if isTimer {
			_, gen := n.nodes[node].m.Deadline()
			n.step(node, TimerFired{Gen: gen})
		} else {
			dl := n.queue[0]
			n.queue = n.queue[1:]
			if !n.nodes[dl.to].crashed {
				n.heard[[2]int{n.indexOf(dl.ev.From), dl.to}] = n.now
			}
			n.step(dl.to, dl.ev)
		}
		n.checkVIP()
	}
	n.t.Fatalf("more than %d events before t0%+v", simMaxEvents, end.Sub(t0))
}

func (n *simNet) indexOf(a netip.Addr) int {
	for i, nd := range n.nodes {
		if nd.cfg.Addr == a {
			return i
		}
	}
	return -1
}

func (n *simNet) checkVIP() {
	if !n.noGap {
		return
	}
	for _, nd := range n.nodes {
		if nd.holdsVIP && !nd.crashed {
			return
		}
	}
	n.t.Errorf("t0%+v: nobody holds the VIP", n.now.Sub(t0))
	n.noGap = false // one report is enough
}

// crash stops stepping node i; its VIP dies with the host.
func (n *simNet) crash(i int) {
	nd := n.nodes[i]
	nd.crashed, nd.holdsVIP, nd.listening = true, false, false
}

// restart boots node i afresh with cfg.
func (n *simNet) restart(i int, cfg Config) {
	n.nodes[i] = &simNode{cfg: cfg, m: newMachine(n.t, cfg)}
	n.step(i, Start{})
}

func (n *simNet) cutLink(a, b int) { n.cut[[2]int{a, b}], n.cut[[2]int{b, a}] = true, true }

func (n *simNet) isolate(i int) {
	for j := range n.nodes {
		if j != i {
			n.cutLink(i, j)
		}
	}
}

func (n *simNet) heal() { clear(n.cut) }

// masters returns the live nodes in MASTER state.
func (n *simNet) masters() []int {
	var out []int
	for i, nd := range n.nodes {
		if !nd.crashed && !nd.stopped && nd.m.Status().State == StateMaster {
			out = append(out, i)
		}
	}
	return out
}

func (n *simNet) wantOnlyMaster(want int) {
	n.t.Helper()
	if got := n.masters(); !slices.Equal(got, []int{want}) {
		n.t.Fatalf("t0%+v: masters %v, want only node %d (%v)\n%s", n.now.Sub(t0), got, want, n.nodes[want].cfg.Addr, n)
	}
	for i, nd := range n.nodes {
		if i == want || nd.crashed || nd.stopped {
			continue
		}
		if nd.m.Status().State == StateFault {
			if nd.holdsVIP {
				n.t.Errorf("node %d holds the VIP in FAULT", i)
			}
			continue
		}
		if st := nd.m.Status(); st.State != StateBackup || st.MasterAddr != n.nodes[want].cfg.Addr {
			n.t.Errorf("node %d: %v following %v, want BACKUP following %v", i, st.State, st.MasterAddr, n.nodes[want].cfg.Addr)
		}
		if nd.holdsVIP {
			n.t.Errorf("node %d holds the VIP as %v", i, nd.m.Status().State)
		}
	}
	if !n.nodes[want].holdsVIP {
		n.t.Errorf("master node %d does not hold the VIP", want)
	}
}

// becameMasterAt is when node i last became MASTER.
func (n *simNet) becameMasterAt(i int) time.Time {
	n.t.Helper()
	tr := n.nodes[i].transitions
	for k := len(tr) - 1; k >= 0; k-- {
		if tr[k].to == StateMaster {
			return tr[k].at
		}
	}
	n.t.Fatalf("node %d never became MASTER", i)
	return time.Time{}
}

// String prints every node's history for failure messages.
func (n *simNet) String() string {
	var s string
	for i, nd := range n.nodes {
		s += fmt.Sprintf("node %d %v prio %d:\n", i, nd.cfg.Addr, nd.m.Status().EffectivePriority)
		for _, tr := range nd.transitions {
			s += fmt.Sprintf("  t0%+v %v->%v %s\n", tr.at.Sub(t0), tr.from, tr.to, tr.reason)
		}
	}
	return s
}

const simDelay = time.Millisecond

// elect starts nodes with prios and runs until the election settles.
func elect(t *testing.T, prios ...uint8) *simNet {
	t.Helper()
	n := newSimNet(t, simDelay, simConfigs(prios...)...)
	n.startAll()
	n.runFor(3 * time.Second)
	return n
}

// The highest priority backup's Master_Down_Timer fires first; the others
// hear its advert and stay BACKUP: exactly one master.
// Reference: RFC 9568 section 6.4.2
func TestNetworkInitialElection(t *testing.T) {
	n := elect(t, 100, 150, 50)
	n.wantOnlyMaster(1)
	mustEqualTime(t, "elected", n.becameMasterAt(1), t0.Add(downInterval(150, 200*time.Millisecond)))
	for _, i := range []int{0, 2} {
		if len(n.nodes[i].transitions) != 1 {
			t.Errorf("node %d flapped:\n%s", i, n)
		}
	}
}

// A crashed master falls silent; the next highest priority takes over
// Master_Down_Interval after the last advert it heard.
// Reference: RFC 9568 section 6.4.2
func TestNetworkMasterCrash(t *testing.T) {
	n := elect(t, 100, 150, 50)
	n.crash(1)
	n.runFor(3 * time.Second)
	n.wantOnlyMaster(0)
	last := n.heard[[2]int{1, 0}]
	mustEqualTime(t, "took over", n.becameMasterAt(0), last.Add(downInterval(100, 200*time.Millisecond)))
}

// Shutdown as MASTER: priority 0 makes the next backup take over after its
// Skew_Time, and the old master drops the VIP only once it hears the new
// master: always at least one VIP holder, never none.
// Reference: RFC 9568 section 6.4.3
func TestNetworkShutdownOverlapsNoGap(t *testing.T) {
	n := elect(t, 100, 150, 50)
	n.noGap = true
	stop := n.now
	n.step(1, Shutdown{})
	n.runFor(2 * time.Second)
	n.wantOnlyMaster(0)
	took := n.becameMasterAt(0)
	mustEqualTime(t, "took over", took, stop.Add(simDelay+skewTime(100, 200*time.Millisecond)))
	old := n.nodes[1]
	if !old.stopped || old.holdsVIP {
		t.Fatalf("old master stopped=%v holdsVIP=%v", old.stopped, old.holdsVIP)
	}
	released := old.transitions[len(old.transitions)-1]
	if released.to != StateInit || !released.at.After(took) {
		t.Errorf("old master released at t0%+v, new master took over at t0%+v: want overlap", released.at.Sub(t0), took.Sub(t0))
	}
	mustEqualTime(t, "released", released.at, took.Add(simDelay))
}

// "the priority is equal and the primary IPvX address of the sender is
// greater than the local primary IPvX address": the highest address wins a
// tie.
// Reference: RFC 9568 section 6.4.3
func TestNetworkEqualPrioritiesHigherAddressWins(t *testing.T) {
	cfgs := simConfigs(100, 100, 100)
	cfgs[0].Addr, cfgs[1].Addr, cfgs[2].Addr = addrB, addrC, addrA
	n := newSimNet(t, simDelay, cfgs...)
	n.startAll()
	n.runFor(3 * time.Second)
	n.wantOnlyMaster(1)
}

// A partition makes two masters; on heal the lower one yields within one
// advert interval and the winner re-announces, so hosts that followed the
// loser come back (DESIGN.md section 3).
// Reference: RFC 9568 section 6.4.3
func TestNetworkPartitionHeals(t *testing.T) {
	for _, offset := range []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond} {
		t.Run(fmt.Sprint("heal+", offset), func(t *testing.T) {
			n := elect(t, 100, 150, 50)
			n.isolate(1)
			n.runFor(2 * time.Second)
			if got := n.masters(); !slices.Equal(got, []int{0, 1}) {
				t.Fatalf("partitioned: masters %v, want [0 1]\n%s", got, n)
			}
			n.runFor(offset) // vary which master's advert crosses first
			healed := n.now
			n.heal()
			n.runFor(200*time.Millisecond + simDelay)
			n.wantOnlyMaster(1)
			ann := n.nodes[1].announces
			if len(ann) == 0 || ann[len(ann)-1].Before(healed) {
				t.Errorf("winner did not re-announce after the heal at t0%+v: %v", healed.Sub(t0), ann)
			}
		})
	}
}

// A higher priority node that comes back preempts: it discards the lower
// master's adverts and takes over when its Master_Down_Timer fires.
// Reference: RFC 9568 section 6.4.2
func TestNetworkPreemptOnReturn(t *testing.T) {
	n := elect(t, 100, 150, 50)
	n.crash(1)
	n.runFor(2 * time.Second)
	n.wantOnlyMaster(0)
	n.noGap = true
	back := n.now
	n.restart(1, n.nodes[1].cfg)
	n.runFor(2 * time.Second)
	n.wantOnlyMaster(1)
	mustEqualTime(t, "preempted", n.becameMasterAt(1), back.Add(downInterval(150, 200*time.Millisecond)))
}

// With Preempt_Mode false the returning higher priority node follows the
// lower priority master.
// Reference: RFC 9568 section 6.4.2
func TestNetworkNoPreempt(t *testing.T) {
	n := elect(t, 100, 150, 50)
	n.crash(1)
	n.runFor(2 * time.Second)
	cfg := n.nodes[1].cfg
	cfg.Preempt = false
	n.restart(1, cfg)
	n.runFor(10 * time.Second)
	n.wantOnlyMaster(0)
}

// A failing tracker lowers the master's priority below a backup's: the
// backup preempts and the VIP moves with no gap (DESIGN.md section 4).
// Reference: RFC 9568 section 6.4.2
func TestNetworkTrackerMovesVIPWithoutGap(t *testing.T) {
	n := elect(t, 100, 150, 50)
	n.noGap = true
	prio, fault, reason := EffectivePriority(150, []TrackerState{{Name: "apiserver", Weight: -60}})
	n.step(1, PriorityChanged{Priority: prio, Fault: fault, Reason: reason})
	n.runFor(3 * time.Second)
	n.wantOnlyMaster(0)
	if got := n.nodes[0].transitions[len(n.nodes[0].transitions)-1].reason; got != "preempting lower priority 90 from 10.0.0.2" {
		t.Errorf("takeover reason %q", got)
	}
}

// A weight-0 tracker failing on the master: priority 0, the backup takes
// over after Skew_Time, the old master keeps the VIP until it hears it,
// then sits in FAULT.
// Reference: DESIGN.md section 4
func TestNetworkFaultHandsOverWithoutGap(t *testing.T) {
	n := elect(t, 100, 150, 50)
	n.noGap = true
	prio, fault, reason := EffectivePriority(150, []TrackerState{{Name: "eth0", Weight: 0}})
	n.step(1, PriorityChanged{Priority: prio, Fault: fault, Reason: reason})
	n.runFor(3 * time.Second)
	n.wantOnlyMaster(0)
	if st := n.nodes[1].m.Status().State; st != StateFault {
		t.Errorf("old master in %v, want FAULT", st)
	}
}

// A lossy segment: with one advert in three lost, three in a row are never
// lost, so the backups never time out and nobody flaps.
// Reference: RFC 9568 section 6.1
func TestNetworkLossyLinkNoFlap(t *testing.T) {
	n := elect(t, 100, 150, 50)
	count := 0
	n.drop = func(from, to int, ev AdvertReceived) bool {
		count++
		return count%3 == 0
	}
	n.runFor(time.Minute)
	n.wantOnlyMaster(1)
	for i, nd := range n.nodes {
		if len(nd.transitions) > 2 {
			t.Errorf("node %d flapped:\n%s", i, n)
		}
	}
}

// vipd's rule: with three nodes, the master's process gone and both
// backups told so at the same instant (each by its own liveness
// connection), the higher priority's GoneSkew runs out first; the other
// hears its advert before its own timer and stays BACKUP. Exactly one
// takeover, by the best backup, long before Master_Down_Interval.
func TestNetworkMasterGoneThreeNodes(t *testing.T) {
	n := elect(t, 100, 150, 50)
	crashedAt := n.now.Add(37 * time.Millisecond) // any phase of the advert timer
	n.runFor(37 * time.Millisecond)
	n.crash(1)
	for _, i := range []int{0, 2} {
		n.step(i, MasterGone{From: n.nodes[1].cfg.Addr})
	}
	n.runFor(3 * time.Second)
	n.wantOnlyMaster(0)
	mustEqualTime(t, "took over", n.becameMasterAt(0), crashedAt.Add(GoneSkew(3, 100, 200*time.Millisecond)))
	if tr := n.nodes[2].transitions; len(tr) != 1 {
		t.Errorf("the priority 50 backup moved too:\n%s", n)
	}
	if margin := GoneSkew(3, 50, 200*time.Millisecond) - GoneSkew(3, 100, 200*time.Millisecond); margin < 5*time.Millisecond {
		t.Errorf("priorities 100 and 50 are only %v apart at 200 ms adverts", margin)
	}
}
