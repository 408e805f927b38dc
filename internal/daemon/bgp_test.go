package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/vipd/vipd/bgp"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
)

// The daemon's BGP side in a synctest bubble: the fake speaker records
// each call with what a client would have met on the host at that moment,
// so these tests check the order of effects (issue 14): announced only
// with the listener bound and the VIP on the loopback; a planned leave
// drains, keeps serving for drain_time, then withdraws; failed backends
// withdraw at once; the sessions end (CEASE) only after the last
// withdrawal.

const bgpVIP = "192.0.2.20/32"

func bgpConfig(extra string) string {
	return `
[bgp]
asn = 64512
vips = ["192.0.2.20"]
drain_time = "5s"
communities = ["64512:100"]

[[bgp.peer]]
address = "10.99.0.1"
asn = 64500

[[node]]
name = "lb1"
address = "10.99.0.11"

[[node]]
name = "lb2"
address = "10.99.0.12"

[[frontend]]
name = "kubernetes"
port = 6443
backend = "kube-apiserver"
vip = "192.0.2.20"

[[backend]]
name = "kube-apiserver"
servers = ["192.0.2.31:6443", "192.0.2.32:6443"]
check = { type = "none" }
` + extra
}

func wantCalls(t *testing.T, what string, got, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: speaker calls (-want +got):\n%s", what, diff)
	}
}

func (n *testNode) bgpVIPState() control.BGPVIP {
	n.t.Helper()
	st := n.d.Status()
	if st.BGP == nil || len(st.BGP.VIPs) == 0 {
		n.t.Fatalf("%s: no bgp section in status: %+v", n.name, st.BGP)
	}
	return st.BGP.VIPs[0]
}

const served = "(listening=true lo=true)"

// A healthy node binds the frontend, puts the VIP on the loopback, then
// announces it with its attributes; status says so.
func TestDaemonBGPAnnouncesWhenServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", bgpConfig(""))
		settle(time.Second)
		wantCalls(t, "start", n.sp.log(), []string{"announce " + bgpVIP + " " + served})
		if a := n.sp.attrsOf(bgpVIP); len(a.Communities) != 1 || a.Communities[0] != bgp.Community(64512<<16|100) {
			t.Errorf("announced with %+v, want the configured community", a)
		}
		st := n.d.Status()
		if st.Mode != "bgp" || len(st.Instances) != 0 {
			t.Errorf("mode %q with %d instances, want bgp and none (no solo instance without fixed frontends)", st.Mode, len(st.Instances))
		}
		v := n.bgpVIPState()
		if v.State != bgp.Announced || v.Peers != 1 || !cmp.Equal(v.Frontends, []string{"kubernetes"}) || !strings.Contains(v.Reason, "1 of 2 healthy behind kubernetes (need 1)") {
			t.Errorf("VIP status %+v", v)
		}
		if s := st.BGP.Sessions; len(s) != 1 || s[0].State != bgp.StateEstablished || s[0].Peer != "10.99.0.1" {
			t.Errorf("sessions %+v", s)
		}
		if st.BGP.RouterID != "10.99.0.11" || st.BGP.DrainTimeMs != 5000 {
			t.Errorf("bgp status %+v", st.BGP)
		}
		// A router's NOTIFICATION text reaches status without control
		// characters (issue 9's rule for remote text).
		n.sp.mu.Lock()
		n.sp.lastErr = "notification received: \x1b[2Kadministrative shutdown"
		n.sp.mu.Unlock()
		if got := n.d.Status().BGP.Sessions[0].LastError; got != "notification received: [2Kadministrative shutdown" {
			t.Errorf("last error %q, want it without the escape character", got)
		}
	})
}

// A node whose backends are below min_healthy withdraws at once (no
// drain) while still listening, then lets go; it comes back when they do.
func TestDaemonBGPBackendsDownWithdraws(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		track := "[[track]]\nname = \"enough\"\ntype = \"backends\"\nfrontend = \"kubernetes\"\nmin_healthy = 2\n"
		n := newNode(t, newBus(), "lb1", bgpConfig(track))
		n.px.setHealthy("kubernetes", 2)
		n.start()
		settle(time.Second)
		n.sp.log()
		n.px.setHealthy("kubernetes", 1)
		n.d.health.updateBackendTrackers()
		settle(10 * time.Millisecond)
		wantCalls(t, "backends below min_healthy", n.sp.log(),
			[]string{"withdraw " + bgpVIP + " " + served + ": backends: 1 of 2 healthy behind kubernetes (need 2)"})
		if n.px.isListening("kubernetes") || n.addrs.has(bgpVIP) {
			t.Error("still listening or holding the VIP after the withdrawal")
		}
		if v := n.bgpVIPState(); v.State != bgp.Withdrawn || v.Reason != "backends: 1 of 2 healthy behind kubernetes (need 2)" {
			t.Errorf("status %+v", v)
		}
		n.px.setHealthy("kubernetes", 2)
		n.d.health.updateBackendTrackers()
		settle(10 * time.Millisecond)
		wantCalls(t, "back", n.sp.log(), []string{"announce " + bgpVIP + " " + served})
	})
}

// Nothing reaches the announcer before the health checks completed a
// round: until then it has no verdict and announces nothing.
func TestDaemonBGPWaitsForChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, newBus(), "lb1", bgpConfig(""))
		cfg, node := n.d.config()
		b, err := n.d.openBGP(cfg, node)
		if err != nil {
			t.Fatal(err)
		}
		n.d.bgp = b
		n.d.up.Store(true)
		n.d.pushBGPVerdicts()
		b.runner.mu.Lock()
		early := b.runner.box.verdicts
		b.runner.mu.Unlock()
		if early != nil {
			t.Fatalf("verdicts %v reached the announcer before the first round", early)
		}
		b.setReady(n.d)
		b.runner.mu.Lock()
		got := b.runner.box.verdicts
		b.runner.mu.Unlock()
		if v, ok := got[netip.MustParseAddr("192.0.2.20")]; !ok || !v.ok {
			t.Errorf("verdicts after the first round: %v", got)
		}
	})
}

// SIGTERM: drain, keep serving for drain_time, withdraw, let go, end the
// sessions, and only then does Run return.
func TestDaemonBGPShutdownIsPlanned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", bgpConfig(""))
		settle(time.Second)
		n.sp.log()
		n.d.Shutdown()
		settle(4900 * time.Millisecond)
		wantCalls(t, "during the drain", n.sp.log(), []string{"drain " + bgpVIP + " " + served})
		if v := n.bgpVIPState(); v.State != bgp.Draining || !n.px.isListening("kubernetes") {
			t.Fatalf("during the drain: %+v, listening %v", v, n.px.isListening("kubernetes"))
		}
		if ok, _ := n.stopped(); ok {
			t.Fatal("Run returned before the withdrawal")
		}
		settle(200 * time.Millisecond)
		wantCalls(t, "after drain_time", n.sp.log(), []string{"withdraw " + bgpVIP + " " + served + ": vipd is stopping", "cease"})
		if ok, err := n.stopped(); !ok || err != nil {
			t.Fatalf("stopped %v err %v", ok, err)
		}
		if n.px.isListening("kubernetes") || n.addrs.has(bgpVIP) {
			t.Error("listener or VIP left after the stop")
		}
	})
}

// The process torn down without a graceful stop withdraws at once.
func TestDaemonBGPHardStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", bgpConfig(""))
		settle(time.Second)
		n.sp.log()
		n.cancel()
		settle(10 * time.Millisecond)
		wantCalls(t, "hard stop", n.sp.log(), []string{"withdraw " + bgpVIP + " " + served + ": hard stop: withdrawn at once", "cease"})
		if ok, _ := n.stopped(); !ok {
			t.Error("Run did not return")
		}
	})
}

// A stop before Run means the node never announces.
func TestDaemonBGPStopBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, newBus(), "lb1", bgpConfig(""))
		n.d.Shutdown()
		n.start()
		settle(time.Second)
		if ok, err := n.stopped(); !ok || err != nil {
			t.Fatalf("stopped %v err %v", ok, err)
		}
		wantCalls(t, "stop before start", n.sp.log(), []string{"cease"})
	})
}

// vipd drain self: answers once the VIP is withdrawn the planned way;
// --undo announces again.
func TestDaemonBGPDrainSelf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", bgpConfig(""))
		settle(time.Second)
		n.sp.log()
		t0 := time.Now()
		res, err := n.d.DrainSelf(context.Background(), control.DrainRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took != 5*time.Second || !res.Drained || res.VIPs[0].State != bgp.Withdrawn || res.VIPs[0].Reason != "drained by the operator (vipd drain self)" {
			t.Errorf("drain took %v: %+v", took, res)
		}
		wantCalls(t, "drain", n.sp.log(), []string{"drain " + bgpVIP + " " + served, "withdraw " + bgpVIP + " " + served + ": drained by the operator (vipd drain self)"})
		if !n.d.Status().BGP.Drained {
			t.Error("status does not say drained")
		}
		res, err = n.d.DrainSelf(context.Background(), control.DrainRequest{Undo: true})
		if err != nil || res.Drained {
			t.Fatalf("undo: %+v %v", res, err)
		}
		settle(10 * time.Millisecond)
		wantCalls(t, "undo", n.sp.log(), []string{"announce " + bgpVIP + " " + served})
	})
	synctest.Test(t, func(t *testing.T) {
		// A VRRP-only node has nothing to drain this way.
		n := startNode(t, newBus(), "lb1", baseConfig(""))
		if _, err := n.d.DrainSelf(context.Background(), control.DrainRequest{}); !errors.Is(err, control.ErrRefused) {
			t.Errorf("drain self on a VRRP node: %v, want refused", err)
		}
	})
}

// A drill in BGP mode (automatic without VRRP): drain, withdraw, and the
// probe, which now goes to the other node, finds no gap; then it holds
// back and announces again.
func TestDaemonBGPDrill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n1 := startNode(t, b, "lb1", bgpConfig(""))
		n2 := startNode(t, b, "lb2", bgpConfig(""))
		settle(time.Second)
		n1.sp.log()
		res, err := n1.d.Drill(context.Background(), control.DrillRequest{Hold: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.Mode != "bgp" || res.Resumed || res.GapMs != 0 || res.Failed != 0 || res.TakeoverMs != 5000 || res.Probes == 0 {
			t.Errorf("drill result %+v", res)
		}
		wantCalls(t, "drill", n1.sp.log(), []string{"drain " + bgpVIP + " " + served, "withdraw " + bgpVIP + " " + served + ": drill: withdrawn on purpose"})
		if n2.bgpVIPState().State != bgp.Announced {
			t.Error("lb2 left too")
		}
		settle(3 * time.Second)
		wantCalls(t, "after the hold", n1.sp.log(), []string{"announce " + bgpVIP + " " + served})
		if st := n1.d.Status(); st.LastDrill == nil || st.LastDrill.Mode != "bgp" {
			t.Errorf("last drill %+v", st.LastDrill)
		}
	})
}

// A drill nobody else answers for ends the hold at once.
func TestDaemonBGPDrillNobodyElse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", bgpConfig(""))
		settle(time.Second)
		n.sp.log()
		res, err := n.d.Drill(context.Background(), control.DrillRequest{Hold: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Resumed || res.To != "nobody" || res.Failed == 0 {
			t.Errorf("drill result %+v, want resumed with failed probes", res)
		}
		settle(10 * time.Millisecond)
		if v := n.bgpVIPState(); v.State != bgp.Announced {
			t.Errorf("after a drill nobody answered: %+v, want announced again at once", v)
		}
		// Refused while nothing is announced.
		n.d.DrainSelf(context.Background(), control.DrainRequest{})
		if _, err := n.d.Drill(context.Background(), control.DrillRequest{}); !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), "drained by the operator") {
			t.Errorf("drill of a drained node: %v", err)
		}
	})
}

// A listener that cannot be bound: not announced, retried after a backoff.
func TestDaemonBGPListenFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, newBus(), "lb1", bgpConfig(""))
		n.px.setFailListen(errors.New("address already in use"))
		n.start()
		settle(100 * time.Millisecond)
		for _, c := range n.sp.log() {
			if strings.HasPrefix(c, "announce") {
				t.Errorf("announced although the listener failed: %q", c)
			}
		}
		v := n.bgpVIPState()
		if v.State != bgp.Withdrawn || !strings.Contains(v.Reason, "cannot serve: listen failed: address already in use") || v.RetryAt.IsZero() || v.Failures != 1 {
			t.Errorf("status %+v", v)
		}
		n.px.setFailListen(nil)
		settle(time.Second)
		if calls := n.sp.log(); len(calls) == 0 || calls[len(calls)-1] != "announce "+bgpVIP+" "+served {
			t.Errorf("after the retry: %q", calls)
		}
	})
}

// VRRP for one VIP and BGP for another on one node: each frontend follows
// its side, and a stop waits for both.
func TestDaemonBGPBesideVRRP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		extra := `
[bgp]
asn = 64512
vips = ["192.0.2.20"]
drain_time = "1s"
[[bgp.peer]]
address = "10.99.0.1"
asn = 64500
[[frontend]]
name = "ingress"
port = 443
backend = "kube-apiserver"
vip = "192.0.2.20"
`
		n := startNode(t, newBus(), "lb1", baseConfig(extra))
		settle(time.Second)
		n.mustState("MASTER")
		if !n.px.isListening("kubernetes") || !n.px.isListening("ingress") || !n.addrs.has(vip) || !n.addrs.has(bgpVIP) {
			t.Fatal("want both frontends bound and both VIPs held")
		}
		if st := n.d.Status(); st.Mode != "vrrp" || st.BGP == nil || st.BGP.VIPs[0].State != bgp.Announced || !cmp.Equal(st.BGP.VIPs[0].Frontends, []string{"ingress"}) {
			t.Errorf("status mode %q bgp %+v", st.Mode, st.BGP)
		}
		n.sp.log()
		n.d.Shutdown()
		settle(2 * time.Second)
		if ok, err := n.stopped(); !ok || err != nil {
			t.Fatalf("stopped %v err %v", ok, err)
		}
		wantCalls(t, "stop", n.sp.log(), []string{"drain " + bgpVIP + " " + served, "withdraw " + bgpVIP + " " + served + ": vipd is stopping", "cease"})
	})
}

// A reload applies the attributes and the drain time, binds a frontend
// added to an announced VIP, and refuses a change to the VIPs.
func TestDaemonBGPReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", bgpConfig(""))
		settle(time.Second)
		n.sp.log()
		next := strings.Replace(bgpConfig(""), `communities = ["64512:100"]`, "communities = [\"64512:200\"]\nmed = 50", 1)
		next = strings.Replace(next, `drain_time = "5s"`, `drain_time = "2s"`, 1)
		next += "[[frontend]]\nname = \"talos\"\nport = 50000\nbackend = \"kube-apiserver\"\nvip = \"192.0.2.20\"\n"
		res, err := n.reload(t, next)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(res.Applied, ", "), "bgp (communities, drain_time, med)") {
			t.Errorf("applied %q", res.Applied)
		}
		settle(10 * time.Millisecond)
		wantCalls(t, "reload", n.sp.log(), []string{"announce " + bgpVIP + " " + served})
		if a := n.sp.attrsOf(bgpVIP); a.MED == nil || *a.MED != 50 || a.Communities[0] != bgp.Community(64512<<16|200) {
			t.Errorf("re-announced with %+v", a)
		}
		if !n.px.isListening("talos") {
			t.Error("the added frontend is not bound")
		}
		if st := n.d.Status(); st.BGP.DrainTimeMs != 2000 {
			t.Errorf("drain time %v ms after reload", st.BGP.DrainTimeMs)
		}
		if _, err := n.reload(t, strings.Replace(next, `vips = ["192.0.2.20"]`, `vips = ["192.0.2.20", "192.0.2.21"]`, 1)); !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), "[bgp] vips") {
			t.Errorf("reload of the VIPs: %v, want refused naming [bgp] vips", err)
		}
	})
}

// The health gate of each VIP, from the proxy's counts.
func TestBGPVerdicts(t *testing.T) {
	cfg, err := config.Parse("vipd.toml", []byte(bgpConfig(`
[[track]]
name = "two"
type = "backends"
frontend = "kubernetes"
min_healthy = 2
`)))
	if err != nil {
		t.Fatal(err)
	}
	vips := []netip.Addr{netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("192.0.2.99")}
	got := bgpVerdicts(cfg, vips, func(string) int { return 1 })
	want := map[netip.Addr]bgpVerdict{
		vips[0]: {ok: false, reason: "1 of 2 healthy behind kubernetes (need 2)"},
		vips[1]: {ok: false, reason: `no [[frontend]] has vip = "192.0.2.99"`},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(bgpVerdict{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A speaker that cannot start (port 179 taken) stops the daemon with its
// error, after letting go of what it had set up.
func TestDaemonBGPSpeakerStartFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, newBus(), "lb1", bgpConfig(""))
		n.d.os.NewSpeaker = func(cfg bgp.Config, _ zerolog.Logger) (Speaker, error) {
			n.sp = newFakeSpeaker(cfg, n)
			n.sp.runErr = errors.New("bgp: start: listen tcp :179: address already in use")
			return n.sp, nil
		}
		n.start()
		settle(time.Second)
		ok, err := n.stopped()
		if !ok || err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("stopped %v err %v, want the speaker's error", ok, err)
		}
		if n.px.isListening("kubernetes") || n.addrs.has(bgpVIP) {
			t.Error("listener or VIP left behind")
		}
	})
}
