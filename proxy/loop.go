//go:build linux

package proxy

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// loop is one event loop: an epoll set, the connections it owns, its
// share of every listener and a pool of pipes. Only the loop goroutine
// touches its connections; other goroutines hand it commands through mu.
type loop struct {
	p     *Proxy
	index int
	epfd  int
	efd   int // eventfd: wakes the loop when it is blocked in epoll_wait

	own sync.Mutex // held by the loop goroutine while it runs

	mu       sync.Mutex
	inbox    []queued // connections handed over and commands, in order
	sleeping bool
	running  bool
	stopping bool

	slotFreed atomic.Bool  // a connection slot freed while a listener waited for one
	load      atomic.Int32 // client connections owned, for balancing accepts

	// Owned by the loop goroutine (or by whoever holds own).
	stop       bool
	frozen     bool    // a handoff is under way: no accepting (freeze.go)
	nfds       int     // fds registered in the proxy's table (fdtab.go)
	adopting   []*conn // adopted before Run, joining on its first turn (adopt.go)
	lns        []*lnState
	lnWork     bool  // some listener may have connections to accept now
	lnRetryAt  int64 // the earliest retryAt of a listener backing off (0: none)
	nextID     int32
	connecting []*conn
	again      []*conn
	free       []*pipe
	buf        []byte // shared read buffer, only used inside one pump call
	now        int64  // monotonic ns since Proxy.epoch, once per wake-up
	nextSweep  int64  // when to sweep the connecting list (0: nothing there)
	nextIdle   int64  // when to sweep for idle connections (0: not scheduled)
	yielded    int64  // when the loop last passed through the scheduler
	// Out of file descriptors (see fdlimit.go).
	spare     int     // reserved fd, closed to make room for a server socket; -1: used
	parked    []*conn // accepted clients waiting for a server socket
	fdRetryAt int64   // short of fds: accepting paused until fdRetry then (0: not short)
	fdBo      backoff
}

func newLoop(p *Proxy) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	spare, _ := dupSpare(efd) // -1 on failure: taken before the first accept
	return &loop{p: p, epfd: epfd, efd: efd, spare: spare, buf: make([]byte, bufSize)}, nil
}

func (l *loop) wakeLocked() bool {
	if l.sleeping {
		l.sleeping = false
		return true
	}
	return false
}

func (l *loop) wake() {
	var one = [8]byte{1}
	sysWrite(l.efd, one[:])
}

// kick wakes the loop if it sleeps, so it looks at its atomics.
func (l *loop) kick() {
	l.mu.Lock()
	w := l.wakeLocked()
	l.mu.Unlock()
	if w {
		l.wake()
	}
}

// queued is a connection handed to the loop (c) or a command (fn). One
// queue keeps their order: a command given before a connection was
// accepted must not act on it. With connections adopted before commands,
// a "close server b's connections" given while a loop slept closed a
// connection another loop accepted later and handed over, routed to b
// after b was ready again (TestInboxOrder).
type queued struct {
	c  *conn
	fn func(*loop)
}

// runInbox adopts the handed-over connections and runs the commands, in
// the order they came. Connections a command adopted from an old process
// (Adopt while the loop runs) join before the next command, which may be
// a freeze's export or a drain that must see them
// (TestAdoptWhileRunningSeenByNextCommand).
func (l *loop) runInbox(in []queued) {
	for _, q := range in {
		if q.c != nil {
			l.adopt(q.c)
			continue
		}
		q.fn(l)
		if len(l.adopting) > 0 {
			l.joinAdopted()
		}
	}
}

// post hands a freshly accepted connection to the loop. It returns false
// when the loop has stopped for good.
func (l *loop) post(c *conn) bool {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return false
	}
	l.inbox = append(l.inbox, queued{c: c})
	l.load.Add(1)
	w := l.wakeLocked()
	l.mu.Unlock()
	if w {
		l.wake()
	}
	return true
}

// postAwake hands c to the loop only if the loop is awake (no wake-up
// system call needed).
func (l *loop) postAwake(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sleeping || l.stopping || !l.running {
		return false
	}
	l.inbox = append(l.inbox, queued{c: c})
	l.load.Add(1)
	return true
}

// async runs fn on the loop goroutine soon, or right away if the loop is not
// running.
func (l *loop) async(fn func(*loop)) {
	l.mu.Lock()
	switch {
	case l.running && !l.stopping:
		l.inbox = append(l.inbox, queued{fn: fn})
		w := l.wakeLocked()
		l.mu.Unlock()
		if w {
			l.wake()
		}
		return
	case l.stopping:
		// The loop is finishing: ownership comes free when it has.
		l.mu.Unlock()
		l.own.Lock()
	default:
		// Not started: take ownership before letting go of mu, or the loop
		// could start in between and hold it for good (run sets running,
		// under mu, before it takes ownership).
		l.own.Lock()
		l.mu.Unlock()
	}
	fn(l)
	l.own.Unlock()
}

// do runs fn on the loop and waits for it.
func (l *loop) do(fn func(*loop)) {
	done := make(chan struct{})
	l.async(func(l *loop) { fn(l); close(done) })
	<-done
}

func (l *loop) clock() int64 { return int64(time.Since(l.p.epoch)) }

// yieldEvery is how often a loop passes through the scheduler. To the
// scheduler a loop is one goroutine that never ends its time slice (its
// waits in epoll_wait do not count), so every 10 ms sysmon would preempt
// it with a signal and take its P, and after each such take keep its own
// tick at 20 µs for a while. A loop that yields itself first is left
// alone (procs.go).
const yieldEvery = 5 * time.Millisecond

func (l *loop) yield() {
	l.yielded = l.now
	runtime.Gosched()
}

func (l *loop) run() {
	// Running first, ownership second: from here on commands are queued
	// (async), and one that took ownership before is let finish.
	l.mu.Lock()
	l.running = true
	l.mu.Unlock()
	l.own.Lock()
	defer l.own.Unlock()
	events := make([]unix.EpollEvent, 256)
	l.now = l.clock()
	l.joinAdopted()
	for !l.stop {
		next := l.nextWake()
		if next != 0 {
			l.mu.Lock()
			if len(l.inbox) == 0 && !l.slotFreed.Load() {
				l.sleeping = true
			} else {
				next = 0
			}
			l.mu.Unlock()
		}
		n := l.wait(events, next)
		l.now = l.clock()
		if l.now-l.yielded >= int64(yieldEvery) {
			l.yield()
		}
		for i := range events[:n] {
			ev := &events[i]
			if ev.Pad == listenPad {
				l.listenerEvent(ev.Fd)
				continue
			}
			if ev.Fd == int32(l.efd) {
				var b [8]byte
				sysRead(l.efd, b[:])
				continue
			}
			c := l.lookup(ev.Fd)
			if c == nil {
				continue
			}
			switch {
			case ev.Fd == c.cfd && ev.Pad == c.cid:
				c.clientEvent(l, ev.Events)
			case ev.Fd == c.sfd && ev.Pad == c.sid:
				c.serverEvent(l, ev.Events)
			}
		}
		l.mu.Lock()
		l.sleeping = false
		in := l.inbox
		l.inbox = nil
		l.mu.Unlock()
		l.runInbox(in)
		if l.fdRetryAt != 0 && l.now >= l.fdRetryAt {
			l.fdRetry()
		}
		if l.slotFreed.Swap(false) {
			for _, ls := range l.lns {
				if ls.waitSlot {
					ls.waitSlot = false
					l.lnWork = true
				}
			}
		}
		if l.lnRetryAt != 0 && l.now >= l.lnRetryAt {
			l.lnRetryAt = 0
			l.lnWork = true // a backoff ended: accept what waits in the backlog
		}
		if l.lnWork {
			l.acceptAll()
		}
		if len(l.again) > 0 {
			again := l.again
			l.again = nil
			for _, c := range again {
				c.flags &^= fAgain
				if c.flags&fClosed == 0 {
					c.run(l)
				}
			}
		}
		if l.nextSweep != 0 && l.now >= l.nextSweep {
			l.sweepConnecting()
		}
		if l.now >= l.nextIdle && l.p.idleMin.Load() > 0 {
			l.sweepIdle()
		}
	}
	l.shutdown()
}

// shutdown closes everything the loop owns; no more connections are posted.
func (l *loop) shutdown() {
	l.mu.Lock()
	l.stopping = true
	l.running = false
	in := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	for _, q := range in {
		if q.c != nil {
			l.load.Add(-1)
			q.c.closeUnadopted(l.p)
		} else {
			q.fn(l)
		}
	}
	l.closeAll(nil)
	for _, p := range l.free {
		unix.Close(p.r)
		unix.Close(p.w)
		l.p.pipes.Add(-1)
	}
	l.free = nil
}

// wait returns ready events, waiting until next (ns since the epoch; -1:
// no limit, 0: do not wait). The goroutine blocks its thread in epoll_wait,
// as HAProxy's threads do: one wake-up per event, where parking in the
// runtime poller cost two (the runtime's epoll, then ours) plus a
// scheduler hand-off. The runtime takes the P back while the thread
// sleeps (sysmon), so other goroutines still run; accepting happens in the
// loops themselves, so no acceptor goroutine waits for a P.
func (l *loop) wait(events []unix.EpollEvent, next int64) int {
	ms := -1
	switch {
	case next == 0:
		ms = 0
	case next > 0:
		d := next - l.clock()
		ms = 0
		if d > 0 {
			ms = int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
		}
	}
	for {
		n, err := unix.EpollWait(l.epfd, events, ms)
		if err == unix.EINTR {
			continue
		}
		return max(n, 0)
	}
}

// nextWake returns when the loop must wake by itself (see wait).
func (l *loop) nextWake() int64 {
	if len(l.again) > 0 || l.lnWork {
		return 0
	}
	next := int64(-1)
	earliest := func(t int64) {
		if t > 0 && (next < 0 || t < next) {
			next = t
		}
	}
	earliest(l.nextSweep)
	earliest(l.fdRetryAt)
	if idle := l.p.idleMin.Load(); idle > 0 {
		if l.nextIdle <= l.now {
			l.nextIdle = l.now + min(max(idle, int64(idleMin)), int64(idleMax))
		}
		earliest(l.nextIdle)
	}
	earliest(l.lnRetryAt)
	return next
}

// closeAll closes every connection the loop owns for which match is true
// (all if match is nil), including ones still connecting.
func (l *loop) closeAll(match func(*conn) bool) {
	var victims []*conn
	if len(l.adopting) > 0 {
		// Not joined yet: closing them closes this process's duplicates;
		// the old process lets go of its own when it abandons.
		kept := l.adopting[:0]
		for _, c := range l.adopting {
			if match == nil || match(c) {
				victims = append(victims, c)
			} else {
				kept = append(kept, c)
			}
		}
		clear(l.adopting[len(kept):])
		l.adopting = kept
	}
	l.p.fds.each(l.index, func(c *conn) {
		if match == nil || match(c) {
			victims = append(victims, c)
		}
	})
	for _, c := range victims {
		c.close(l)
	}
}
