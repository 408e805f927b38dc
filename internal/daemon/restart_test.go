package daemon

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/handoff"
	"github.com/vipd/vipd/vrrp"
)

// pair starts lb1 (priority 150, MASTER once settled) and lb2 on b, with
// lb1's restart seams in place.
func pair(t *testing.T, b *bus, cfg string, notified *[]int) (lb1, lb2 *testNode) {
	t.Helper()
	lb1 = newNode(t, b, "lb1", cfg)
	restartOS(t, b, lb1, notified)
	lb1.start()
	lb2 = startNode(t, b, "lb2", cfg)
	settle(2 * time.Second)
	lb1.mustState("MASTER")
	lb2.mustState("BACKUP")
	return lb1, lb2
}

// exitOld closes the handoff's end of the old process once its Run has
// returned, as its exit would, and returns what Run returned.
func exitOld(t *testing.T, n *testNode, h *memHandoff) error {
	t.Helper()
	ok, err := n.stopped()
	if !ok {
		t.Fatal("the old daemon's Run has not returned")
	}
	close(h.exited)
	synctest.Wait()
	return err
}

// Issue 13: `vipd restart` on the master hands everything to the new
// process: no transition on either node, the VIP never leaves the
// interface, the old proxy neither unlistens nor closes a connection (it
// abandons them to the new one), systemd learns the new pid, and the new
// process carries the old one's counters on and serves.
func TestRestartHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1, lb2 := pair(t, b, baseConfig(""), &notified)
		t1, t2 := lb1.transitions(), lb2.transitions()
		h := successorOf(t, b, lb1, baseConfig(""), nil)

		res, err := lb1.d.Restart(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != control.RestartHandedOver || res.NewPID != 4242 {
			t.Fatalf("result %+v, want handed-over to 4242", res)
		}
		if err := exitOld(t, lb1, h); err != nil {
			t.Errorf("old Run returned %v, want nil", err)
		}
		settle(10 * time.Second)
		n := h.child
		n.mustState("MASTER")
		lb2.mustState("BACKUP")
		if got := lb2.transitions(); got != t2 {
			t.Errorf("the peer made %d transitions, want none", got-t2)
		}
		if got := n.transitions(); got != t1 {
			t.Errorf("the new process counts %d transitions, want the old one's %d", got, t1)
		}
		if !n.addrs.has(vip) || len(n.addrs.removed) > 0 {
			t.Errorf("VIP held %v, removals %v: want held, never removed", n.addrs.has(vip), n.addrs.removed)
		}
		op := lb1.px
		op.mu.Lock()
		if op.frozen != 1 || op.abandoned != 1 || op.resumed != 0 || op.closes != 0 || !op.listening["kubernetes"] {
			t.Errorf("old proxy: frozen %d abandoned %d resumed %d closes %d listening %v; want 1 1 0 0 true",
				op.frozen, op.abandoned, op.resumed, op.closes, op.listening["kubernetes"])
		}
		op.mu.Unlock()
		n.px.mu.Lock()
		if !n.px.listening["kubernetes"] || n.px.adopted != 1 || n.px.closeAdopted != 1 {
			t.Errorf("new proxy: listening %v adopted %d closed the unused %d times; want true 1 1", n.px.listening["kubernetes"], n.px.adopted, n.px.closeAdopted)
		}
		n.px.mu.Unlock()
		if len(notified) != 1 || notified[0] != 4242 {
			t.Errorf("MAINPID sent %v, want [4242]", notified)
		}
		if lr := n.d.Status().LastRestart; lr == nil || lr.Outcome != control.RestartHandedOver {
			t.Errorf("new process's last_restart %+v, want handed-over", lr)
		}
		if got := lb1.live.said(); len(got) == 0 || !strings.Contains(got[0], "restart") {
			t.Errorf("old liveness said %v, want a goodbye for the restart first", got)
		}
	})
}

// Issue 13, rollback: a new binary that exits at once, one that hangs
// (READY never comes: the 10 s deadline) and one that refuses its config
// leave the old process exactly as it was: still MASTER, no transition
// anywhere, proxy resumed, liveness and beacon running again, and the
// answer says why. A second restart can follow.
func TestRestartRollsBack(t *testing.T) {
	tests := []struct {
		name  string
		child func(h *memHandoff) // what the new process does instead of taking over
		want  string
	}{
		{"exits at once", func(h *memHandoff) { h.done <- errors.New("exit status 1") }, "child exited"},
		{"hangs", func(*memHandoff) {}, "timeout"},
		{"refuses", func(h *memHandoff) { h.refused <- "config: bad file" }, "config: bad file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBus()
				var notified []int
				lb1, lb2 := pair(t, b, baseConfig(""), &notified)
				t1, t2 := lb1.transitions(), lb2.transitions()
				live := lb1.live
				h := newMemHandoff(t, 4343)
				lb1.d.os.StartSuccessor = func(context.Context, handoff.Spawn) (Successor, error) {
					h.hi = handoff.Hello{PID: 4343, Formats: handoff.Supported()}
					tt.child(h)
					return h, nil
				}
				res, err := lb1.d.Restart(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if res.Outcome != control.RestartRolledBack || !strings.Contains(res.Reason, tt.want) {
					t.Errorf("result %+v, want rolled-back saying %q", res, tt.want)
				}
				if !h.aborted {
					t.Error("the new process was not killed")
				}
				settle(10 * time.Second)
				lb1.mustState("MASTER")
				lb2.mustState("BACKUP")
				if lb1.transitions() != t1 || lb2.transitions() != t2 {
					t.Errorf("transitions %d/%d, want %d/%d", lb1.transitions(), lb2.transitions(), t1, t2)
				}
				if lb1.px.resumed != 1 || lb1.px.abandoned != 0 || !lb1.px.isListening("kubernetes") {
					t.Errorf("proxy resumed %d abandoned %d listening %v; want 1 0 true", lb1.px.resumed, lb1.px.abandoned, lb1.px.isListening("kubernetes"))
				}
				if lb1.live == live {
					t.Error("liveness not started again after the rollback")
				}
				if len(notified) > 0 {
					t.Errorf("MAINPID sent %v on a rollback", notified)
				}
				if lr := lb1.d.Status().LastRestart; lr == nil || lr.Outcome != control.RestartRolledBack {
					t.Errorf("last_restart %+v, want rolled-back", lr)
				}
				if err := lb1.d.Server(context.Background(), control.ServerRequest{Backend: "kube-apiserver", Server: "192.0.2.31:6443", Action: "drain"}); errors.Is(err, errRestartBusy) {
					t.Error("server drain still refused after the rollback")
				}
				// Once more, successfully.
				h2 := successorOf(t, b, lb1, baseConfig(""), nil)
				if res, err := lb1.d.Restart(context.Background()); err != nil || res.Outcome != control.RestartHandedOver {
					t.Fatalf("second restart: %+v %v", res, err)
				}
				exitOld(t, lb1, h2)
				settle(5 * time.Second)
				h2.child.mustState("MASTER")
				if lb2.transitions() != t2 {
					t.Errorf("the peer made %d transitions", lb2.transitions()-t2)
				}
			})
		})
	}
}

// Issue 13, version skew: a new binary that reads none of our state
// formats gets the planned handover: the old process sends priority 0 and
// exits as on SIGTERM (the backup takes over), systemd is told the new
// pid first, and the new process starts fresh once the old one is gone.
func TestRestartVersionSkew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1, lb2 := pair(t, b, baseConfig(""), &notified)
		h := successorOf(t, b, lb1, baseConfig(""), []uint16{99})
		res, err := lb1.d.Restart(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != control.RestartPlanned || !strings.Contains(res.Reason, "formats 99") {
			t.Fatalf("result %+v, want planned-handover naming format 99", res)
		}
		if len(notified) != 1 || notified[0] != 4242 {
			t.Errorf("MAINPID sent %v, want [4242]", notified)
		}
		settle(5 * time.Second)
		lb2.mustState("MASTER")
		if err := exitOld(t, lb1, h); err != nil {
			t.Errorf("old Run: %v", err)
		}
		settle(5 * time.Second)
		h.child.mustState("MASTER") // fresh, and preempts back with priority 150
		lb2.mustState("BACKUP")
	})
}

// A config changed on disk between the two processes applies in the new
// one without a transition where the change allows it: a new advert
// interval and preempt setting.
func TestRestartTakesChangedConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1, lb2 := pair(t, b, baseConfig(""), &notified)
		t1, t2 := lb1.transitions(), lb2.transitions()
		changed := strings.Replace(baseConfig(""), `advert_interval = "100ms"`, "advert_interval = \"200ms\"\npreempt = false", 1)
		h := successorOf(t, b, lb1, changed, nil)
		if res, err := lb1.d.Restart(context.Background()); err != nil || res.Outcome != control.RestartHandedOver {
			t.Fatalf("restart: %+v %v", res, err)
		}
		exitOld(t, lb1, h)
		settle(10 * time.Second)
		n := h.child
		n.mustState("MASTER")
		lb2.mustState("BACKUP")
		if n.transitions() != t1 || lb2.transitions() != t2 {
			t.Errorf("transitions %d/%d, want %d/%d", n.transitions(), lb2.transitions(), t1, t2)
		}
		if ms := n.d.Status().Instances[0].AdvertIntervalMs; ms != 200 {
			t.Errorf("advert interval %v ms, want 200", ms)
		}
		if ms := lb2.d.Status().Instances[0].MasterIntervalMs; ms != 200 {
			t.Errorf("the peer follows a master interval of %v ms, want 200", ms)
		}
	})
}

// One restart at a time, and mutating calls wait for none: they are
// refused while it runs (what they change would not reach the new
// process).
func TestRestartOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1, _ := pair(t, b, baseConfig(""), &notified)
		h := newMemHandoff(t, 4444)
		block := make(chan struct{})
		lb1.d.os.StartSuccessor = func(context.Context, handoff.Spawn) (Successor, error) {
			<-block
			return nil, errors.New("no binary")
		}
		done := make(chan control.RestartResult)
		go func() {
			res, _ := lb1.d.Restart(context.Background())
			done <- res
		}()
		synctest.Wait()
		if _, err := lb1.d.Restart(context.Background()); !errors.Is(err, control.ErrRefused) {
			t.Errorf("second restart: %v, want refused", err)
		}
		if _, err := lb1.d.Reload(context.Background()); !errors.Is(err, control.ErrRefused) {
			t.Errorf("reload during a restart: %v, want refused", err)
		}
		close(block)
		if res := <-done; res.Outcome != control.RestartRolledBack || !strings.Contains(res.Reason, "no binary") {
			t.Errorf("result %+v, want rolled-back: no binary", res)
		}
		_ = h
	})
}

// A stop requested while a restart runs is not lost in the handover: the
// restart rolls back before GO and the stop proceeds the planned way.
func TestRestartYieldsToStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1, lb2 := pair(t, b, baseConfig(""), &notified)
		h := successorOf(t, b, lb1, baseConfig(""), nil)
		orig := lb1.d.os.StartSuccessor
		lb1.d.os.StartSuccessor = func(ctx context.Context, s handoff.Spawn) (Successor, error) {
			succ, err := orig(ctx, s)
			return stopOnSend{succ, lb1.d}, err
		}
		res, err := lb1.d.Restart(context.Background())
		if err != nil || res.Outcome != control.RestartRolledBack || !strings.Contains(res.Reason, "stop was requested") {
			t.Fatalf("restart: %+v %v; want rolled back for the stop", res, err)
		}
		if !h.aborted || len(notified) > 0 {
			t.Errorf("child aborted %v, MAINPID %v; want aborted and none", h.aborted, notified)
		}
		settle(5 * time.Second)
		lb2.mustState("MASTER")
		if ok, err := lb1.stopped(); !ok || err != nil {
			t.Errorf("old daemon stopped %v (%v), want a clean stop", ok, err)
		}
	})
}

// The backup restarts the same way: no transition on either node, and
// the new process follows the master it followed.
func TestRestartBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1 := startNode(t, b, "lb1", baseConfig(""))
		lb2 := newNode(t, b, "lb2", baseConfig(""))
		restartOS(t, b, lb2, &notified)
		lb2.start()
		settle(2 * time.Second)
		lb1.mustState("MASTER")
		lb2.mustState("BACKUP")
		t1, t2 := lb1.transitions(), lb2.transitions()
		h := successorOf(t, b, lb2, baseConfig(""), nil)
		if res, err := lb2.d.Restart(context.Background()); err != nil || res.Outcome != control.RestartHandedOver {
			t.Fatalf("restart: %+v %v", res, err)
		}
		exitOld(t, lb2, h)
		settle(10 * time.Second)
		n := h.child
		n.mustState("BACKUP")
		lb1.mustState("MASTER")
		if n.transitions() != t2 || lb1.transitions() != t1 {
			t.Errorf("transitions %d/%d, want %d/%d", lb1.transitions(), n.transitions(), t1, t2)
		}
		if m := n.d.Status().Instances[0].MasterAddr; m != "10.99.0.11" {
			t.Errorf("new backup follows %q, want 10.99.0.11", m)
		}
	})
}

// stopOnSend is a successor during whose handoff a stop arrives.
type stopOnSend struct {
	Successor
	d *Daemon
}

func (s stopOnSend) Send(format uint16, body []byte, files []*os.File) error {
	s.d.Shutdown()
	return s.Successor.Send(format, body, files)
}

// The proxy freezes before the runners (its export is the long step);
// a runner whose effect waits on the frozen proxy (here a Listen asked
// for at that moment) cannot freeze: the restart gives up and rolls
// back, the effect completes, and nothing is left frozen.
func TestRestartRunnerBlockedOnFrozenProxy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		var notified []int
		lb1, lb2 := pair(t, b, baseConfig(""), &notified)
		t1, t2 := lb1.transitions(), lb2.transitions()
		lb1.px.onFreeze = func() { lb1.d.insts[0].runner.Relisten() }
		h := successorOf(t, b, lb1, baseConfig(""), nil)
		res, err := lb1.d.Restart(context.Background())
		if err != nil || res.Outcome != control.RestartRolledBack || !strings.Contains(res.Reason, "freeze") {
			t.Fatalf("restart: %+v %v; want rolled back in the freeze", res, err)
		}
		if !h.aborted {
			t.Error("the new process was not killed")
		}
		settle(3 * time.Second)
		lb1.mustState("MASTER")
		lb2.mustState("BACKUP")
		if lb1.transitions() != t1 || lb2.transitions() != t2 {
			t.Errorf("transitions %d/%d, want %d/%d", lb1.transitions(), lb2.transitions(), t1, t2)
		}
		lb1.px.onFreeze = nil
		if err := lb1.d.insts[0].runner.Resume(); !errors.Is(err, vrrp.ErrNotFrozen) {
			t.Errorf("runner left frozen: Resume says %v", err)
		}
	})
}
