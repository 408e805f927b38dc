//go:build linux

package proxy

import (
	"time"

	"golang.org/x/sys/unix"
)

// Timers are swept, not kept per connection: the loop wakes at the
// earliest connect or idle deadline it knows of, but not more often than
// every sweepMin (connect) or idleMin (idle); a sweep is a walk over the
// connecting list or all connections.
const (
	sweepMin = 5 * time.Millisecond
	idleMin  = 20 * time.Millisecond
	idleMax  = time.Second
)

// sweepConnecting fails connects past their deadline and schedules the
// next sweep at the earliest deadline left.
func (l *loop) sweepConnecting() {
	l.nextSweep = 0
	var expired []*conn
	for _, c := range l.connecting {
		if l.now >= c.deadline {
			expired = append(expired, c)
		} else {
			l.scheduleSweep(c.deadline)
		}
	}
	for _, c := range expired {
		if c.flags&fConnecting != 0 {
			c.connectFailed(l, unix.ETIMEDOUT) // may try the next server
		}
	}
}

// dropConnecting takes c off the connecting list, in O(1).
func (l *loop) dropConnecting(c *conn) {
	if c.flags&fConnecting == 0 {
		return
	}
	c.flags &^= fConnecting
	last := len(l.connecting) - 1
	if i := c.ci; int(i) != last {
		l.connecting[i] = l.connecting[last]
		l.connecting[i].ci = i
	}
	l.connecting[last] = nil
	l.connecting = l.connecting[:last]
	if last == 0 {
		l.nextSweep = 0
	}
}

// scheduleSweep makes the loop sweep the connecting list by t, but not
// sooner than sweepMin from now.
func (l *loop) scheduleSweep(t int64) {
	t = max(t, l.now+int64(sweepMin))
	if l.nextSweep == 0 || t < l.nextSweep {
		l.nextSweep = t
	}
}

// sweepIdle closes idle connections and schedules the next sweep at the
// earliest time one could expire.
func (l *loop) sweepIdle() {
	next := l.now + min(max(l.p.idleMin.Load(), int64(idleMin)), int64(idleMax))
	l.closeAll(func(c *conn) bool {
		idle := c.fe.idle.Load()
		if idle <= 0 || c.flags&fEstablished == 0 {
			return false
		}
		exp := c.last + idle
		if l.now >= exp {
			return true
		}
		next = min(next, exp)
		return false
	})
	l.nextIdle = max(next, l.now+int64(idleMin))
}
