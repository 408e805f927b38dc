package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/liveness"
	"github.com/vipd/vipd/vrrp"
)

// Two daemons on the bus: the master holds the VIP, listens and announced;
// Shutdown hands over with priority 0 and the old master drops everything
// and stops.
func TestDaemonElectionAndHandover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := startNode(t, b, "lb1", baseConfig(""))
		settle(time.Second)
		n1.mustState("MASTER")
		n2 := startNode(t, b, "lb2", baseConfig(""))
		settle(time.Second)
		n2.mustState("BACKUP")
		if !n1.addrs.has(vip) || n2.addrs.has(vip) {
			t.Fatalf("VIP: lb1 %v lb2 %v, want only lb1", n1.addrs.has(vip), n2.addrs.has(vip))
		}
		if !n1.px.isListening("kubernetes") || n2.px.isListening("kubernetes") {
			t.Fatal("want only lb1 listening")
		}
		if n1.ann.count() == 0 {
			t.Error("the master sent no gratuitous ARP")
		}
		in := n2.d.Status().Instances[0]
		if in.MasterAddr != "10.99.0.11" || len(in.Senders) != 1 || in.Senders[0].Checksum != "pseudo-header" || in.Senders[0].Name != "lb1" {
			t.Errorf("backup status %+v", in)
		}

		n1.d.Shutdown()
		settle(time.Second)
		if ok, err := n1.stopped(); !ok || err != nil {
			t.Fatalf("lb1 after Shutdown: stopped %v, err %v", ok, err)
		}
		n2.mustState("MASTER")
		if n1.addrs.has(vip) || !n2.addrs.has(vip) {
			t.Errorf("after handover VIP: lb1 %v lb2 %v", n1.addrs.has(vip), n2.addrs.has(vip))
		}
		if n1.px.isListening("kubernetes") {
			t.Error("lb1 still listening after it stopped")
		}
		if r := n2.d.Status().Instances[0].Recent[0].Reason; !strings.Contains(r, "priority 0") {
			t.Errorf("takeover reason %q, want the priority-0 advert", r)
		}
	})
}

// Defect 2: a stop requested while the daemon is starting is honoured: the
// node never claims the VIP, even as the address owner.
func TestDaemonStopDuringStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		owner := strings.Replace(baseConfig(""), "priority = 150", "priority = 255", 1)
		n := newNode(t, b, "lb1", owner)
		n.d.Shutdown() // before Run: SIGTERM while starting
		n.start()
		settle(time.Second)
		if ok, err := n.stopped(); !ok || err != nil {
			t.Fatalf("stopped %v err %v, want a clean exit", ok, err)
		}
		if n.addrs.has(vip) || n.px.isListening("kubernetes") {
			t.Error("the owner took the VIP although it was asked to stop before it started")
		}
		if n.ann.count() != 0 {
			t.Error("it announced the VIP")
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// Right after Run started, as BACKUP, before any election.
		b := newBus()
		n := startNode(t, b, "lb2", baseConfig(""))
		n.d.Shutdown()
		settle(5 * time.Second)
		if ok, _ := n.stopped(); !ok {
			t.Fatal("a node stopped during start went on running")
		}
		if n.addrs.has(vip) {
			t.Error("it took the VIP after the stop")
		}
	})
}

// An interface tracker with weight -60 drops lb1 (150) below lb2 (100);
// the VIP moves; the link back moves it back.
func TestDaemonInterfaceTrackerMovesVIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		tr := "\n[[track]]\nname = \"uplink\"\ntype = \"interface\"\ninterface = \"eth1\"\nweight = -60\n"
		n1 := startNode(t, b, "lb1", baseConfig(tr))
		n1.link <- true
		settle(time.Second)
		n1.mustState("MASTER")
		n2 := startNode(t, b, "lb2", baseConfig(tr))
		n2.link <- true
		settle(time.Second)
		n2.mustState("BACKUP")
		n1.link <- false
		settle(time.Second)
		n2.mustState("MASTER")
		n1.mustState("BACKUP")
		if got := n1.d.Status().Instances[0].EffectivePriority; got != 90 {
			t.Errorf("lb1 effective priority %d, want 90", got)
		}
		if n1.addrs.has(vip) || !n2.addrs.has(vip) {
			t.Errorf("VIP: lb1 %v lb2 %v, want lb2", n1.addrs.has(vip), n2.addrs.has(vip))
		}
		n1.link <- true
		settle(time.Second)
		n1.mustState("MASTER")
		n2.mustState("BACKUP")
	})
}

// Defect 3: reloading a changed tracker keeps its last verdict until the
// new check reports, so a backup held down by a failing check does not
// preempt (and hand back) on every reload.
func TestDaemonReloadKeepsChangedTrackerVerdict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		tr := func(w int) string {
			return "\n[[track]]\nname = \"uplink\"\ntype = \"interface\"\ninterface = \"eth1\"\nweight = " + itoa(w) + "\n"
		}
		n2 := startNode(t, b, "lb2", baseConfig(tr(-60)))
		n2.link <- true
		settle(time.Second)
		n2.mustState("MASTER")
		n1 := startNode(t, b, "lb1", baseConfig(tr(-60)))
		n1.link <- false // lb1's uplink is down: 90 < 100, it stays BACKUP
		settle(time.Second)
		n1.mustState("BACKUP")
		before := n1.transitions()

		if _, err := n1.reload(t, baseConfig(tr(-70))); err != nil {
			t.Fatal(err)
		}
		// The new watcher has not reported yet: the verdict is kept.
		settle(2 * time.Second)
		n1.mustState("BACKUP")
		if got := n1.d.Status().Instances[0].EffectivePriority; got != 80 {
			t.Errorf("after the reload lb1's priority is %d, want 150-70 = 80 (the failing verdict kept)", got)
		}
		n1.link <- false // the new watcher reports: still down
		settle(time.Second)
		if n1.transitions() != before {
			t.Errorf("the reload caused %d transitions on lb1 (a flap)", n1.transitions()-before)
		}
		n2.mustState("MASTER")
	})
}

// Defect 4: priority updates from many goroutines can never leave a stale
// priority behind: the last value computed is the last value handed over.
func TestTrackersOrder(t *testing.T) {
	cfg, err := config.Parse("vipd.toml", []byte(baseConfig("\n[[track]]\nname = \"a\"\ntype = \"interface\"\ninterface = \"eth1\"\nweight = -10\n[[track]]\nname = \"b\"\ntype = \"interface\"\ninterface = \"eth2\"\nweight = -20\n")))
	if err != nil {
		t.Fatal(err)
	}
	node, _ := cfg.SelectNode("lb1", "", nil)
	for range 50 {
		trk := newTrackers(cfg, node, nopLog, func() {})
		r := &lastPriority{}
		trk.attach(cfg.Instances[0].Name, r)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 50 {
					trk.set([]string{"a", "b"}[i%2], (i+j)%3 != 0, "")
				}
			})
		}
		wg.Wait()
		trk.mu.Lock()
		want, _, _ := trk.effectiveLocked(trk.insts[cfg.Instances[0].Name])
		trk.mu.Unlock()
		if got := r.get(); got != want {
			t.Fatalf("runner holds priority %d, the trackers compute %d", got, want)
		}
	}
}

type lastPriority struct {
	mu   sync.Mutex
	prio uint8
}

func (l *lastPriority) SetPriority(p uint8, _ bool, _ string) { l.mu.Lock(); l.prio = p; l.mu.Unlock() }
func (l *lastPriority) get() uint8                            { l.mu.Lock(); defer l.mu.Unlock(); return l.prio }

// Defect 5: reloads race with status, drills and beacons reading the node;
// run with -race.
func TestDaemonReloadWhileReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := startNode(t, b, "lb1", baseConfig(""))
		settle(time.Second)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 20 {
				text := baseConfig("")
				if i%2 == 1 {
					text = strings.Replace(text, "priority = 150", "priority = 140", 1)
				}
				n1.reload(t, text)
			}
		}()
		for range 20 {
			_ = n1.d.Status()
			_ = n1.d.ourBeacon()
			n1.d.Drill(context.Background(), control.DrillRequest{})
			time.Sleep(10 * time.Millisecond)
		}
		<-done
	})
}

// Defect 7: the VIP watcher is an event into the runner. Something
// removing the VIP from a BACKUP never puts it back there; on the MASTER
// it is restored and re-announced.
func TestDaemonVIPRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := startNode(t, b, "lb1", baseConfig(""))
		settle(time.Second)
		n2 := startNode(t, b, "lb2", baseConfig(""))
		settle(time.Second)
		n2.vipGone <- netip.MustParsePrefix(vip)
		settle(time.Second)
		if n2.addrs.has(vip) {
			t.Fatal("the backup holds the VIP after a removal event")
		}
		sent := n1.ann.count()
		n1.addrs.drop(vip)
		n1.vipGone <- netip.MustParsePrefix(vip)
		settle(100 * time.Millisecond)
		if !n1.addrs.has(vip) {
			t.Fatal("the master did not restore its VIP")
		}
		if n1.ann.count() == sent {
			t.Error("the master did not re-announce the restored VIP")
		}
	})
}

// Defects 8 and 9: a node that cannot listen must not claim the VIP: it
// goes FAULT with the reason in status, the peer takes over at once
// (priority 0), and it retries.
func TestDaemonListenFailureFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n2 := startNode(t, b, "lb2", baseConfig(""))
		settle(time.Second)
		n2.mustState("MASTER")
		n1 := newNode(t, b, "lb1", baseConfig(""))
		n1.px.setFailListen(errors.New("bind 192.0.2.10:6443: address already in use"))
		n1.start()
		settle(time.Second)
		// lb1 (150) preempts lb2, cannot listen, hands back.
		in := n1.d.Status().Instances[0]
		if in.State != "FAULT" || !strings.Contains(in.Fault, "address already in use") || in.EffectErrors["listen"] == 0 {
			t.Fatalf("lb1 %+v, want FAULT with the listen error", in)
		}
		if n1.addrs.has(vip) {
			t.Error("lb1 holds the VIP although it cannot serve")
		}
		n2.mustState("MASTER")
		n1.px.setFailListen(nil)
		settle(5 * time.Second)
		n1.mustState("MASTER")
		if !n1.addrs.has(vip) || !n1.px.isListening("kubernetes") {
			t.Error("after the retry lb1 is MASTER without VIP or listener")
		}
	})
}

// Defect 11 at the daemon: a drill nobody answers resumes as MASTER and
// says so; the VIP is never dropped.
func TestDaemonDrillWithoutSuccessorResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := startNode(t, b, "lb1", strings.Replace(baseConfig(""), "port = 6443", "port = 6443\naddress = \"192.0.2.99\"", 1))
		settle(time.Second)
		n1.mustState("MASTER")
		res, err := n1.d.Drill(context.Background(), control.DrillRequest{Force: true, Hold: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Resumed || res.To != "nobody" {
			t.Errorf("drill result %+v, want resumed", res)
		}
		n1.mustState("MASTER")
		if n1.addrs.removedCount() != 0 {
			t.Error("the VIP was dropped during a drill nobody answered")
		}
	})
}

func (f *fakeAddrs) removedCount() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.removed) }

// Defect 12: an address owner whose VIP is its own address with its
// prefix never has that address deleted, neither at start nor when it
// stops.
func TestDaemonOwnerKeepsItsOwnAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		own := netip.MustParsePrefix("10.99.0.11/24")
		text := strings.Replace(strings.Replace(baseConfig(""), `vips = ["192.0.2.10/32"]`, `vips = ["10.99.0.11/24"]`, 1), "priority = 150", "priority = 255", 1)
		text = strings.Replace(text, "port = 6443", "port = 6443\naddress = \"192.0.2.99\"", 1)
		n1 := newNode(t, b, "lb1", text, own).start()
		settle(time.Second)
		n1.mustState("MASTER")
		n1.d.Shutdown()
		settle(5 * time.Second)
		if ok, _ := n1.stopped(); !ok {
			t.Fatal("did not stop")
		}
		if !n1.addrs.has(own.String()) || n1.addrs.removedCount() != 0 {
			t.Errorf("the owner's own address was removed: %v", n1.addrs.removed)
		}
	})
}

// A VIP left behind by a crashed run is removed by the first step of a
// node that starts as BACKUP.
func TestDaemonRemovesLeftoverVIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n2 := startNode(t, b, "lb2", baseConfig(""))
		settle(time.Second)
		n1 := newNode(t, b, "lb1", strings.Replace(baseConfig(""), "priority = 150", "priority = 50", 1), netip.MustParsePrefix(vip)).start()
		synctest.Wait()
		if n1.addrs.has(vip) {
			t.Error("the leftover VIP is still there")
		}
		n1.mustState("BACKUP")
		n2.mustState("MASTER")
	})
}

// A reload that changes an election setting is refused and names it; the
// running config stays.
func TestDaemonReloadRefusesElectionChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := startNode(t, b, "lb1", baseConfig(""))
		settle(time.Second)
		_, err := n1.reload(t, strings.Replace(baseConfig(""), `advert_interval = "100ms"`, `advert_interval = "200ms"`, 1))
		if !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), "[vrrp] advert_interval") {
			t.Fatalf("reload: %v, want refused naming [vrrp] advert_interval", err)
		}
		if in := n1.d.Status().Instances[0]; in.AdvertIntervalMs != 100 {
			t.Errorf("interval %v after a refused reload", in.AdvertIntervalMs)
		}
		// A priority change applies live: the new priority is advertised.
		if _, err := n1.reload(t, strings.Replace(baseConfig(""), "priority = 150", "priority = 120", 1)); err != nil {
			t.Fatal(err)
		}
		if got := n1.d.Status().Instances[0].EffectivePriority; got != 120 {
			t.Errorf("effective priority %d after reload, want 120", got)
		}
	})
}

// A drill on the backup, and a drill without a known healthy backup, are
// refused and change nothing; --force drills anyway.
func TestDaemonDrillRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := startNode(t, b, "lb1", baseConfig(""))
		settle(time.Second)
		n2 := startNode(t, b, "lb2", baseConfig(""))
		settle(time.Second)
		ctx := context.Background()
		if _, err := n2.d.Drill(ctx, control.DrillRequest{}); !errors.Is(err, control.ErrRefused) {
			t.Errorf("drill on backup: %v, want ErrRefused", err)
		}
		// status_port = 0: no beacons, so no backup is known.
		if _, err := n1.d.Drill(ctx, control.DrillRequest{}); !errors.Is(err, control.ErrRefused) {
			t.Errorf("drill without a known backup: %v, want ErrRefused", err)
		}
		if n1.state() != "MASTER" || n2.state() != "BACKUP" {
			t.Errorf("refused drills changed state: %s %s", n1.state(), n2.state())
		}
		res, err := n1.d.Drill(ctx, control.DrillRequest{Force: true, Hold: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.To != "lb2 (10.99.0.12)" || res.Resumed || res.GapMs != 0 || res.Failed != 0 || res.Probes == 0 {
			t.Errorf("forced drill: %+v, want lb2 taking over with no failed probe", res)
		}
		n2.mustState("MASTER")
	})
}

// Single-LB mode runs a solo instance: its frontends listen from the start
// and stop listening when it stops.
func TestDaemonSingleLB(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		text := "[[frontend]]\nname = \"kubernetes\"\nport = 6443\naddress = \"192.0.2.99\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\nservers = [\"192.0.2.31:6443\"]\ncheck = { type = \"none\" }\n"
		n := startNode(t, newBus(), "lb1", text)
		if !n.px.isListening("kubernetes") {
			t.Fatal("single LB not listening")
		}
		if st := n.d.Status(); st.Mode != "single" || len(st.Instances) != 0 {
			t.Errorf("status mode %q, %d instances", st.Mode, len(st.Instances))
		}
		n.d.Shutdown()
		synctest.Wait()
		if ok, _ := n.stopped(); !ok || n.px.isListening("kubernetes") {
			t.Error("single LB did not stop cleanly")
		}
	})
}

// Several instances, active/active: each node is MASTER of the instance it
// prefers and listens only on that instance's frontend.
func TestDaemonActiveActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		text := `
[vrrp]
interface = "eth0"
advert_interval = "100ms"
status_port = 0
startup_interval = "0s"
[[instance]]
name = "api"
vrid = 51
vips = ["192.0.2.10"]
priority = { lb1 = 150, lb2 = 100 }
[[instance]]
name = "ingress"
vrid = 52
vips = ["192.0.2.20"]
priority = { lb1 = 100, lb2 = 150 }
[[node]]
name = "lb1"
address = "10.99.0.11"
[[node]]
name = "lb2"
address = "10.99.0.12"
[[frontend]]
name = "kubernetes"
port = 6443
vip = "192.0.2.10"
backend = "b"
[[frontend]]
name = "ingress"
port = 443
vip = "192.0.2.20"
backend = "b"
[[backend]]
name = "b"
servers = ["192.0.2.31:6443"]
check = { type = "none" }
`
		b := newBus()
		n1 := startNode(t, b, "lb1", text)
		n2 := startNode(t, b, "lb2", text)
		settle(2 * time.Second)
		states := func(n *testNode) map[string]string {
			m := map[string]string{}
			for _, in := range n.d.Status().Instances {
				m[in.Name] = in.State
			}
			return m
		}
		if s := states(n1); s["api"] != "MASTER" || s["ingress"] != "BACKUP" {
			t.Errorf("lb1 %v", s)
		}
		if s := states(n2); s["api"] != "BACKUP" || s["ingress"] != "MASTER" {
			t.Errorf("lb2 %v", s)
		}
		if !n1.addrs.has("192.0.2.10/32") || n1.addrs.has("192.0.2.20/32") || !n2.addrs.has("192.0.2.20/32") || n2.addrs.has("192.0.2.10/32") {
			t.Error("VIPs not where the priorities put them")
		}
		if !n1.px.isListening("kubernetes") || n1.px.isListening("ingress") || !n2.px.isListening("ingress") || n2.px.isListening("kubernetes") {
			t.Error("frontends not following their instances")
		}
		// A drill needs --instance only when ambiguous: each node is
		// MASTER of one, so the default picks it.
		if _, err := n1.d.Drill(context.Background(), control.DrillRequest{Force: true, Hold: 10 * time.Second}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if s := states(n2); s["api"] != "MASTER" || s["ingress"] != "MASTER" {
			t.Errorf("after lb1 handed api over, lb2: %v", s)
		}
	})
}

var nopLog = zerologNop()

// A confirmed crash of the master's process (liveness) reaches every
// instance's runner as a MasterGone event for each advert source the peer
// named: the backup takes over after GoneSkew, not Master_Down_Interval,
// and says why. The node's liveness gets its goodbye before a stop, and
// status shows each peer's liveness and its problem.
func TestDaemonLivenessWiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		cfg := strings.Replace(baseConfig(""), "status_port = 0\n", "status_port = 0\nliveness_port = 9602\n", 1)
		n1 := startNode(t, b, "lb1", cfg)
		settle(time.Second)
		n2 := startNode(t, b, "lb2", cfg)
		settle(time.Second)
		n1.mustState("MASTER")
		n2.mustState("BACKUP")
		if n2.live == nil || n2.live.cfg.Port != 9602 || len(n2.live.cfg.Peers) != 1 || n2.live.cfg.Peers[0].Name != "lb1" {
			t.Fatalf("liveness config %+v", n2.live)
		}
		if src := n2.live.cfg.Sources(); len(src) != 1 || src[0] != netip.MustParseAddr("10.99.0.12") {
			t.Errorf("hello sources %v", src)
		}
		n2.live.mu.Lock()
		n2.live.problem = "test problem"
		n2.live.mu.Unlock()
		st := n2.d.Status()
		if len(st.Peers) != 1 || st.Peers[0].Liveness == nil || st.Peers[0].Liveness.State != "up" ||
			!strings.Contains(strings.Join(st.Instances[0].Problems, "|"), "liveness: test problem") {
			t.Errorf("status peers %+v problems %v", st.Peers, st.Instances[0].Problems)
		}

		n1.d.Shutdown()
		synctest.Wait()
		if got := n1.live.said(); len(got) != 1 || got[0] != "stopping" {
			t.Errorf("lb1's goodbye %v, want one before the handover", got)
		}
		settle(time.Second)
		n2.mustState("MASTER")

		// lb1 back as the master; then its process "dies".
		n1 = startNode(t, b, "lb1", cfg)
		settle(2 * time.Second)
		n1.mustState("MASTER")
		n2.mustState("BACKUP")
		n1.cancel()
		start := time.Now()
		n2.live.cfg.Gone(liveness.Node{Name: "lb1", Addr: netip.MustParseAddr("10.99.0.11")},
			[]netip.Addr{netip.MustParseAddr("10.99.0.11")}, "liveness: test")
		synctest.Wait()
		n2.mustState("BACKUP")
		settle(vrrp.GoneSkew(3, 100, 100*time.Millisecond))
		n2.mustState("MASTER")
		in := n2.d.Status().Instances[0]
		if took := in.LastTransition.Sub(start); took != vrrp.GoneSkew(3, 100, 100*time.Millisecond) {
			t.Errorf("took over after %v", took)
		}
		if !strings.Contains(in.LastReason, "10.99.0.11's vipd is gone (liveness: test)") {
			t.Errorf("reason %q", in.LastReason)
		}
	})
}

// A drill records its probe timeline: each attempt (time from the fault,
// ok/refused/timeout, who answered) from shortly before the fault to the
// first success, and the marks fault → this node's transition → new
// master heard → first success. A hard drill drops the VIP at once, so
// the probes are refused until lb2 takes over after Master_Down_Interval.
func TestDaemonDrillTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := startNode(t, b, "lb1", baseConfig(""))
		settle(time.Second)
		startNode(t, b, "lb2", baseConfig(""))
		settle(time.Second)
		res, err := n1.d.Drill(context.Background(), control.DrillRequest{Force: true, Hard: true, Hold: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Samples) < 10 || res.Samples[0].TMs > -50 || res.Samples[0].Result != "ok" || res.Samples[0].Node != "lb1" {
			t.Fatalf("samples %+v, want ok from lb1 before the fault", res.Samples[:min(3, len(res.Samples))])
		}
		var refused int
		for _, s := range res.Samples {
			if s.Result == "refused" {
				refused++
				if s.TMs < 0 || s.TMs > res.TakeoverMs+10 {
					t.Errorf("refused at %v ms, outside the outage (takeover %v ms)", s.TMs, res.TakeoverMs)
				}
			}
		}
		last := res.Samples[len(res.Samples)-1]
		if refused == 0 || last.Result != "ok" || last.Node != "lb2" {
			t.Errorf("%d refused; last sample %+v, want ok from lb2", refused, last)
		}
		var what []string
		for _, m := range res.Marks {
			what = append(what, m.What+"@"+m.Node)
		}
		want := []string{"fault: hard leave (crash rehearsal)@lb1", "MASTER → BACKUP@lb1", "new master heard@lb2 (10.99.0.12)", "first success@lb2"}
		if strings.Join(what, " | ") != strings.Join(want, " | ") {
			t.Errorf("marks %q, want %q", what, want)
		}
		if st := n1.d.Status(); st.LastDrill == nil || len(st.LastDrill.Samples) != len(res.Samples) {
			t.Errorf("the status's last drill lacks the samples")
		}
	})
}

// Each VRRP interface gets promote_secondaries (a same-subnet VIP survives
// the node's own address going) and arp_announce = 2 (no ARP request ever
// names the VIP as its sender, which would point neighbours back at an
// old master after a handover).
func TestDaemonInterfaceSysctls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", baseConfig(""))
		for name, want := range map[string]string{
			"net/ipv4/conf/eth0/promote_secondaries": "1",
			"net/ipv4/conf/eth0/arp_announce":        "2",
		} {
			if got, _ := n.sysctls.Load(name); got != want {
				t.Errorf("%s = %v, want %q", name, got, want)
			}
		}
	})
}

// A VRRPv2 pair (version = 2, auth_pass) elects like a VRRPv3 one; the
// backup names the master's checksum "rfc3768", the only VRRPv2 form (not
// "rfc9568", which is a VRRPv3 setting), as the instance's own does.
func TestDaemonVersion2Pair(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		cfg := strings.Replace(baseConfig(""), `advert_interval = "100ms"`, "version = 2\nauth_pass = \"k8sPASS\"\nadvert_interval = \"1s\"", 1)
		n1 := startNode(t, b, "lb1", cfg)
		settle(5 * time.Second)
		n1.mustState("MASTER")
		n2 := startNode(t, b, "lb2", cfg)
		settle(5 * time.Second)
		n2.mustState("BACKUP")
		in := n2.d.Status().Instances[0]
		if in.Version != 2 || in.Checksum != "rfc3768" || len(in.Senders) != 1 || in.Senders[0].Version != 2 ||
			in.Senders[0].Checksum != "rfc3768" || len(in.Problems) != 0 {
			t.Errorf("backup status: version %d checksum %q senders %+v problems %q; want version 2, rfc3768 for both, no problem",
				in.Version, in.Checksum, in.Senders, in.Problems)
		}
	})
}
