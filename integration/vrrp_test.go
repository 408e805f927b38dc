package integration

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/vrrp"
)

// pairLab is the common HA-pair lab: lb1 (150), lb2 (100), a client.
type pairLab struct {
	*lab.Lab
	lb1, lb2, client *lab.Host
	n1, n2           *lab.Node
	vip              netip.Addr
}

func newPairLab(t *testing.T, o lab.PairOptions, p1, p2 int) *pairLab {
	l := lab.NewLab(t)
	p := &pairLab{Lab: l, lb1: l.AddHost("lb1", 11), lb2: l.AddHost("lb2", 12), client: l.AddHost("client", 100), vip: l.Addr(10)}
	o.VIP = p.vip
	nodes := l.StartNodes(t, o, []lab.LBNode{lab.N("lb1", p.lb1, p1), lab.N("lb2", p.lb2, p2)})
	p.n1, p.n2 = nodes[0], nodes[1]
	return p
}

func (p *pairLab) target() netip.AddrPort { return netip.AddrPortFrom(p.vip, 6443) }

// TestInitialElection: the highest priority wins and exactly one node
// holds the VIP.
func TestInitialElection(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb1, 2*time.Second, p.lb1, p.lb2)
	st, err := p.n2.Status()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Instances[0].MasterAddr; got != p.lb1.Addr.String() {
		t.Errorf("backup's master_addr = %s, want %s", got, p.lb1.Addr)
	}
	if in := st.Instances[0]; in.AdvertsReceived == 0 || len(in.Senders) != 1 || in.Senders[0].Checksum != "pseudo-header" {
		t.Errorf("backup heard %d adverts, senders %+v; want adverts from lb1 with the pseudo-header checksum", in.AdvertsReceived, in.Senders)
	}
}

// TestThreeNodeElection: with three nodes, the highest wins, and when it
// dies the next highest (not the lowest) takes over.
func TestThreeNodeElection(t *testing.T) {
	l := lab.NewLab(t)
	a, b, c := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("lb3", 13)
	vip := l.Addr(10)
	ns := l.StartNodes(t, lab.PairOptions{VIP: vip}, []lab.LBNode{lab.N("lb1", a, 120), lab.N("lb2", b, 200), lab.N("lb3", c, 100)})
	ns[1].AwaitState("MASTER", 5*time.Second)
	lab.AwaitHolder(t, vip, b, 2*time.Second, a, b, c)
	ns[1].Stop(syscall.SIGKILL, 5*time.Second)
	ns[0].AwaitState("MASTER", 3*time.Second)
	lab.AwaitHolder(t, vip, a, 2*time.Second, a, c) // lb2 keeps its stale VIP: it crashed
	if s := ns[2].State(); s != "BACKUP" {
		t.Errorf("lb3 is %s, want BACKUP", s)
	}
}

// TestMasterKilled: SIGKILL the master; the backup takes the VIP after
// Master_Down_Interval and the client reaches it again.
func TestMasterKilled(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	p.n1.Stop(syscall.SIGKILL, 5*time.Second)
	p.n2.AwaitState("MASTER", 3*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb2, 2*time.Second, p.lb2)
	waitProbeOKAfter(t, pr, time.Now())
	gap, failed := lab.Gap(pr.Stop())
	// Down_Interval for priority 100 at 200 ms: 3*200 + 122 = 722 ms; the
	// client also needs the GARP. Bound generously for a busy machine.
	t.Logf("SIGKILL gap %s (%d failed connects)", gap, failed)
	if gap > 2500*time.Millisecond {
		t.Errorf("client-visible gap %s after SIGKILL, want well under 2.5s", gap)
	}
}

// TestMasterTerminated: SIGTERM the master; priority 0 lets the backup take
// over after Skew_Time and, make before break, a client connecting every
// 10 ms sees no failed connection. The stopping node exits 0 and leaves no
// VIP behind.
func TestMasterTerminated(t *testing.T) {
	masterTerminated(t, lab.PairOptions{}, nil)
}

// masterTerminated is TestMasterTerminated's scenario, for any binary
// (o.Bin, o.User; the image test runs the binary from the image);
// elected, when set, runs once lb1 is MASTER and lb2 BACKUP.
func masterTerminated(t *testing.T, o lab.PairOptions, elected func(*pairLab)) {
	p := newPairLab(t, o, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	if elected != nil {
		elected(p)
	}
	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	start := time.Now()
	if err := p.n1.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Errorf("vipd exited with %v after SIGTERM, want 0\n%s", err, p.n1.Log())
	}
	p.n2.AwaitState("MASTER", 2*time.Second)
	took := time.Since(start)
	if p.lb1.HasAddr(p.vip) {
		t.Error("the stopped node left the VIP on its interface")
	}
	lab.AwaitHolder(t, p.vip, p.lb2, time.Second, p.lb1, p.lb2)
	waitProbeOKAfter(t, pr, time.Now().Add(300*time.Millisecond))
	gap, failed := lab.Gap(pr.Stop())
	t.Logf("SIGTERM handover took %s; client gap %s, %d failed connects", took, gap, failed)
	if failed != 0 {
		t.Errorf("%d client connects failed during a SIGTERM handover (gap %s); want none", failed, gap)
	}
	if !strings.Contains(p.n1.Log(), "priority 0") && !strings.Contains(p.n2.Log(), "priority 0") {
		t.Errorf("neither log mentions the priority-0 advert\n%s\n%s", p.n1.Log(), p.n2.Log())
	}
}

// TestPreemptOnReturn: the higher-priority node returns and takes the VIP
// back (after its checks completed one round).
func TestPreemptOnReturn(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n1.Stop(syscall.SIGTERM, 5*time.Second)
	p.n2.AwaitState("MASTER", 2*time.Second)
	p.n1.Start()
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb1, 2*time.Second, p.lb1, p.lb2)
}

// TestNoPreempt: with preempt = false the returning node stays BACKUP.
func TestNoPreempt(t *testing.T) {
	f := false
	p := newPairLab(t, lab.PairOptions{Preempt: &f}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n1.Stop(syscall.SIGTERM, 5*time.Second)
	p.n2.AwaitState("MASTER", 2*time.Second)
	p.n1.Start()
	p.n1.AwaitState("BACKUP", 5*time.Second)
	// Several down intervals: it must not take over.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if s := p.n1.State(); s == "MASTER" {
			t.Fatal("lb1 preempted with preempt = false")
		}
		time.Sleep(50 * time.Millisecond)
	}
	lab.AwaitHolder(t, p.vip, p.lb2, time.Second, p.lb1, p.lb2)
}

// TestEqualPriorityHigherAddressWins: two masters with equal priority
// meet (both came up while the segment was cut); the one with the higher
// primary address stays MASTER (RFC 9568 section 6.4.3). A backup that
// hears an equal-priority master accepts it (section 6.4.2), so the rule
// only decides between two masters.
func TestEqualPriorityHigherAddressWins(t *testing.T) {
	l := lab.NewLab(t)
	lb1, lb2 := l.AddHost("lb1", 11), l.AddHost("lb2", 12)
	vip := l.Addr(10)
	l.Cut(lb1)
	ns := l.StartNodes(t, lab.PairOptions{VIP: vip}, []lab.LBNode{lab.N("lb1", lb1, 100), lab.N("lb2", lb2, 100)})
	ns[0].AwaitState("MASTER", 5*time.Second)
	ns[1].AwaitState("MASTER", 5*time.Second)
	l.Heal(lb1)
	ns[0].AwaitState("BACKUP", 2*time.Second) // .11 < .12
	ns[1].AwaitState("MASTER", time.Second)
	lab.AwaitHolder(t, vip, lb2, 2*time.Second, lb1, lb2)
}

// TestTrackedScriptMovesVIP: a failing script with weight -60 drops lb1
// from 150 to 90 < 100 and the VIP moves without a gap; recovering moves it
// back.
func TestTrackedScriptMovesVIP(t *testing.T) {
	l := lab.NewLab(t)
	// Each node's script tests its own flag file.
	flagOf := func(node string) string { return l.Dir() + "/healthy-" + node }
	os.WriteFile(flagOf("lb1"), nil, 0o644)
	os.WriteFile(flagOf("lb2"), nil, 0o644)
	flag := flagOf("lb1")
	perNode := func(node string) string {
		return fmt.Sprintf("\n[[track]]\nname = \"flag\"\ntype = \"script\"\ncommand = [\"/usr/bin/test\", \"-e\", %q]\ninterval = \"200ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\nweight = -60\n", flagOf(node))
	}
	lb1, lb2, client := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("client", 100)
	vip := l.Addr(10)
	ns := l.StartNodes(t, lab.PairOptions{VIP: vip, PerNode: perNode}, []lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
	ns[0].AwaitState("MASTER", 5*time.Second)
	ns[1].AwaitState("BACKUP", 2*time.Second)
	pr := lab.StartProber(t, client, netip.AddrPortFrom(vip, 6443), false)
	waitProbeOK(t, pr)

	os.Remove(flag)
	ns[1].AwaitState("MASTER", 5*time.Second)
	ns[0].AwaitState("BACKUP", 2*time.Second)
	st, _ := ns[0].Status()
	if st.Instances[0].EffectivePriority != 90 {
		t.Errorf("lb1 effective priority %d, want 90", st.Instances[0].EffectivePriority)
	}
	lab.AwaitHolder(t, vip, lb2, 2*time.Second, lb1, lb2)

	os.WriteFile(flag, nil, 0o644)
	ns[0].AwaitState("MASTER", 5*time.Second)
	lab.AwaitHolder(t, vip, lb1, 2*time.Second, lb1, lb2)
	waitProbeOKAfter(t, pr, time.Now())
	gap, failed := lab.Gap(pr.Stop())
	t.Logf("tracker-driven moves: gap %s, %d failed connects", gap, failed)
	if gap > time.Second {
		t.Errorf("tracker-driven VIP moves cost clients %s", gap)
	}
}

// TestPartitionHeals: cut lb1 off the segment (both become MASTER), heal,
// and within about one advert interval there is one master again and it
// re-announced the VIP with gratuitous ARP.
func TestPartitionHeals(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	p.Cut(p.lb1)
	p.n2.AwaitState("MASTER", 3*time.Second)
	// Point the client's neighbour entry at lb2, as the split left it.
	exec.Command("ip", "netns", "exec", p.client.NS, "ping", "-c1", "-W1", p.vip.String()).Run()
	p.Heal(p.lb1)
	healed := time.Now()
	err := lab.WaitFor(3*time.Second, func() error {
		a, b := p.n1.State(), p.n2.State()
		if a == "MASTER" && b == "BACKUP" {
			return nil
		}
		return fmt.Errorf("lb1 %s, lb2 %s", a, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one master again %s after healing", time.Since(healed))
	lab.AwaitHolder(t, p.vip, p.lb1, 2*time.Second, p.lb1, p.lb2)
	// The client's neighbour entry must follow lb1's MAC (GARP re-sent).
	mac := hwaddr(t, p.lb1)
	err = lab.WaitFor(3*time.Second, func() error {
		out, _ := exec.Command("ip", "-n", p.client.NS, "neigh", "show", p.vip.String()).Output()
		if !strings.Contains(string(out), mac) {
			return fmt.Errorf("client neighbour entry %q, want lladdr %s", strings.TrimSpace(string(out)), mac)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestVIPRestored: an operator (or systemd-networkd) deletes the VIP; the
// master puts it back.
func TestVIPRestored(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb1, 2*time.Second, p.lb1, p.lb2)
	p.IPN(p.lb1.NS, "addr", "del", p.vip.String()+"/32", "dev", "eth0")
	lab.AwaitHolder(t, p.vip, p.lb1, 3*time.Second, p.lb1, p.lb2)
	if !strings.Contains(p.n1.Log(), "restoring") {
		t.Errorf("no log line about restoring the VIP\n%s", p.n1.Log())
	}
	if s := p.n1.State(); s != "MASTER" {
		t.Errorf("lb1 %s after VIP restore", s)
	}
}

// TestLeftoverVIPRemovedAtStart: a crashed run leaves the VIP; a new vipd
// removes it before the election (clients would otherwise be refused by a
// node with no listener).
func TestLeftoverVIPRemovedAtStart(t *testing.T) {
	l := lab.NewLab(t)
	lb1 := l.AddHost("lb1", 11)
	vip := l.Addr(10)
	l.IPN(lb1.NS, "addr", "add", vip.String()+"/32", "dev", "eth0")
	f := false
	ns := l.StartNodes(t, lab.PairOptions{VIP: vip, Preempt: &f}, []lab.LBNode{lab.N("lb1", lb1, 100), lab.N("lb2", l.AddHost("lb2", 12), 200)})
	// lb2 wins (200); lb1 must have removed the stale VIP.
	ns[1].AwaitState("MASTER", 5*time.Second)
	ns[0].AwaitState("BACKUP", 2*time.Second)
	if lb1.HasAddr(vip) {
		t.Fatalf("lb1 kept the leftover VIP\n%s", ns[0].Log())
	}
	if !strings.Contains(ns[0].Log(), "left behind") {
		t.Errorf("no log line about the leftover VIP")
	}
}

// TestMalformedAdverts: truncated, bad checksum, TTL 254, count 0,
// interval 0, wrong VRID, wrong version, garbage, and a higher-priority
// advert with a bad checksum: each is counted by reason and ignored; no
// crash, no state change.
func TestMalformedAdverts(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	attacker := p.AddHost("evil", 66)
	before, _ := p.n1.Status()

	good := func(prio uint8, vrid uint8) []byte {
		adv := vrrp.Advertisement{Version: 3, Type: vrrp.TypeAdvertisement, VRID: vrid, Priority: prio,
			MaxAdvertInterval: 200 * time.Millisecond, Addresses: []netip.Addr{p.vip}}
		b, err := vrrp.MarshalAdvertisement(&adv, attacker.Addr, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	badSum := good(254, 51)
	badSum[6] ^= 0xff
	count0 := good(254, 51)
	count0[3] = 0
	iv0 := good(254, 51)
	iv0[4], iv0[5] = 0, 0
	v4 := good(254, 51)
	v4[0] = 0x41
	cases := []struct {
		name string
		b    []byte
		ttl  int
		want string
	}{
		{"truncated", good(254, 51)[:5], 255, "short"},
		{"bad checksum", badSum, 255, "checksum"},
		{"ttl 254", good(254, 51), 254, "ttl"},
		{"count 0", count0, 255, "count"},
		{"interval 0", iv0, 255, "interval"},
		{"wrong vrid", good(254, 52), 255, "vrid"},
		{"version 4", v4, 255, "version"},
		{"garbage", []byte("\x00\xffGARBAGE-GARBAGE-GARBAGE"), 255, ""},
	}
	for _, c := range cases {
		lab.Inject(t, attacker, c.b, c.ttl, 3)
	}
	time.Sleep(500 * time.Millisecond) // let the last datagrams arrive; nothing to poll for
	after, err := p.n1.Status()
	if err != nil {
		t.Fatalf("lb1 unreachable after malformed adverts: %v\n%s", err, p.n1.Log())
	}
	in := after.Instances[0]
	for _, c := range cases {
		if c.want != "" && in.Drops[c.want] == 0 {
			t.Errorf("%s: drops[%q] = 0, want counted; drops %v", c.name, c.want, in.Drops)
		}
	}
	var total uint64
	for _, n := range in.Drops {
		total += n
	}
	if total < uint64(3*len(cases)) {
		t.Errorf("counted %d drops, want at least %d: %v", total, 3*len(cases), in.Drops)
	}
	if in.State != "MASTER" || in.Transitions != before.Instances[0].Transitions {
		t.Errorf("state %s transitions %d -> %d: malformed adverts changed the state", in.State, before.Instances[0].Transitions, in.Transitions)
	}
	if s := p.n2.State(); s != "BACKUP" {
		t.Errorf("lb2 is %s", s)
	}
}

// TestUnicast: with unicast = true the pair elects and fails over, and an
// advert from an address outside the peer list is dropped even with a
// higher priority.
func TestUnicast(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{Unicast: true}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb1, 2*time.Second, p.lb1, p.lb2)

	attacker := p.AddHost("evil", 66)
	adv := vrrp.Advertisement{Version: 3, Type: vrrp.TypeAdvertisement, VRID: 51, Priority: 254,
		MaxAdvertInterval: 200 * time.Millisecond, Addresses: []netip.Addr{p.vip}}
	b, _ := vrrp.MarshalAdvertisement(&adv, attacker.Addr, p.lb1.Addr, vrrp.ChecksumPseudoHeader)
	lab.InjectTo(t, attacker, b, p.lb1.Addr, 5)
	err := lab.WaitFor(2*time.Second, func() error {
		st, err := p.n1.Status()
		if err != nil {
			return err
		}
		if st.Instances[0].Drops["peer"] < 5 {
			return fmt.Errorf("drops %v", st.Instances[0].Drops)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("adverts from a non-peer not counted: %v", err)
	}
	if s := p.n1.State(); s != "MASTER" {
		t.Fatalf("a higher-priority advert from a non-peer moved lb1 to %s", s)
	}
	p.n1.Stop(syscall.SIGKILL, 5*time.Second)
	p.n2.AwaitState("MASTER", 3*time.Second)
}

func hwaddr(t *testing.T, h *lab.Host) string {
	out, err := exec.Command("ip", "netns", "exec", h.NS, "cat", "/sys/class/net/eth0/address").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func waitProbeOK(t *testing.T, pr *lab.Prober) {
	t.Helper()
	waitProbeOKAfter(t, pr, time.Time{})
}

// waitProbeOKAfter waits for a successful probe that started after since.
func waitProbeOKAfter(t *testing.T, pr *lab.Prober, since time.Time) {
	t.Helper()
	err := lab.WaitFor(5*time.Second, func() error {
		ss := pr.Samples()
		for i := len(ss) - 1; i >= 0; i-- {
			if ss[i].At.Before(since) {
				break
			}
			if ss[i].OK {
				return nil
			}
		}
		return fmt.Errorf("no successful client connect since %s (%d samples)", since.Format(time.StampMilli), len(ss))
	})
	if err != nil {
		t.Fatal(err)
	}
}
