package daemon

import "sync"

// changes is the node's one "state changed" subscription: it fires when
// an instance published a new state, a tracker or a server changed, or a
// peer's beacon said something new. Subscribers take Wait, wake when it is
// closed, and take a fresh one; nobody polls.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func newChanges() *changes { return &changes{ch: make(chan struct{})} }

// Wait returns a channel closed at the next change.
func (c *changes) Wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

// Notify wakes every subscriber.
func (c *changes) Notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ch)
	c.ch = make(chan struct{})
}
