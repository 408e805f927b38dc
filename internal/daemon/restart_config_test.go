package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/handoff"
)

// BGP mode refuses a restart, saying why and what to do instead: a GoBGP
// session cannot move to another process without the router seeing it
// end. Nothing is started, nothing frozen.
func TestRestartRefusedInBGPMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", bgpConfig(""))
		settle(time.Second)
		started := false
		n.d.os.StartSuccessor = func(context.Context, handoff.Spawn) (Successor, error) {
			started = true
			return nil, errors.New("not reached")
		}
		_, err := n.d.Restart(context.Background())
		if !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), "BGP") || !strings.Contains(err.Error(), "systemctl restart") {
			t.Errorf("restart in BGP mode: %v, want refused naming BGP and systemctl restart", err)
		}
		if started || n.px.frozen != 0 {
			t.Errorf("started %v, proxy frozen %d: want nothing done", started, n.px.frozen)
		}
	})
}

// twoInstances is lb1 preferred for both instances; without ingress the
// "ingress" instance and its frontend are gone.
func twoInstances(ingress bool) string {
	s := `
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
[[backend]]
name = "b"
servers = ["192.0.2.31:6443"]
check = { type = "none" }
`
	if ingress {
		s += `
[[instance]]
name = "ingress"
vrid = 52
vips = ["192.0.2.20"]
priority = { lb1 = 150, lb2 = 100 }
[[frontend]]
name = "ingress"
port = 443
vip = "192.0.2.20"
backend = "b"
`
	}
	return s
}

// An instance the new config no longer has leaves the planned way in the
// new process: priority 0, the backup takes over, then the VIP goes; the
// instance the config keeps makes no transition on either node.
func TestRestartRemovedInstanceLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1 := newNode(t, b, "lb1", twoInstances(true))
		restartOS(t, b, lb1, &notified)
		lb1.start()
		lb2 := startNode(t, b, "lb2", twoInstances(true))
		settle(2 * time.Second)
		inst := func(n *testNode, name string) control.Instance {
			for _, in := range n.d.Status().Instances {
				if in.Name == name {
					return in
				}
			}
			return control.Instance{}
		}
		if inst(lb1, "api").State != "MASTER" || inst(lb1, "ingress").State != "MASTER" {
			t.Fatalf("lb1 is not MASTER of both")
		}
		api1, api2 := inst(lb1, "api").Transitions, inst(lb2, "api").Transitions
		h := successorOf(t, b, lb1, twoInstances(false), nil)
		if res, err := lb1.d.Restart(context.Background()); err != nil || res.Outcome != control.RestartHandedOver {
			t.Fatalf("restart: %+v %v", res, err)
		}
		exitOld(t, lb1, h)
		settle(5 * time.Second)
		n := h.child
		if in := inst(n, "api"); in.State != "MASTER" || in.Transitions != api1 {
			t.Errorf("new lb1 api: %s, %d transitions; want MASTER, %d", in.State, in.Transitions, api1)
		}
		if in := inst(lb2, "api"); in.Transitions != api2 {
			t.Errorf("lb2 api made %d transitions", in.Transitions-api2)
		}
		if in := inst(lb2, "ingress"); in.State != "MASTER" || !strings.Contains(in.LastReason, "priority 0") {
			t.Errorf("lb2 ingress: %s (%q), want MASTER after a priority-0 advert", in.State, in.LastReason)
		}
		if n.addrs.has("192.0.2.20/32") || !n.addrs.has("192.0.2.10/32") {
			t.Errorf("lb1 holds 192.0.2.20 %v, 192.0.2.10 %v; want only the kept instance's VIP", n.addrs.has("192.0.2.20/32"), n.addrs.has("192.0.2.10/32"))
		}
		if len(n.d.Status().Instances) != 1 {
			t.Errorf("status lists %d instances, want the config's 1", len(n.d.Status().Instances))
		}
		// The instance that left does not stand in the way of the next
		// restart.
		h2 := successorOf(t, b, n, twoInstances(false), nil)
		restartOS(t, b, n, &notified)
		if res, err := n.d.Restart(context.Background()); err != nil || res.Outcome != control.RestartHandedOver {
			t.Fatalf("second restart: %+v %v", res, err)
		}
		exitOld(t, n, h2)
		settle(2 * time.Second)
		if in := inst(h2.child, "api"); in.State != "MASTER" || in.Transitions != api1 {
			t.Errorf("api after the second restart: %s, %d transitions", in.State, in.Transitions)
		}
	})
}

// A VIP the new config adds is added (and announced) by the MASTER at
// once, with no transition; one it drops stays until the instance leaves
// MASTER.
func TestRestartAddsVIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1, lb2 := pair(t, b, baseConfig(""), &notified)
		t1, t2 := lb1.transitions(), lb2.transitions()
		more := strings.Replace(baseConfig(""), `vips = ["192.0.2.10/32"]`, `vips = ["192.0.2.10/32", "192.0.2.11/32"]`, 1)
		h := successorOf(t, b, lb1, more, nil)
		if res, err := lb1.d.Restart(context.Background()); err != nil || res.Outcome != control.RestartHandedOver {
			t.Fatalf("restart: %+v %v", res, err)
		}
		exitOld(t, lb1, h)
		settle(2 * time.Second)
		n := h.child
		if !n.addrs.has("192.0.2.10/32") || !n.addrs.has("192.0.2.11/32") {
			t.Errorf("VIPs held: .10 %v .11 %v, want both", n.addrs.has("192.0.2.10/32"), n.addrs.has("192.0.2.11/32"))
		}
		if n.transitions() != t1 || lb2.transitions() != t2 {
			t.Errorf("transitions %d/%d, want %d/%d", n.transitions(), lb2.transitions(), t1, t2)
		}
	})
}

// Single-LB mode restarts hitless too: the solo instance's frontends
// never stop listening (the old proxy is abandoned, the new one binds on
// the listeners handed over).
func TestRestartSingleLB(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		text := "[[frontend]]\nname = \"kubernetes\"\nport = 6443\naddress = \"192.0.2.99\"\nbackend = \"b\"\n[[backend]]\nname = \"b\"\nservers = [\"192.0.2.31:6443\"]\ncheck = { type = \"none\" }\n"
		b := newBus()
		var notified []int
		old := newNode(t, b, "lb1", text)
		restartOS(t, b, old, &notified)
		old.start()
		if !old.px.isListening("kubernetes") {
			t.Fatal("single LB not listening")
		}
		h := successorOf(t, b, old, text, nil)
		if res, err := old.d.Restart(context.Background()); err != nil || res.Outcome != control.RestartHandedOver {
			t.Fatalf("restart: %+v %v", res, err)
		}
		exitOld(t, old, h)
		synctest.Wait()
		if !old.px.isListening("kubernetes") || old.px.abandoned != 1 {
			t.Errorf("old proxy: listening %v abandoned %d; want true 1 (never unlistened)", old.px.isListening("kubernetes"), old.px.abandoned)
		}
		if !h.child.px.isListening("kubernetes") {
			t.Error("new proxy not listening")
		}
		if st := h.child.d.Status(); st.Mode != "single" || st.LastRestart == nil {
			t.Errorf("new status: mode %q last restart %+v", st.Mode, st.LastRestart)
		}
	})
}

// A renamed instance (same VRID, same interface) is the same virtual
// router: it carries on with no transition.
func TestRestartRenamedInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1, lb2 := pair(t, b, twoInstances(false), &notified)
		t1, t2 := lb1.transitions(), lb2.transitions()
		h := successorOf(t, b, lb1, strings.Replace(twoInstances(false), `name = "api"`, `name = "kube"`, 1), nil)
		if res, err := lb1.d.Restart(context.Background()); err != nil || res.Outcome != control.RestartHandedOver {
			t.Fatalf("restart: %+v %v", res, err)
		}
		exitOld(t, lb1, h)
		settle(3 * time.Second)
		st := h.child.d.Status()
		if len(st.Instances) != 1 || st.Instances[0].Name != "kube" || st.Instances[0].State != "MASTER" || st.Instances[0].Transitions != t1 {
			t.Errorf("new lb1: %+v, want kube MASTER with %d transitions", st.Instances, t1)
		}
		if lb2.transitions() != t2 {
			t.Errorf("lb2 made %d transitions", lb2.transitions()-t2)
		}
	})
}
