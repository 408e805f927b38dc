package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/control"
)

// BGP mode with real vipd processes: FRR as the router, each LB on its own
// subnet running `vipd run` with a [bgp] table, three stand-in control
// planes behind the router, a client on a third subnet. What is asserted
// is what the router's kernel forwards with and what a client connecting
// every 10 ms sees.

// bgpLab is the routed lab with FRR, the stand-ins and vipd on both LBs,
// every LB announcing. The router hashes on ports as well as addresses
// (fib_multipath_hash_policy=1), so one client's connections spread over
// both LBs and every change is seen by the prober.
func bgpLab(t *testing.T, ro lab.RouterOptions, bo lab.BGPOptions) (*lab.Routed, *lab.FRR, []*lab.Node) {
	t.Helper()
	r := lab.NewRouted(t, 2)
	r.Sysctl(r.Router, "net.ipv4.fib_multipath_hash_policy=1")
	rt := r.StartRouter(t, ro)
	pki := lab.NewPKI(t, r.VIP)
	for _, cp := range r.CPs {
		lab.StartControlPlane(t, cp, pki)
	}
	nodes := r.StartBGPNodes(t, bo)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("--- %s log ---\n%s", n.Name, n.Log())
			}
			t.Logf("--- router ---\n%s", rt.Logs())
		}
	})
	lab.AwaitNextHops(t, r.Router, r.VIPPrefix(), 30*time.Second, lbAddrs(r)...)
	return r, rt, nodes
}

func vipTarget(r *lab.Routed) netip.AddrPort { return netip.AddrPortFrom(r.VIP, 6443) }

// TestBGPDaemonECMPAndBackends: both vipd LBs announce the VIP once their
// checks pass and the router installs one ECMP route; a client reaches
// the control plane through it. An LB that cannot reach its backends
// withdraws (the router keeps the other) and announces again when it can.
func TestBGPDaemonECMPAndBackends(t *testing.T) {
	lab.RequireNft(t)
	r, _, nodes := bgpLab(t, lab.RouterOptions{}, lab.BGPOptions{DrainTime: "1s"})
	vip, lb1, lb2 := r.VIPPrefix(), r.LBs[0], r.LBs[1]

	// vipd put the VIP on lb1's loopback; the status says why it is
	// announced and that the session is up.
	if !lb1.HasLoopback(r.VIP.String()) {
		t.Error("the VIP is not on lb1's loopback while announced")
	}
	st, err := nodes[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "bgp" || st.BGP == nil || len(st.BGP.Sessions) != 1 || st.BGP.Sessions[0].State != "established" || st.BGP.Sessions[0].PrefixesSent != 1 {
		t.Fatalf("lb1 status: mode %q bgp %+v", st.Mode, st.BGP)
	}
	if v := st.BGP.VIPs[0]; v.State != "announced" || v.Peers != 1 || !strings.Contains(v.Reason, "3 of 3 healthy behind kubernetes") {
		t.Errorf("lb1 VIP %+v", v)
	}
	for i := 0; i < 20; i++ {
		c, err := lab.DialFrom(r.Client, vipTarget(r).String(), time.Second)
		if err != nil {
			t.Fatalf("client connect %d through the router: %v", i, err)
		}
		c.Close()
	}

	// lb1 loses the control plane (its packets to the CP subnet are
	// dropped): its checks fail, it withdraws, the router keeps lb2.
	lab.Nft(t, lb1.NS, fmt.Sprintf("table inet vipd_cut {\n chain out { type filter hook output priority 0; ip daddr %s drop; }\n}\n", r.Subnet))
	took := lab.AwaitNextHops(t, r.Router, vip, 10*time.Second, lb2.Addr)
	t.Logf("lb1 cut from its backends: the router lost it after %v (checks every 500 ms, fall 2)", took)
	v := nodes[0].AwaitBGPVIP("withdrawn", "backends: 0 of 3 healthy behind kubernetes (need 1)", 5*time.Second)
	t.Logf("lb1 says: %s", v.Reason)
	if lb1.HasLoopback(r.VIP.String()) {
		t.Error("the VIP is still on lb1's loopback after the withdrawal")
	}
	out, err := nodes[0].CLI("status")
	if err != nil || !strings.Contains(out, "WITHDRAWN") || !strings.Contains(out, "backends: 0 of 3 healthy") {
		t.Errorf("vipd status text (%v):\n%s", err, out)
	}

	lab.Nft(t, lb1.NS, "delete table inet vipd_cut\n")
	lab.AwaitNextHops(t, r.Router, vip, 10*time.Second, lb1.Addr, lb2.Addr)
}

// probeGap stops the prober and reports the gap and the failed connects.
func probeGap(t *testing.T, p *lab.Prober, what string) (time.Duration, int, int) {
	t.Helper()
	samples := p.Stop()
	g, failed := lab.Gap(samples)
	t.Logf("%s: %d connects, %d failed, longest gap %v", what, len(samples), failed, g)
	return g, failed, len(samples)
}

// TestBGPDaemonPlannedWithdrawal: with a client connecting every 10 ms
// through the router, `vipd drain self`, its undo, a drill and a SIGTERM
// cost no failed new connection: the LB tells the router to prefer the
// other (GRACEFUL_SHUTDOWN) while it still serves, and withdraws only
// after the drain time.
func TestBGPDaemonPlannedWithdrawal(t *testing.T) {
	r, _, nodes := bgpLab(t, lab.RouterOptions{}, lab.BGPOptions{DrainTime: "1s"})
	vip, lb1, lb2 := r.VIPPrefix(), r.LBs[0].Addr, r.LBs[1].Addr
	p := lab.StartProber(t, r.Client, vipTarget(r), false)

	// drain self: answers once withdrawn; the router kept lb2 only.
	t0 := time.Now()
	out, err := nodes[0].CLI("drain", "self")
	if err != nil {
		t.Fatalf("vipd drain self: %v\n%s", err, out)
	}
	t.Logf("vipd drain self took %v:\n%s", time.Since(t0).Round(time.Millisecond), out)
	if got, _ := lab.KernelNextHops(r.Router, vip); fmt.Sprint(got) != fmt.Sprint([]netip.Addr{lb2}) {
		t.Errorf("after drain self the router routes via %v, want only lb2", got)
	}
	if st, _ := nodes[0].Status(); !st.BGP.Drained || st.BGP.VIPs[0].State != "withdrawn" {
		t.Errorf("lb1 after drain: %+v", st.BGP)
	}
	if out, err := nodes[0].CLI("drain", "self", "--undo"); err != nil {
		t.Fatalf("vipd drain self --undo: %v\n%s", err, out)
	}
	lab.AwaitNextHops(t, r.Router, vip, 10*time.Second, lb1, lb2)

	// A drill on lb1: drain, withdraw, hold 1 s, announce again.
	out, err = nodes[0].CLI("drill", "failover", "--hold", "1s", "-o", "json")
	if err != nil {
		t.Fatalf("vipd drill failover: %v\n%s", err, out)
	}
	var res control.DrillResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("drill output: %v\n%s", err, out)
	}
	t.Logf("drill: %+v", res)
	if res.Mode != "bgp" || res.Resumed || res.Failed != 0 || res.Probes == 0 {
		t.Errorf("drill result %+v, want a BGP drill with no failed probe", res)
	}
	lab.AwaitNextHops(t, r.Router, vip, 10*time.Second, lb1, lb2)

	// SIGTERM on lb2: the planned withdrawal, then the process exits.
	t0 = time.Now()
	if err := nodes[1].Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("lb2 exit after SIGTERM: %v", err)
	}
	t.Logf("lb2 exited %v after SIGTERM (drain time 1 s)", time.Since(t0).Round(time.Millisecond))
	if time.Since(t0) < time.Second {
		t.Error("lb2 exited before its drain time: the withdrawal was not planned")
	}
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, lb1)
	time.Sleep(200 * time.Millisecond) // a few more probes after the exit

	_, failed, n := probeGap(t, p, "drain self, undo, drill, SIGTERM")
	if failed != 0 || n < 100 {
		t.Errorf("%d of %d new connections failed during planned withdrawals, want 0", failed, n)
	}
}

// TestBGPDaemonKilled: SIGKILL of one LB's vipd. Its kernel resets the
// BGP session and the router withdraws the LB's route at once (well
// before the 9 s hold time); the client's connections hashed to that LB
// meanwhile are refused (the VIP is still on its loopback, nobody
// listens).
func TestBGPDaemonKilled(t *testing.T) {
	r, _, nodes := bgpLab(t, lab.RouterOptions{}, lab.BGPOptions{})
	p := lab.StartProber(t, r.Client, vipTarget(r), false)
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	nodes[0].Signal(syscall.SIGKILL)
	took := lab.AwaitNextHops(t, r.Router, r.VIPPrefix(), 5*time.Second, r.LBs[1].Addr)
	t.Logf("vipd SIGKILLed: the router withdrew lb1 after %v (hold time 9 s)", time.Since(t0).Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("withdrawn after %v; a reset session must withdraw at once, not after the hold time", took)
	}
	time.Sleep(300 * time.Millisecond)
	gap, failed, _ := probeGap(t, p, "vipd SIGKILL")
	if gap > 2*time.Second {
		t.Errorf("client gap %v (%d failed), want about the withdrawal time", gap, failed)
	}
}

// TestBGPDaemonDeadHost: an LB host that stops answering (every packet in
// and out dropped, link up). With BFD (300 ms x 3, vipd's default) the
// router notices in about 0.9 s while the BGP hold time is 9 s; the
// client's connections hashed to it time out meanwhile. (100 ms x 3 gives
// about 300 ms on an idle machine, but flaps the sessions of a healthy LB
// when the host is starved of CPU: docs/bgp.md.)
func TestBGPDaemonDeadHost(t *testing.T) {
	lab.RequireNft(t)
	r, rt, _ := bgpLab(t, lab.RouterOptions{BFD: true, BFDInterval: 300}, lab.BGPOptions{BFD: true, BFDInterval: "300ms"})
	if err := lab.WaitFor(15*time.Second, func() error {
		out, err := rt.Vtysh("show bfd peers brief")
		if err != nil {
			return err
		}
		if strings.Count(out, " up ") < 2 {
			return fmt.Errorf("bfd peers not up:\n%s", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// BFD flaps once as the sessions come up (docs/bgp.md); wait for the
	// route to be whole again.
	lab.AwaitNextHops(t, r.Router, r.VIPPrefix(), 15*time.Second, lbAddrs(r)...)
	p := lab.StartProber(t, r.Client, vipTarget(r), false)
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	deadHost(t, r.LBs[0])
	lab.AwaitNextHops(t, r.Router, r.VIPPrefix(), 10*time.Second, r.LBs[1].Addr)
	took := time.Since(t0)
	t.Logf("dead LB host with BFD 300 ms x 3: the router withdrew it after %v (BGP hold time 9 s)", took.Round(time.Millisecond))
	if took > 2500*time.Millisecond {
		t.Errorf("withdrawn after %v, want about the BFD detection time (900 ms), far below the 9 s hold time", took)
	}
	time.Sleep(300 * time.Millisecond)
	gap, failed, _ := probeGap(t, p, "dead host, BFD")
	if gap > 4*time.Second {
		t.Errorf("client gap %v (%d failed), want about the BFD detection time", gap, failed)
	}
}
