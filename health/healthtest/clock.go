// Package healthtest provides test doubles for package health: a fake
// [health.Clock] that only moves when the test advances it.
package healthtest

import (
	"sort"
	"sync"
	"time"

	"github.com/vipd/vipd/health"
)

// FakeClock is a [health.Clock] whose time only moves on [FakeClock.Advance].
// It is safe for concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever the timer set changes
}

var _ health.Clock = (*FakeClock)(nil)

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now returns the fake current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock has been advanced by d.
// A timer with d <= 0 fires at once.
func (c *FakeClock) NewTimer(d time.Duration) health.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, when: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.notifyLocked()
	return t
}

// Advance moves the clock forward by d and fires, in deadline order, every
// timer that is due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].when.Before(c.timers[j].when) })
	n := 0
	for _, t := range c.timers {
		if t.when.After(c.now) {
			break
		}
		t.ch <- c.now // buffered, and each timer fires once
		n++
	}
	if n > 0 {
		c.timers = append(c.timers[:0], c.timers[n:]...)
		c.notifyLocked()
	}
}

// Timers returns how many timers are pending (created, not yet fired or
// stopped).
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next returns the deadline of the earliest pending timer, if any.
func (c *FakeClock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, t := range c.timers {
		if next.IsZero() || t.when.Before(next) {
			next = t.when
		}
	}
	return next, !next.IsZero()
}

// WaitTimers blocks until at least n timers are pending or the deadline (real
// time) passes, and reports whether n was reached. Tests use it to know that
// the code under test is parked on the clock before they advance it.
func (c *FakeClock) WaitTimers(n int, deadline time.Duration) bool {
	giveUp := time.NewTimer(deadline)
	defer giveUp.Stop()
	for {
		c.mu.Lock()
		pending, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if pending >= n {
			return true
		}
		select {
		case <-changed:
		case <-giveUp.C:
			return false
		}
	}
}

// notifyLocked wakes WaitTimers callers. c.mu must be held.
func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type fakeTimer struct {
	clock *FakeClock
	when  time.Time
	ch    chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.timers {
		if p == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			c.notifyLocked()
			return true
		}
	}
	return false
}
