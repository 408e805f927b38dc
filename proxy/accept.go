//go:build linux

package proxy

import (
	"time"

	"golang.org/x/sys/unix"
)

const (
	// listenEvents: every loop has every listener, edge-triggered, and
	// EPOLLEXCLUSIVE wakes one waiting loop per new connection instead of
	// all of them (a busy loop still sees the event when it next polls).
	listenEvents = unix.EPOLLIN | unix.EPOLLET | unix.EPOLLEXCLUSIVE
	// listenPad marks a listener's epoll events (connections use ids > 0).
	listenPad = -1
	// acceptBatch bounds the accepts per listener per wake-up so a
	// connection storm cannot starve established connections.
	acceptBatch = 32
)

// lnState is one loop's view of a listener.
type lnState struct {
	fe       *frontend
	fd       int32
	ready    bool  // an edge was seen and accept has not returned EAGAIN since
	waitSlot bool  // at a connection limit: retried when a slot frees
	retryAt  int64 // backing off after an accept error until then
	bo       backoff
}

// addListener puts a listener in the loop's epoll set.
func (l *loop) addListener(fe *frontend, fd int) {
	if l.epfd < 0 {
		return
	}
	ls := &lnState{fe: fe, fd: int32(fd), ready: true}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: listenEvents, Fd: int32(fd), Pad: listenPad}); err != nil {
		l.p.log.Error().Err(err).Str("frontend", fe.name).Msg("epoll_ctl listener")
		return
	}
	l.lns = append(l.lns, ls)
	l.lnWork = true // connections may already wait in the backlog
}

// removeListener takes a listener out of the loop's epoll set.
func (l *loop) removeListener(fd int) {
	for i, ls := range l.lns {
		if ls.fd == int32(fd) {
			if l.epfd >= 0 {
				unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			}
			l.lns = append(l.lns[:i], l.lns[i+1:]...)
			return
		}
	}
}

func (l *loop) listenerEvent(fd int32) {
	for _, ls := range l.lns {
		if ls.fd == fd {
			ls.ready = true
			l.lnWork = true
			return
		}
	}
}

// acceptAll accepts from every ready listener, a batch each.
func (l *loop) acceptAll() {
	l.lnWork = false
	if l.fdRetryAt != 0 || l.frozen {
		return // short of fds: fdRetry resumes accepting; frozen: Resume does
	}
	for _, ls := range l.lns {
		if !ls.ready || ls.waitSlot {
			continue
		}
		if ls.retryAt > l.now {
			l.retryAccept(ls.retryAt)
			continue
		}
		ls.retryAt = 0
		l.acceptFrom(ls)
		if l.fdRetryAt != 0 {
			return
		}
	}
}

// retryAccept makes the loop call acceptAll again at t, when a listener's
// accept backoff ends: no new edge may come for the clients already waiting
// in its backlog.
func (l *loop) retryAccept(t int64) {
	if l.lnRetryAt == 0 || t < l.lnRetryAt {
		l.lnRetryAt = t
	}
}

// lighter returns a loop with clearly fewer connections than this one, or
// nil. EPOLLEXCLUSIVE wakes an idle loop for a new connection, but a loop
// that wakes for a burst accepts all of it: 8 bulk streams opened at once
// would share one loop (and one core) while the other idles. Handing a
// connection over costs an eventfd wake-up, so only imbalance pays it.
func (l *loop) lighter() *loop {
	if len(l.p.loops) == 1 || l.p.fdShort.Load() != 0 {
		return nil
	}
	mine := l.load.Load()
	var best *loop
	bestN := mine - 1 // at least two fewer
	for _, o := range l.p.loops {
		if n := o.load.Load(); n < bestN {
			best, bestN = o, n
		}
	}
	return best
}

// acceptFrom accepts up to acceptBatch connections and adopts them. At a
// connection limit it stops calling accept, so clients wait in the kernel
// backlog, until unadmit reports a free slot; likewise when it cannot hold
// its spare fd (see fdlimit.go). Accept errors (EMFILE, ENFILE...) are
// backed off, 5ms doubling to 1s, never fatal.
func (l *loop) acceptFrom(ls *lnState) {
	p, fe := l.p, ls.fe
	for range acceptBatch {
		if l.spare < 0 && !l.reserve() {
			return
		}
		if !p.tryAdmit(fe) {
			p.slotWaiters.Or(1 << l.index)
			if !p.tryAdmit(fe) { // a slot may have freed before the bit was set
				ls.waitSlot = true
				return
			}
		}
		fd, sa, err := accept4(int(ls.fd))
		if err != nil {
			p.unadmit(fe)
			switch err {
			case unix.EAGAIN:
				ls.ready = false
				return
			case unix.EINTR, unix.ECONNABORTED:
				continue
			}
			d := ls.bo.next()
			if ok, held := p.acceptWarn.allow(l.now); ok {
				p.log.Warn().Err(err).Str("frontend", fe.name).Dur("backoff", d).Int("repeated", held).Msg("accept failed, backing off")
			}
			ls.retryAt = l.now + int64(d)
			l.retryAccept(ls.retryAt)
			return
		}
		ls.bo.reset()
		fe.total.Add(1)
		fe.active.Add(1)
		p.active.Add(1)
		c := &conn{fe: fe, cfd: int32(fd), sfd: -1}
		c.setSource(sa)
		if o := l.lighter(); o != nil && o.post(c) {
			continue
		}
		l.load.Add(1)
		l.adopt(c)
	}
	l.lnWork = true // the batch ran out: more next round
}

// backoff is the delay after a temporary accept error (EMFILE, ENFILE,
// ENOBUFS...): 5ms doubling to 1s, reset by a successful accept.
type backoff struct{ d time.Duration }

const (
	backoffMin = 5 * time.Millisecond
	backoffMax = time.Second
)

func (b *backoff) next() time.Duration {
	switch {
	case b.d == 0:
		b.d = backoffMin
	case b.d < backoffMax:
		b.d = min(2*b.d, backoffMax)
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

func (p *Proxy) tryAdmit(fe *frontend) bool {
	// A mutex, not optimistic increments: a transient over-count would make
	// another acceptor wait with nobody left to wake it.
	p.admitMu.Lock()
	defer p.admitMu.Unlock()
	if m := p.maxConn.Load(); m > 0 && p.slots.Load() >= m {
		return false
	}
	if m := fe.maxConn.Load(); m > 0 && fe.slots.Load() >= m {
		return false
	}
	p.slots.Add(1)
	fe.slots.Add(1)
	return true
}

func (p *Proxy) unadmit(fe *frontend) {
	fe.slots.Add(-1)
	p.slots.Add(-1)
	p.gate.signal()
	if p.slotWaiters.Load() != 0 {
		w := p.slotWaiters.Swap(0)
		for i, l := range p.loops {
			if w&(1<<i) != 0 {
				l.slotFreed.Store(true)
				l.kick()
			}
		}
	}
}
