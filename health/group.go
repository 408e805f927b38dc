package health

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Group runs many Checkers, keeps the latest Event of each by name for
// status output, and tells when every checker has produced a result.
//
// Checkers are normally added before Run; one added while Run is active
// starts at once (a reload), and one added under an existing name replaces
// it. The zero Group is not usable; call [NewGroup]. Its methods are safe for
// concurrent use.
type Group struct {
	mu      sync.Mutex
	entries map[string]*groupEntry
	first   chan struct{}
	closed  bool // first is closed

	// Set while Run is active.
	running bool
	ctx     context.Context
	eg      *errgroup.Group
	out     chan<- Event
}

type groupEntry struct {
	c      *Checker
	last   Event
	cancel context.CancelFunc // nil until started
}

// NewGroup returns an empty Group.
func NewGroup() *Group {
	return &Group{entries: make(map[string]*groupEntry), first: make(chan struct{})}
}

// Add registers c under c.Name, replacing (and stopping) a checker of the
// same name. If the group is running, c starts at once. Run fails if c is
// invalid; call c.Validate first to keep a bad checker out.
func (g *Group) Add(c *Checker) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if old := g.entries[c.Name]; old != nil && old.cancel != nil {
		old.cancel()
	}
	e := &groupEntry{c: c, last: Event{Name: c.Name}}
	g.entries[c.Name] = e
	if g.running {
		g.startLocked(e)
	}
}

// Remove stops and forgets the checker called name, if any.
func (g *Group) Remove(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.entries[name]
	if e == nil {
		return
	}
	if e.cancel != nil {
		e.cancel()
	}
	delete(g.entries, name)
	g.checkFirstLocked()
}

// Run runs every checker until ctx is done, then returns nil; if a checker
// fails to start (see [Checker.Validate]) it stops the others and returns
// that error. Every event is recorded, then sent on out with ctx (a nil out
// only records). Run may be called once at a time.
func (g *Group) Run(ctx context.Context, out chan<- Event) error {
	g.mu.Lock()
	if g.running {
		g.mu.Unlock()
		return errors.New("health: group is already running")
	}
	eg, ectx := errgroup.WithContext(ctx)
	g.running, g.ctx, g.eg, g.out = true, ectx, eg, out
	for _, e := range g.entries {
		g.startLocked(e)
	}
	g.checkFirstLocked()
	g.mu.Unlock()

	// Hold the errgroup open until ctx is done so that Add can start
	// checkers on it; running is cleared under the lock before this
	// goroutine ends, so no Add races with Wait returning.
	eg.Go(func() error {
		<-ectx.Done()
		g.mu.Lock()
		g.running = false
		g.mu.Unlock()
		return nil
	})
	err := eg.Wait()

	g.mu.Lock()
	g.ctx, g.eg, g.out = nil, nil, nil
	for _, e := range g.entries {
		e.cancel = nil
	}
	g.mu.Unlock()
	return err
}

// startLocked starts e on the running errgroup. g.mu must be held.
func (g *Group) startLocked(e *groupEntry) {
	ctx, cancel := context.WithCancel(g.ctx)
	e.cancel = cancel
	out := g.out
	g.eg.Go(func() error {
		defer cancel()
		return e.c.run(ctx, func(ctx context.Context, ev Event) bool {
			if !g.record(e, ev) {
				return false // removed or replaced
			}
			if out == nil {
				return true
			}
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		})
	})
}

// record stores ev as the latest of e and reports whether e is still in the
// group.
func (g *Group) record(e *groupEntry, ev Event) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.entries[e.c.Name] != e {
		return false
	}
	e.last = ev
	g.checkFirstLocked()
	return true
}

// checkFirstLocked closes first once the group runs and every checker has a
// result. g.mu must be held.
func (g *Group) checkFirstLocked() {
	if g.closed || !g.running {
		return
	}
	for _, e := range g.entries {
		if e.last.Round == 0 {
			return
		}
	}
	close(g.first)
	g.closed = true
}

// Snapshot returns the latest Event of every checker by name. A checker with
// no result yet appears with Round 0 and Status Unknown.
func (g *Group) Snapshot() map[string]Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := make(map[string]Event, len(g.entries))
	for name, e := range g.entries {
		m[name] = e.last
	}
	return m
}

// FirstRoundDone is closed once the group is running and every checker has
// produced at least one result (at once for an empty group). It closes only
// once: checkers added later do not reopen it. The daemon holds VRRP
// preemption until then.
func (g *Group) FirstRoundDone() <-chan struct{} { return g.first }
