package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/health/healthtest"
)

// gatedChecker returns a checker whose probes each wait for a result on the
// returned channel.
func gatedChecker(name string, clk health.Clock) (*health.Checker, chan<- bool) {
	gate := make(chan bool)
	return &health.Checker{Name: name, Clock: clk, Probe: func(ctx context.Context) health.Result {
		select {
		case ok := <-gate:
			if ok {
				return health.Result{OK: true, Detail: "open"}
			}
			return health.Result{Detail: "closed"}
		case <-ctx.Done():
			return health.Result{Err: ctx.Err()}
		}
	}}, gate
}

func startGroup(t *testing.T, g *health.Group, out chan health.Event) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ec := make(chan error, 1)
	go func() { ec <- g.Run(ctx, out) }()
	done := false
	var err error
	stop = func() error {
		if !done {
			done = true
			cancel()
			select {
			case err = <-ec:
			case <-time.After(wait):
				t.Fatal("Group.Run did not return after cancel")
			}
		}
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Group.Run = %v on cancel, want nil", err)
		}
	})
	return stop
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func snapshot(g *health.Group) map[string]summary {
	m := map[string]summary{}
	for name, ev := range g.Snapshot() {
		s := summarize(ev)
		s.At = 0
		m[name] = s
	}
	return m
}

func TestGroupFirstRound(t *testing.T) {
	clk := healthtest.NewFakeClock(t0)
	g := health.NewGroup()
	gates := map[string]chan<- bool{}
	for _, name := range []string{"cp1", "cp2", "cp3"} {
		c, gate := gatedChecker(name, clk)
		g.Add(c)
		gates[name] = gate
	}
	want := map[string]summary{
		"cp1": {Name: "cp1", Status: "UNKNOWN"},
		"cp2": {Name: "cp2", Status: "UNKNOWN"},
		"cp3": {Name: "cp3", Status: "UNKNOWN"},
	}
	if diff := cmp.Diff(want, snapshot(g)); diff != "" {
		t.Errorf("snapshot before Run (-want +got):\n%s", diff)
	}

	out := make(chan health.Event)
	startGroup(t, g, out)
	steps := []struct {
		name string
		ok   bool
		want summary
	}{
		{"cp2", true, summary{Name: "cp2", Status: "UP", Changed: true, Round: 1, OK: true, Detail: "open"}},
		{"cp1", false, summary{Name: "cp1", Status: "DOWN", Changed: true, Round: 1, Detail: "closed"}},
		{"cp3", true, summary{Name: "cp3", Status: "UP", Changed: true, Round: 1, OK: true, Detail: "open"}},
	}
	for i, st := range steps {
		if isClosed(g.FirstRoundDone()) {
			t.Fatalf("FirstRoundDone closed with %d of 3 results", i)
		}
		send(t, gates[st.name], st.ok)
		ev := summarize(recv(t, out))
		ev.At = 0
		if diff := cmp.Diff(st.want, ev); diff != "" {
			t.Errorf("event (-want +got):\n%s", diff)
		}
		want[st.name] = st.want
	}
	// The event is recorded before it is sent, so this holds at once.
	if !isClosed(g.FirstRoundDone()) {
		t.Error("FirstRoundDone still open after every checker produced a result")
	}
	if diff := cmp.Diff(want, snapshot(g)); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}

	// Remove one, add one while running: the snapshot follows.
	g.Remove("cp1")
	delete(want, "cp1")
	c4, gate4 := gatedChecker("cp4", clk)
	g.Add(c4)
	send(t, gate4, true)
	ev := summarize(recv(t, out))
	ev.At = 0
	want["cp4"] = summary{Name: "cp4", Status: "UP", Changed: true, Round: 1, OK: true, Detail: "open"}
	if diff := cmp.Diff(want["cp4"], ev); diff != "" {
		t.Errorf("event of a checker added while running (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, snapshot(g)); diff != "" {
		t.Errorf("snapshot after remove and add (-want +got):\n%s", diff)
	}
}

func TestGroupFirstRoundEmpty(t *testing.T) {
	g := health.NewGroup()
	if isClosed(g.FirstRoundDone()) {
		t.Fatal("FirstRoundDone closed before Run")
	}
	startGroup(t, g, nil)
	recv(t, g.FirstRoundDone())
}

func TestGroupRemovePending(t *testing.T) {
	clk := healthtest.NewFakeClock(t0)
	g := health.NewGroup()
	a, gateA := gatedChecker("a", clk)
	b, _ := gatedChecker("b", clk) // never answers
	g.Add(a)
	g.Add(b)
	startGroup(t, g, nil) // nil out: events are only recorded
	send(t, gateA, true)
	// Without a reader the only sign of a's result is the snapshot; the
	// group is still waiting for b.
	if isClosed(g.FirstRoundDone()) {
		t.Fatal("FirstRoundDone closed while b has no result")
	}
	g.Remove("b")
	recv(t, g.FirstRoundDone())
	if diff := cmp.Diff([]string{"a"}, keys(g.Snapshot())); diff != "" {
		t.Errorf("snapshot names (-want +got):\n%s", diff)
	}
}

func TestGroupReplace(t *testing.T) {
	clk := healthtest.NewFakeClock(t0)
	g := health.NewGroup()
	old, _ := gatedChecker("a", clk)
	g.Add(old)
	out := make(chan health.Event)
	startGroup(t, g, out)
	gate := make(chan bool)
	g.Add(&health.Checker{Name: "a", Clock: clk, Probe: func(ctx context.Context) health.Result {
		select {
		case <-gate:
			return health.Result{OK: true, Detail: "replacement"}
		case <-ctx.Done():
			return health.Result{Err: ctx.Err()}
		}
	}})
	send(t, gate, true)
	if got := recv(t, out).Result.Detail; got != "replacement" {
		t.Errorf("event from %q, want the replacement", got)
	}
}

func TestGroupInvalidChecker(t *testing.T) {
	clk := healthtest.NewFakeClock(t0)
	g := health.NewGroup()
	good, _ := gatedChecker("good", clk)
	g.Add(good)
	g.Add(&health.Checker{Name: "bad"})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	err := g.Run(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), `check "bad": no probe`) {
		t.Errorf("Run = %v, want the bad checker's error", err)
	}
	if ctx.Err() != nil {
		t.Error("Run waited for its context instead of failing fast")
	}
}

func TestGroupRunTwice(t *testing.T) {
	g := health.NewGroup()
	startGroup(t, g, nil)
	recv(t, g.FirstRoundDone()) // Run has started
	if err := g.Run(t.Context(), nil); err == nil {
		t.Error("second concurrent Run succeeded")
	}
}

func keys(m map[string]health.Event) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
