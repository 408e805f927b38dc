package health_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/health/healthtest"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// wait bounds every blocking step of these tests in real time; with the fake
// clock nothing should take more than a scheduling delay.
const wait = 5 * time.Second

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("nothing received within %v", wait)
		panic("unreachable")
	}
}

func send[T any](t *testing.T, ch chan<- T, v T) {
	t.Helper()
	select {
	case ch <- v:
	case <-time.After(wait):
		t.Fatalf("nobody received within %v", wait)
	}
}

// summary is the comparable part of an Event.
type summary struct {
	Name    string
	Status  string
	Changed bool
	Round   int
	OK      bool
	Detail  string
	At      time.Duration // since t0
}

func summarize(ev health.Event) summary {
	s := summary{
		Name: ev.Name, Status: ev.Status.String(), Changed: ev.Changed, Round: ev.Round,
		OK: ev.Result.OK, Detail: ev.Result.Detail,
	}
	if !ev.Result.At.IsZero() {
		s.At = ev.Result.At.Sub(t0)
	}
	return s
}

// startChecker runs c until stop is called or the test ends. stop cancels
// the checker and returns what Run returned.
func startChecker(t *testing.T, c *health.Checker, out chan health.Event) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ec := make(chan error, 1)
	go func() { ec <- c.Run(ctx, out) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-ec:
			case <-time.After(wait):
				err = errors.New("Run did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run returned %v on cancel, want nil", err)
		}
	})
	return stop
}

// scriptedProbe returns results[i] on its i-th call (then repeats the last).
func scriptedProbe(results ...bool) health.Probe {
	var n atomic.Int64
	return func(ctx context.Context) health.Result {
		i := int(n.Add(1)) - 1
		ok := results[min(i, len(results)-1)]
		r := health.Result{OK: ok, Detail: "fine"}
		if !ok {
			r.Err, r.Detail = errors.New("broken"), "broken"
		}
		return r
	}
}

// runSchedule runs a checker through len(results) rounds on a fake clock and
// returns its events and the delay between the starts of successive probes.
func runSchedule(t *testing.T, seed uint64, results ...bool) ([]summary, []time.Duration) {
	t.Helper()
	clk := healthtest.NewFakeClock(t0)
	out := make(chan health.Event)
	c := &health.Checker{
		Name: "cp1", Probe: scriptedProbe(results...),
		Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
		Clock: clk, Rand: rand.New(rand.NewPCG(seed, seed)),
	}
	startChecker(t, c, out)

	// The first probe runs at once, without advancing the clock.
	got := []summary{summarize(recv(t, out))}
	var delays []time.Duration
	last := t0
	for range len(results) - 1 {
		// The next round's timer is armed before the event is sent.
		next, ok := clk.Next()
		if !ok {
			t.Fatal("no timer armed for the next round")
		}
		d := next.Sub(last)
		if d < 1800*time.Millisecond || d > 2200*time.Millisecond {
			t.Fatalf("next probe in %v, want 2s ±10%%", d)
		}
		clk.Advance(d - time.Nanosecond)
		if n := clk.Timers(); n != 1 {
			t.Fatalf("a nanosecond before the interval: %d timers pending, want the interval timer only", n)
		}
		clk.Advance(time.Nanosecond)
		got = append(got, summarize(recv(t, out)))
		delays = append(delays, d)
		last = next
	}
	return got, delays
}

func TestCheckerSchedule(t *testing.T) {
	got, delays := runSchedule(t, 1, true, false, false, false, true, true)
	at := func(i int) time.Duration {
		var sum time.Duration
		for _, d := range delays[:i] {
			sum += d
		}
		return sum
	}
	want := []summary{
		{"cp1", "UP", true, 1, true, "fine", 0}, // Unknown -> Up on the first success
		{"cp1", "UP", false, 2, false, "broken", at(1)},
		{"cp1", "UP", false, 3, false, "broken", at(2)},
		{"cp1", "DOWN", true, 4, false, "broken", at(3)}, // fall 3
		{"cp1", "DOWN", false, 5, true, "fine", at(4)},
		{"cp1", "UP", true, 6, true, "fine", at(5)}, // rise 2
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// Jitter: not lockstep, but the same seed gives the same schedule.
	same := true
	for _, d := range delays {
		same = same && d == 2*time.Second
	}
	if same {
		t.Errorf("delays %v have no jitter", delays)
	}
	_, again := runSchedule(t, 1, true, false, false, false, true, true)
	if diff := cmp.Diff(delays, again); diff != "" {
		t.Errorf("same seed, different schedule (-first +second):\n%s", diff)
	}
}

func TestCheckerFirstFailureIsDown(t *testing.T) {
	got, _ := runSchedule(t, 7, false, true, true)
	want := []string{"DOWN true", "DOWN false", "UP true"}
	var gotS []string
	for _, s := range got {
		gotS = append(gotS, s.Status+" "+map[bool]string{true: "true", false: "false"}[s.Changed])
	}
	if diff := cmp.Diff(want, gotS); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCheckerTimeout(t *testing.T) {
	hung := listen(t)
	stop := make(chan struct{})
	serve(t, hung, func(net.Conn) { <-stop })
	t.Cleanup(func() { close(stop) })
	tlsProbe := mustProbe(t, health.Spec{Type: "tls", Addr: hung.Addr().String(), InsecureSkipVerify: true})

	tests := []struct {
		name  string
		probe health.Probe
	}{
		{"probe that only returns ctx.Err", func(ctx context.Context) health.Result {
			<-ctx.Done()
			return health.Result{Err: ctx.Err()}
		}},
		{"probe with its own detail", func(ctx context.Context) health.Result {
			<-ctx.Done()
			return health.Result{Err: ctx.Err(), Detail: "gave up"}
		}},
		{"tls probe against a hung server", tlsProbe},
	}
	wantDetail := map[string]string{
		"probe that only returns ctx.Err": "timeout after 1s",
		"probe with its own detail":       "timeout after 1s: gave up",
		"tls probe against a hung server": "timeout after 1s",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := healthtest.NewFakeClock(t0)
			out := make(chan health.Event)
			startChecker(t, &health.Checker{Name: "api", Probe: tt.probe, Interval: 2 * time.Second, Timeout: time.Second, Clock: clk}, out)

			if !clk.WaitTimers(1, wait) {
				t.Fatal("no timeout timer armed")
			}
			if next, _ := clk.Next(); !next.Equal(t0.Add(time.Second)) {
				t.Fatalf("timeout timer at %v, want t0+1s", next.Sub(t0))
			}
			clk.Advance(time.Second - time.Nanosecond)
			if n := clk.Timers(); n != 1 {
				t.Fatalf("timeout fired early: %d timers", n)
			}
			clk.Advance(time.Nanosecond)
			ev := recv(t, out)
			want := summary{Name: "api", Status: "DOWN", Changed: true, Round: 1, Detail: wantDetail[tt.name]}
			if diff := cmp.Diff(want, summarize(ev)); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if !errors.Is(ev.Result.Err, health.ErrTimeout) {
				t.Errorf("Err = %v, want it to wrap ErrTimeout", ev.Result.Err)
			}
		})
	}
}

func TestCheckerDefaults(t *testing.T) {
	clk := healthtest.NewFakeClock(t0)
	started := make(chan struct{}, 1)
	out := make(chan health.Event)
	startChecker(t, &health.Checker{Name: "d", Clock: clk, Probe: func(ctx context.Context) health.Result {
		started <- struct{}{}
		<-ctx.Done()
		return health.Result{}
	}}, out)
	recv(t, started)
	if next, _ := clk.Next(); !next.Equal(t0.Add(health.DefaultTimeout)) {
		t.Errorf("timeout at %v, want %v", next.Sub(t0), health.DefaultTimeout)
	}
	clk.Advance(health.DefaultTimeout)
	recv(t, out)
	next, _ := clk.Next()
	if d := next.Sub(t0); d < 1800*time.Millisecond || d > 2200*time.Millisecond {
		t.Errorf("second probe at %v, want %v ±10%%", d, health.DefaultInterval)
	}
}

func TestCheckerStops(t *testing.T) {
	t.Run("cancel during a probe emits nothing", func(t *testing.T) {
		clk := healthtest.NewFakeClock(t0)
		started := make(chan struct{})
		out := make(chan health.Event, 1)
		stop := startChecker(t, &health.Checker{Name: "x", Clock: clk, Probe: func(ctx context.Context) health.Result {
			close(started)
			<-ctx.Done()
			return health.Result{}
		}}, out)
		recv(t, started)
		if err := stop(); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if len(out) != 0 {
			t.Errorf("event emitted for a probe cut short by shutdown: %+v", <-out)
		}
	})
	t.Run("cancel while nobody reads events", func(t *testing.T) {
		clk := healthtest.NewFakeClock(t0)
		called := make(chan struct{}, 1)
		stop := startChecker(t, &health.Checker{Name: "x", Clock: clk, Probe: func(context.Context) health.Result {
			called <- struct{}{}
			return health.Result{OK: true}
		}}, make(chan health.Event))
		recv(t, called)
		if err := stop(); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
	t.Run("nil out discards events", func(t *testing.T) {
		clk := healthtest.NewFakeClock(t0)
		called := make(chan struct{}, 1)
		startChecker(t, &health.Checker{Name: "x", Clock: clk, Interval: time.Second, Probe: func(context.Context) health.Result {
			called <- struct{}{}
			return health.Result{OK: true}
		}}, nil)
		recv(t, called)
		if !clk.WaitTimers(1, wait) {
			t.Fatal("no interval timer")
		}
		clk.Advance(1100 * time.Millisecond)
		recv(t, called)
	})
}

func TestCheckerValidate(t *testing.T) {
	ok := func(context.Context) health.Result { return health.Result{OK: true} }
	tests := []struct {
		name string
		c    health.Checker
		want string
	}{
		{"no probe", health.Checker{Name: "a"}, `check "a": no probe`},
		{"negative interval", health.Checker{Name: "a", Probe: ok, Interval: -1}, "negative interval"},
		{"negative fall", health.Checker{Name: "a", Probe: ok, Fall: -1}, "negative rise or fall"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Run(t.Context(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestCheckerSystemClock runs the real clock path end to end: a real
// deadline, and two rounds against a hung TLS server and an open port.
func TestCheckerSystemClock(t *testing.T) {
	hung := listen(t)
	stop := make(chan struct{})
	serve(t, hung, func(net.Conn) { <-stop })
	t.Cleanup(func() { close(stop) })

	tests := []struct {
		name string
		spec health.Spec
		want []summary
	}{
		{"tls hung", health.Spec{Type: "tls", Addr: hung.Addr().String(), InsecureSkipVerify: true}, []summary{
			{Name: "c", Status: "DOWN", Changed: true, Round: 1, Detail: "timeout after 100ms"},
			{Name: "c", Status: "DOWN", Round: 2, Detail: "timeout after 100ms"},
		}},
		{"tcp open", health.Spec{Type: "tcp", Addr: hung.Addr().String()}, []summary{
			{Name: "c", Status: "UP", Changed: true, Round: 1, OK: true, Detail: "connected"},
			{Name: "c", Status: "UP", Round: 2, OK: true, Detail: "connected"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make(chan health.Event)
			startChecker(t, &health.Checker{Name: "c", Probe: mustProbe(t, tt.spec), Interval: 150 * time.Millisecond, Timeout: 100 * time.Millisecond}, out)
			var got []summary
			for range tt.want {
				s := summarize(recv(t, out))
				s.At = 0
				got = append(got, s)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// A probe that fails because this host is out of file descriptors says
// nothing about the server: it must not count toward fall.
func TestCheckerIgnoresLocalFDExhaustion(t *testing.T) {
	clk := healthtest.NewFakeClock(t0)
	out := make(chan health.Event)
	var n atomic.Int64
	probe := func(ctx context.Context) health.Result {
		if n.Add(1) == 1 {
			return health.Result{OK: true, Detail: "fine"}
		}
		err := fmt.Errorf("dial tcp: socket: %w", syscall.EMFILE)
		return health.Result{Err: err, Detail: err.Error()}
	}
	c := &health.Checker{Name: "cp1", Probe: probe, Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2, Clock: clk}
	startChecker(t, c, out)
	if ev := recv(t, out); ev.Status != health.Up {
		t.Fatalf("first round %v, want UP", ev.Status)
	}
	for i := 0; i < 4; i++ {
		next, ok := clk.Next()
		if !ok {
			t.Fatal("no timer armed")
		}
		clk.Advance(next.Sub(clk.Now()))
		ev := recv(t, out)
		if ev.Status != health.Up || ev.Changed {
			t.Fatalf("round %d with EMFILE: %v (changed %v), want still UP: %s", ev.Round, ev.Status, ev.Changed, ev.Result.Detail)
		}
		if !strings.Contains(ev.Result.Detail, "not counted") {
			t.Errorf("detail %q does not say the result was not counted", ev.Result.Detail)
		}
	}
}

// TestCheckerCleansDetail: a backend's answer reaches the status as text
// without control characters: its escape sequences made a DOWN server
// show as UP in `vipd status` (issue 9, defect 9).
func TestCheckerCleansDetail(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "[-]etcd failed\n\x1b[1A\x1b[2K\x1b[32mcp1 UP\x1b[0m\r\x07")
	}))
	defer srv.Close()
	out := make(chan health.Event)
	startChecker(t, &health.Checker{Name: "c", Probe: mustProbe(t, health.Spec{Type: "http", Addr: srv.Listener.Addr().String(), Path: "/readyz"}), Interval: time.Hour, Timeout: time.Second}, out)
	ev := recv(t, out)
	if ev.Status != health.Down || strings.ContainsAny(ev.Result.Detail, "\x1b\r\a") {
		t.Errorf("%v %q: want DOWN without control characters", ev.Status, ev.Result.Detail)
	}
	if !strings.Contains(ev.Result.Detail, "HTTP 500: ") || !strings.Contains(ev.Result.Detail, "cp1 UP") {
		t.Errorf("detail %q lost the server's text", ev.Result.Detail)
	}
}
