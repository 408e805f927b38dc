//go:build linux

package proxy

import (
	"sync"
	"testing"
	"time"
)

// fakeClock stands in for time.AfterFunc (Proxy.afterFunc): timers run
// only when the test advances the clock, in the test's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	at             time.Duration
	f              func()
	stopped, fired bool
}

func (c *fakeClock) afterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &fakeTimer{at: c.now + d, f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		active := !tm.stopped && !tm.fired
		tm.stopped = true
		return active
	}
}

// advance moves the clock by d and runs the timers that come due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*fakeTimer
	for _, tm := range c.timers {
		if !tm.stopped && !tm.fired && tm.at <= c.now {
			tm.fired = true
			due = append(due, tm)
		}
	}
	c.mu.Unlock()
	for _, tm := range due {
		tm.f()
	}
}

// late runs the stopped timers anyway, as when Stop loses the race with a
// timer that is already firing.
func (c *fakeClock) late() {
	c.mu.Lock()
	var due []*fakeTimer
	for _, tm := range c.timers {
		if tm.stopped && !tm.fired {
			tm.fired = true
			due = append(due, tm)
		}
	}
	c.mu.Unlock()
	for _, tm := range due {
		tm.f()
	}
}

func (c *fakeClock) pending() (n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tm := range c.timers {
		if !tm.stopped && !tm.fired {
			n++
		}
	}
	return n
}

// TestDrainFakeClock drives drain deadlines with a fake clock: a drain of
// an hour closes the server's connections at the hour, not a second
// before; a drain cancelled by ready closes nothing, even when its timer
// fires late during a later drain; draining again starts a new deadline.
func TestDrainFakeClock(t *testing.T) {
	const drain = time.Hour
	p, addr, _, _ := twoServers(t, BackendConfig{DrainTimeout: drain})
	clk := &fakeClock{}
	p.mu.Lock()
	p.afterFunc = clk.afterFunc
	p.mu.Unlock()
	old := connectTo(t, p, addr, "a", "b")

	// Drain, then ready: the timer is stopped; firing it late does nothing.
	if err := p.SetAdmin("be", "a", AdminDrain); err != nil {
		t.Fatal(err)
	}
	if n := clk.pending(); n != 1 {
		t.Fatalf("%d drain timers pending, want 1", n)
	}
	if err := p.SetAdmin("be", "a", AdminReady); err != nil {
		t.Fatal(err)
	}
	if n := clk.pending(); n != 0 {
		t.Fatalf("%d drain timers pending after ready, want 0", n)
	}
	old.echo(t, "kept after a cancelled drain")

	// Drain again half an hour later: the deadline is an hour from then.
	clk.advance(30 * time.Minute)
	if err := p.SetAdmin("be", "a", AdminDrain); err != nil {
		t.Fatal(err)
	}
	clk.late() // the first drain's timer, late: a stale generation
	old.echo(t, "kept after a stale drain timer fired")
	if got := dial(t, addr).greeting(t); got != "b" {
		t.Fatalf("new connection went to %q while a drains", got)
	}
	clk.advance(30 * time.Minute) // the first drain's deadline: cancelled
	old.echo(t, "kept at the cancelled drain's deadline")
	clk.advance(drain - 30*time.Minute - time.Second)
	old.echo(t, "kept a second before the deadline")
	if n := serverStatus(p, "be", "a").ActiveConns; n != 1 {
		t.Fatalf("server a has %d connections before the deadline, want 1", n)
	}
	clk.advance(time.Second)
	old.closedWithin(t, 5*time.Second)
	waitFor(t, "server a has no connection", func() bool { return serverStatus(p, "be", "a").ActiveConns == 0 })
	if n := clk.pending(); n != 0 {
		t.Errorf("%d drain timers pending after the deadline, want 0", n)
	}
	if st := serverStatus(p, "be", "a").State; st != StateDrain {
		t.Errorf("state %v after the deadline, want DRAIN", st)
	}
}

// TestDrainLeft: a drain carried over by a hitless restart keeps its
// deadline (SetDrainLeft) instead of starting the backend's whole
// DrainTimeout again, and Status says when it ends.
func TestDrainLeft(t *testing.T) {
	const drain = time.Hour
	p, addr, _, _ := twoServers(t, BackendConfig{DrainTimeout: drain})
	clk := &fakeClock{}
	p.mu.Lock()
	p.afterFunc = clk.afterFunc
	p.mu.Unlock()
	old := connectTo(t, p, addr, "a", "b")

	before := time.Now()
	if err := p.SetAdmin("be", "a", AdminDrain); err != nil {
		t.Fatal(err)
	}
	if ends := serverStatus(p, "be", "a").DrainEnds; ends.Before(before.Add(drain)) || ends.After(time.Now().Add(drain)) {
		t.Fatalf("DrainEnds %v, want an hour after the drain began (%v)", ends, before)
	}
	// The new process: ten minutes left, not an hour.
	const left = 10 * time.Minute
	if err := p.SetDrainLeft("be", "a", left); err != nil {
		t.Fatal(err)
	}
	if ends := serverStatus(p, "be", "a").DrainEnds; ends.After(time.Now().Add(left)) {
		t.Errorf("DrainEnds %v, want at most %v from now", ends, left)
	}
	clk.advance(left - time.Second)
	old.echo(t, "kept a second before the carried-over deadline")
	clk.advance(time.Second)
	old.closedWithin(t, 5*time.Second)
	if n := clk.pending(); n != 0 {
		t.Errorf("%d drain timers pending, want 0 (the first drain's timer was replaced)", n)
	}
	if err := p.SetAdmin("be", "a", AdminReady); err != nil {
		t.Fatal(err)
	}
	if ends := serverStatus(p, "be", "a").DrainEnds; !ends.IsZero() {
		t.Errorf("DrainEnds %v on a READY server, want zero", ends)
	}
	// A deadline already past closes at once.
	if err := p.SetDrainLeft("be", "a", -time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.advance(0)
	if n := clk.pending(); n != 0 {
		t.Errorf("%d drain timers pending after a past deadline, want 0", n)
	}
}
