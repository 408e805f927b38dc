package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/bgp"
	"github.com/vipd/vipd/integration/lab"
)

// BGP mode against a real router: FRR (zebra + bgpd, bfdd for BFD) in its
// own namespace, LB namespaces on different subnets, each running the bgp
// package's Speaker (lab.StartSpeaker). What is asserted is what the
// router's kernel forwards with: the ECMP route to the VIP.

// speakerConfig is LB i's speaker: its own ASN (one per rack), the router
// on its link as the only peer.
func speakerConfig(r *lab.Routed, i int, hold time.Duration, bfd *bgp.BFD) bgp.Config {
	return bgp.Config{ASN: lab.LBASN(i), RouterID: r.LBs[i].Addr, Peers: []bgp.Peer{{
		Address: r.Gateways[i], ASN: r.ASN, HoldTime: hold, ConnectRetry: time.Second, BFD: bfd,
	}}}
}

// startSpeakers runs one speaker per LB and waits for every session.
func startSpeakers(t *testing.T, r *lab.Routed, rt *lab.FRR, hold time.Duration, bfd *bgp.BFD) []*lab.Speaker {
	t.Helper()
	var sp []*lab.Speaker
	for i, lb := range r.LBs {
		sp = append(sp, r.StartSpeaker(t, lb, lb.Name, speakerConfig(r, i, hold, bfd)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range sp {
				t.Logf("--- %s speaker log ---\n%s", s.Name, s.Log())
			}
		}
	})
	rt.AwaitEstablished(20*time.Second, lbAddrs(r)...)
	for _, s := range sp {
		s.AwaitEstablished(5 * time.Second)
	}
	return sp
}

func lbAddrs(r *lab.Routed) []netip.Addr {
	var out []netip.Addr
	for _, lb := range r.LBs {
		out = append(out, lb.Addr)
	}
	return out
}

// TestBGPECMP: two LBs on different subnets announce the VIP and the
// router installs one route with both as next hops; a withdrawal removes
// exactly that next hop, and the last one removes the route.
func TestBGPECMP(t *testing.T) {
	r := lab.NewRouted(t, 2)
	rt := r.StartRouter(t, lab.RouterOptions{})
	sp := startSpeakers(t, r, rt, 0, nil)
	vip := r.VIPPrefix()
	lb1, lb2 := r.LBs[0].Addr, r.LBs[1].Addr

	sp[0].Announce(vip, bgp.Attrs{})
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, lb1)
	sp[1].Announce(vip, bgp.Attrs{})
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, lb1, lb2)

	paths, err := rt.Paths(vip)
	if err != nil {
		t.Fatal(err)
	}
	multi := 0
	for _, p := range paths {
		if p.Multipath || p.Best {
			multi++
		}
	}
	if len(paths) != 2 || multi != 2 {
		t.Errorf("bgpd paths %+v, want two, both best or multipath (maximum-paths)", paths)
	}
	// The speaker's own view: one session, one prefix sent, announced.
	st, err := sp[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Peers[0]; p.State != bgp.StateEstablished || p.PrefixesSent != 1 || p.Uptime < 0 {
		t.Errorf("lb1 peer status %+v", p)
	}
	if pf := st.Prefixes[0]; pf.State != bgp.Announced || pf.Peers != 1 {
		t.Errorf("lb1 prefix status %+v", pf)
	}

	sp[0].Withdraw(vip, "backends: 0 of 3 healthy")
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, lb2)
	sp[1].Withdraw(vip, "drain self")
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second)
	st, _ = sp[0].Status()
	if pf := st.Prefixes[0]; pf.State != bgp.Withdrawn || pf.Reason != "backends: 0 of 3 healthy" {
		t.Errorf("lb1 prefix status after withdraw %+v", pf)
	}
}

// TestBGPGracefulShutdown: a draining LB re-announces with the
// GRACEFUL_SHUTDOWN community (RFC 8326) and the worst MED; FRR takes its
// path out of the ECMP group while the session and the path stay, so the
// LB can still serve what reaches it.
func TestBGPGracefulShutdown(t *testing.T) {
	r := lab.NewRouted(t, 2)
	rt := r.StartRouter(t, lab.RouterOptions{})
	sp := startSpeakers(t, r, rt, 0, nil)
	vip := r.VIPPrefix()
	lb1, lb2 := r.LBs[0].Addr, r.LBs[1].Addr
	for _, s := range sp {
		s.Announce(vip, bgp.Attrs{})
	}
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, lb1, lb2)

	sp[0].Drain(vip, "drain self")
	took := lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, lb2)
	t.Logf("router moved off the draining LB in %v", took)
	paths, err := rt.Paths(vip)
	if err != nil {
		t.Fatal(err)
	}
	var drained *lab.BGPPath
	for i := range paths {
		if paths[i].NextHop == lb1.String() {
			drained = &paths[i]
		}
	}
	if drained == nil {
		t.Fatalf("the draining path is gone from bgpd (%+v); it must stay until the withdrawal", paths)
	}
	if !strings.Contains(drained.Communities, "gshut") && !strings.Contains(drained.Communities, "graceful-shutdown") {
		t.Errorf("draining path communities %q, want graceful-shutdown", drained.Communities)
	}
	if drained.Best || drained.Multipath {
		t.Errorf("draining path still selected: %+v", *drained)
	}
	t.Logf("draining path as FRR sees it: %+v", *drained)

	// Announcing again (the node is back) puts it back into ECMP.
	sp[0].Announce(vip, bgp.Attrs{})
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, lb1, lb2)
}

// TestBGPSpeakerKilled: SIGKILL of one LB's speaker. Its kernel closes the
// TCP session, FRR withdraws the LB's path at once (no hold timer) and
// the kernel route keeps only the other LB.
func TestBGPSpeakerKilled(t *testing.T) {
	r := lab.NewRouted(t, 2)
	rt := r.StartRouter(t, lab.RouterOptions{})
	sp := startSpeakers(t, r, rt, 0, nil) // hold time 9 s
	vip := r.VIPPrefix()
	for _, s := range sp {
		s.Announce(vip, bgp.Attrs{})
	}
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, r.LBs[0].Addr, r.LBs[1].Addr)

	start := time.Now()
	sp[0].Signal(syscall.SIGKILL)
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, r.LBs[1].Addr)
	took := time.Since(start)
	t.Logf("killed speaker: route withdrawn after %v (hold time 9s)", took)
	if took > time.Second {
		t.Errorf("withdrawn after %v; a closed session must withdraw at once, not after the hold time", took)
	}
}

// deadHost makes h drop every packet in and out (a host that froze or
// lost power behind a switch: the router's link stays up).
func deadHost(t *testing.T, h *lab.Host) {
	t.Helper()
	rules := "table inet vipd_dead {\n chain in { type filter hook input priority -500; policy drop; }\n chain out { type filter hook output priority -500; policy drop; }\n}\n"
	cmd := exec.Command("ip", "netns", "exec", h.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", h.NS, err, out)
	}
}

// TestBGPDeadHostHoldTimer: an LB host that stops answering is noticed by
// the router's hold timer (3 s here): the route loses it after 2-3 s.
func TestBGPDeadHostHoldTimer(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("SKIP: needs nft (nftables)")
	}
	r := lab.NewRouted(t, 2)
	rt := r.StartRouter(t, lab.RouterOptions{HoldTime: 3, Keepalive: 1})
	sp := startSpeakers(t, r, rt, 3*time.Second, nil)
	vip := r.VIPPrefix()
	for _, s := range sp {
		s.Announce(vip, bgp.Attrs{})
	}
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, r.LBs[0].Addr, r.LBs[1].Addr)

	start := time.Now()
	deadHost(t, r.LBs[0])
	lab.AwaitNextHops(t, r.Router, vip, 10*time.Second, r.LBs[1].Addr)
	took := time.Since(start)
	t.Logf("dead host: route withdrawn after %v (hold time 3s, keepalive 1s)", took)
	if took < 1500*time.Millisecond || took > 4500*time.Millisecond {
		t.Errorf("withdrawn after %v, want about the hold time (2-3 s after the last keepalive)", took)
	}
}

// TestBGPDeadHostBFD: with BFD (GoBGP's on the LB, FRR's bfdd on the
// router, 100 ms x 3) a dead host is noticed in a few hundred ms while the
// BGP hold time is still 9 s.
func TestBGPDeadHostBFD(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("SKIP: needs nft (nftables)")
	}
	r := lab.NewRouted(t, 2)
	// 300 ms x 3 is vipd's default; at 100 ms GoBGP's BFD resets healthy
	// sessions on a loaded machine (docs/bgp.md).
	rt := r.StartRouter(t, lab.RouterOptions{BFD: true, BFDInterval: 300})
	bfd := &bgp.BFD{MinRx: 300 * time.Millisecond, MinTx: 300 * time.Millisecond, Multiplier: 3}
	sp := startSpeakers(t, r, rt, 0, bfd)
	vip := r.VIPPrefix()
	for _, s := range sp {
		s.Announce(vip, bgp.Attrs{})
	}
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, r.LBs[0].Addr, r.LBs[1].Addr)
	if err := lab.WaitFor(10*time.Second, func() error {
		out, err := rt.Vtysh("show bfd peers brief")
		if err != nil {
			return err
		}
		if strings.Count(out, " up ") < 2 {
			return fmt.Errorf("bfd peers not up:\n%s", out)
		}
		st, err := sp[0].Status()
		if err != nil {
			return err
		}
		if st.Peers[0].BFD != "up" {
			return fmt.Errorf("lb1 BFD %q", st.Peers[0].BFD)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s\n--- lb1 speaker ---\n%s", err, rt.Logs(), sp[0].Log())
	}

	// GoBGP's BFD and bfdd disagree once right after the session first
	// comes up (docs/bgp.md): wait until the session has stayed up, with
	// BFD up, for two seconds in a row, so the kill meets a settled pair.
	var flaps uint32
	steady := time.Now()
	if err := lab.WaitFor(30*time.Second, func() error {
		st, err := sp[0].Status()
		if err != nil {
			return err
		}
		p := st.Peers[0]
		if p.BFD != "up" || p.State != "established" || p.Flaps != flaps {
			flaps, steady = p.Flaps, time.Now()
			return fmt.Errorf("lb1 session %s, BFD %s, flaps %d", p.State, p.BFD, p.Flaps)
		}
		if time.Since(steady) < 2*time.Second {
			return fmt.Errorf("lb1 steady for %v only", time.Since(steady))
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n--- lb1 speaker ---\n%s", err, sp[0].Log())
	}
	t.Logf("lb1 session before the test: flaps %d", flaps)

	start := time.Now()
	deadHost(t, r.LBs[0])
	lab.AwaitNextHops(t, r.Router, vip, 10*time.Second, r.LBs[1].Addr)
	took := time.Since(start)
	t.Logf("dead host with BFD 300ms x 3: route withdrawn after %v (BGP hold time 9s)", took)
	if took > 2500*time.Millisecond {
		t.Errorf("withdrawn after %v, want about 900 ms (BFD detection time), far below the 9 s hold time", took)
	}
}

// TestBGPPasswordPassive: TCP MD5 (RFC 2385) on both sessions; lb2 is
// passive, so the router dials it on port 179.
func TestBGPPasswordPassive(t *testing.T) {
	r := lab.NewRouted(t, 2)
	rt := r.StartRouter(t, lab.RouterOptions{Password: "rack-secret"})
	var sp []*lab.Speaker
	for i, lb := range r.LBs {
		cfg := speakerConfig(r, i, 0, nil)
		cfg.Peers[0].Password = "rack-secret"
		cfg.Peers[0].Passive = i == 1
		sp = append(sp, r.StartSpeaker(t, lb, lb.Name, cfg))
	}
	rt.AwaitEstablished(20*time.Second, lbAddrs(r)...)
	vip := r.VIPPrefix()
	for _, s := range sp {
		s.Announce(vip, bgp.Attrs{})
	}
	lab.AwaitNextHops(t, r.Router, vip, 5*time.Second, r.LBs[0].Addr, r.LBs[1].Addr)
}
