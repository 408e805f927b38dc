package integration

// Crash takeover beyond the RFC timers (issue 12): the liveness connection
// between vipd nodes lets a backup take over within tens of milliseconds
// when the master's vipd process dies while its host lives, and never
// otherwise.

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/control"
)

// peerLiveness is n's view of the liveness connection to peer.
func peerLiveness(t *testing.T, n *lab.Node, peer string) *control.PeerLiveness {
	t.Helper()
	st := alive(t, n)
	for _, p := range st.Peers {
		if p.Name == peer {
			return p.Liveness
		}
	}
	return nil
}

func awaitLivenessUp(t *testing.T, n *lab.Node, peer string) {
	t.Helper()
	err := lab.WaitFor(5*time.Second, func() error {
		if l := peerLiveness(t, n, peer); l == nil || l.State != "up" {
			return fmt.Errorf("%s's liveness to %s: %+v", n.Name, peer, l)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(n.Log(), 30))
	}
}

// TestLivenessMasterKilled: SIGKILL of the master's vipd: lb2 takes over
// after GoneSkew (121.9 / 4 = 30.5 ms at 200 ms adverts and priority 100)
// instead of Master_Down_Interval (721.9 ms), and says why.
func TestLivenessMasterKilled(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	awaitLivenessUp(t, p.n2, "lb1")
	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	killed := time.Now()
	p.n1.Stop(syscall.SIGKILL, 5*time.Second)
	p.n2.AwaitState("MASTER", 3*time.Second)
	took := lastTransitionTo(t, p.n2, "MASTER").Sub(killed)
	waitProbeOKAfter(t, pr, time.Now())
	gap, failed := lab.Gap(pr.Stop())
	in := instance(t, p.n2)
	t.Logf("SIGKILL: lb2 MASTER after %s (Down_Interval %s); client gap %s, %d failed connects; reason %q",
		took.Round(time.Millisecond), downInterval(200*time.Millisecond, 100), gap.Round(time.Millisecond), failed, in.LastReason)
	if !strings.Contains(in.LastReason, "vipd is gone (liveness: tcp/9602") {
		t.Errorf("takeover reason %q, want the liveness signal", in.LastReason)
	}
	// A correctness bound, not a benchmark (make bench-failover measures):
	// well under half of Master_Down_Interval even on a busy machine.
	if took > downInterval(200*time.Millisecond, 100)/2 {
		t.Errorf("lb2 took over after %s, want well under Down_Interval", took)
	}
	if l := peerLiveness(t, p.n2, "lb1"); l == nil || l.Crashes != 1 {
		t.Errorf("lb2's liveness to lb1: %+v, want one crash", l)
	}
}

// TestLivenessPlannedRestart: a peer that stops and restarts its vipd on
// purpose (SIGTERM) says goodbye first: the takeover is the RFC's
// priority-0 handover (no failed connect), never a crash takeover.
func TestLivenessPlannedRestart(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	awaitLivenessUp(t, p.n2, "lb1")
	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	if err := p.n1.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatalf("lb1 exit: %v", err)
	}
	p.n2.AwaitState("MASTER", 3*time.Second)
	reason := instance(t, p.n2).LastReason
	p.n1.Start()
	oneMaster(t, p.vip, p.n1, 10*time.Second, p.n1, p.n2)
	waitProbeOKAfter(t, pr, time.Now())
	_, failed := lab.Gap(pr.Stop())
	l := peerLiveness(t, p.n2, "lb1")
	t.Logf("planned restart: lb2's takeover reason %q; liveness %+v; %d failed connects", reason, l, failed)
	if !strings.Contains(reason, "priority 0") || strings.Contains(reason, "vipd is gone") {
		t.Errorf("takeover reason %q, want the priority-0 handover, not a crash", reason)
	}
	if l == nil || l.Crashes != 0 || l.Goodbyes < 1 {
		t.Errorf("lb2's liveness to lb1 %+v, want a goodbye and no crash", l)
	}
}

// TestLivenessFirewallReset: a firewall on the master rejects the
// liveness port with TCP resets while VRRP flows: the backup sees its
// connection reset, asks the master's host over UDP, hears its vipd
// answer, and stays BACKUP with a warning in the log and status. A rule
// that drops the port (the connection alone cut, silently) changes
// nothing either.
func TestLivenessFirewallReset(t *testing.T) {
	lab.RequireNft(t)
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	awaitLivenessUp(t, p.n2, "lb1")
	tr2 := instance(t, p.n2).Transitions
	mark := len(p.n2.Log())
	lab.Nft(t, p.lb1.NS, `table inet livefw {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 9602 reject with tcp reset
		tcp sport 9602 reject with tcp reset
	}
}
`)
	err := lab.WaitFor(10*time.Second, func() error {
		l := peerLiveness(t, p.n2, "lb1")
		if l == nil || l.Problem == "" || !strings.Contains(l.Problem, "firewall") {
			return fmt.Errorf("lb2's liveness to lb1: %+v", l)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(p.n2.Log(), 20))
	}
	time.Sleep(2 * time.Second) // VRRP flows; nothing may happen meanwhile
	in2 := instance(t, p.n2)
	l := peerLiveness(t, p.n2, "lb1")
	t.Logf("tcp reset on 9602: lb2 transitions %d; liveness %+v; problems %q", in2.Transitions-tr2, l, in2.Problems)
	if in2.Transitions != tr2 {
		t.Errorf("a firewall reset caused a takeover:\n%s", tail(p.n2.Log(), 20))
	}
	if l.Crashes != 0 || countLog(p.n2.Log(), mark, "firewall") == 0 {
		t.Errorf("want no crash and a warning naming the firewall in lb2's log")
	}
	if !strings.Contains(strings.Join(in2.Problems, "\n"), "liveness: ") {
		t.Errorf("the instance's problems do not name it: %q", in2.Problems)
	}
	// Silently cut instead: drop both ways.
	lab.Nft(t, p.lb1.NS, "flush table inet livefw\n")
	awaitLivenessUp(t, p.n2, "lb1")
	lab.Nft(t, p.lb1.NS, `table inet livefw {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 9602 drop
		tcp sport 9602 drop
		udp dport 9602 drop
	}
}
`)
	time.Sleep(3 * time.Second)
	if in := instance(t, p.n2); in.Transitions != tr2 {
		t.Errorf("a silently cut liveness connection caused a takeover")
	}
	oneMaster(t, p.vip, p.n1, 2*time.Second, p.n1, p.n2)
}

// TestLivenessThreeNodes: three nodes (150, 100, 50), the master's vipd
// killed: exactly one takeover, by the priority-100 backup, and the
// priority-50 backup never moves: it leaves the takeover to lb2, a ready
// BACKUP in its beacons that outranks it. (GoneSkew alone separated them
// by 9.8 ms, and under load CI saw lb3 take over too and yield at once.)
func TestLivenessThreeNodes(t *testing.T) {
	l := lab.NewLab(t)
	a, b, c := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("lb3", 13)
	vip := l.Addr(10)
	ns := l.StartNodes(t, lab.PairOptions{VIP: vip}, []lab.LBNode{lab.N("lb1", a, 150), lab.N("lb2", b, 100), lab.N("lb3", c, 50)})
	ns[0].AwaitState("MASTER", 5*time.Second)
	ns[1].AwaitState("BACKUP", 2*time.Second)
	ns[2].AwaitState("BACKUP", 2*time.Second)
	awaitLivenessUp(t, ns[1], "lb1")
	awaitLivenessUp(t, ns[2], "lb1")
	tr2, tr3 := instance(t, ns[1]).Transitions, instance(t, ns[2]).Transitions
	killed := time.Now()
	ns[0].Stop(syscall.SIGKILL, 5*time.Second)
	ns[1].AwaitState("MASTER", 3*time.Second)
	time.Sleep(time.Second) // anything that would follow
	lab.AwaitHolder(t, vip, b, 2*time.Second, b, c)
	in2, in3 := instance(t, ns[1]), instance(t, ns[2])
	t.Logf("3 nodes, master killed: lb2 MASTER after %s (%q); lb2 transitions %d, lb3 %d; lb3 follows %s",
		lastTransitionTo(t, ns[1], "MASTER").Sub(killed).Round(time.Millisecond), in2.LastReason, in2.Transitions-tr2, in3.Transitions-tr3, in3.MasterAddr)
	if in2.Transitions-tr2 != 1 || in3.Transitions != tr3 {
		t.Errorf("want exactly one takeover (lb2) and lb3 unmoved; lb2 %d lb3 %d transitions\n%s", in2.Transitions-tr2, in3.Transitions-tr3, tail(ns[2].Log(), 10))
	}
	if in3.MasterAddr != b.Addr.String() {
		t.Errorf("lb3 follows %s, want lb2", in3.MasterAddr)
	}
	if !strings.Contains(ns[2].Log(), "lb2 (priority 100, a ready BACKUP) outranks this node") {
		t.Errorf("lb3 did not leave the takeover to lb2:\n%s", tail(ns[2].Log(), 10))
	}
}

// TestCleanupAfterCrash: systemd's ExecStopPost after a SIGKILL: `vipd
// cleanup` in the dead master's namespace removes the VIP the crash left,
// only once lb2 holds it (make before break), and a second run, or one
// beside a live vipd, changes nothing.
func TestCleanupAfterCrash(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	awaitLivenessUp(t, p.n2, "lb1")
	out, err := p.lb1.Exec(t.Context(), lab.Bin, "cleanup", "-c", p.n1.Config, "--node", "lb1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "a live vipd (node lb1) answers") || !p.lb1.HasAddr(p.vip) {
		t.Fatalf("cleanup beside a live vipd: %v\n%s", err, out)
	}
	killed := time.Now()
	p.n1.Stop(syscall.SIGKILL, 5*time.Second)
	reaped := time.Since(killed)
	out, err = p.lb1.Exec(t.Context(), lab.Bin, "cleanup", "-c", p.n1.Config, "--node", "lb1").CombinedOutput()
	done := time.Since(killed)
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	took := lastTransitionTo(t, p.n2, "MASTER").Sub(killed)
	t.Logf("SIGKILL; reaped after %s; lb2 MASTER after %s; cleanup done (VIP removed) after %s:\n%s", reaped.Round(time.Millisecond), took.Round(time.Millisecond), done.Round(time.Millisecond), out)
	if p.lb1.HasAddr(p.vip) || !p.lb2.HasAddr(p.vip) {
		t.Errorf("after cleanup: lb1 holds the VIP %v, lb2 %v", p.lb1.HasAddr(p.vip), p.lb2.HasAddr(p.vip))
	}
	if !strings.Contains(string(out), "is master (heard after") || !strings.Contains(string(out), "removed "+p.vip.String()+"/32 from eth0") {
		t.Errorf("cleanup did not wait for the new master before removing the VIP:\n%s", out)
	}
	out, err = p.lb1.Exec(t.Context(), lab.Bin, "cleanup", "-c", p.n1.Config, "--node", "lb1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing to do") {
		t.Errorf("a second cleanup: %v\n%s", err, out)
	}
}
