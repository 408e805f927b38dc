package proxy

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
	// listenEvents: every loop has every listener, edge-triggered, and
	// EPOLLEXCLUSIVE wakes one waiting loop per new connection instead of
	// all of them (a busy loop still sees the event when it next polls).
	listenEvents = unix.EPOLLIN | unix.EPOLLET | unix.EPOLLEXCLUSIVE
	// listenPad marks a listener's epoll events (connections use ids > 0).
	listenPad = -1
	// acceptBatch bounds the accepts per listener per wake-up so a
	// connection storm cannot starve established connections.
	acceptBatch = 32
	// spliceBudget bounds the splices per direction per wake-up so one
	// bulk stream cannot starve the loop's other connections.
	spliceBudget = 16
	// maxTries bounds the servers tried for one client connection.
	maxTries = 4
	// pipeSize is the capacity asked of pooled pipes.
	pipeSize = 1 << 18
	// maxFreePipes bounds the idle pipes a loop keeps.
	maxFreePipes = 32
	// bufSize is the loop's shared read buffer; a read that fills it
	// switches the direction to splice.
	bufSize = 64 << 10
	// smallRead switches a spliced direction back to the buffer.
	smallRead = 16 << 10
	// Timers are swept, not kept per connection: the loop wakes at the
	// earliest connect or idle deadline it knows of, but not more often
	// than every sweepMin (connect) or idleMin (idle); a sweep is a walk
	// over the connecting list or all connections.
	sweepMin = 5 * time.Millisecond
	idleMin  = 20 * time.Millisecond
	idleMax  = time.Second
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
	incoming []*conn
	cmds     []func(*loop)
	sleeping bool
	running  bool
	stopping bool

	slotFreed atomic.Bool  // a connection slot freed while a listener waited for one
	load      atomic.Int32 // client connections owned, for balancing accepts

	// Owned by the loop goroutine (or by whoever holds own).
	stop       bool
	conns      map[int32]*conn // by fd, client and server side
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
	// Out of file descriptors (see fdlimit.go).
	spare     int     // reserved fd, closed to make room for a server socket; -1: used
	parked    []*conn // accepted clients waiting for a server socket
	fdRetryAt int64   // short of fds: accepting paused until fdRetry then (0: not short)
	fdBo      backoff
}

// lnState is one loop's view of a listener.
type lnState struct {
	fe       *frontend
	fd       int32
	ready    bool  // an edge was seen and accept has not returned EAGAIN since
	waitSlot bool  // at a connection limit: retried when a slot frees
	retryAt  int64 // backing off after an accept error until then
	bo       backoff
}

type pipe struct {
	r, w int
	n    int // bytes buffered
	cap  int
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
	return &loop{p: p, epfd: epfd, efd: efd, spare: spare, conns: make(map[int32]*conn), buf: make([]byte, bufSize)}, nil
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
	unix.Write(l.efd, one[:])
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

// post hands a freshly accepted connection to the loop. It returns false
// when the loop has stopped for good.
func (l *loop) post(c *conn) bool {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return false
	}
	l.incoming = append(l.incoming, c)
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
	l.incoming = append(l.incoming, c)
	l.load.Add(1)
	return true
}

// async runs fn on the loop goroutine soon, or right away if the loop is not
// running.
func (l *loop) async(fn func(*loop)) {
	l.mu.Lock()
	if l.running && !l.stopping {
		l.cmds = append(l.cmds, fn)
		w := l.wakeLocked()
		l.mu.Unlock()
		if w {
			l.wake()
		}
		return
	}
	l.mu.Unlock()
	l.own.Lock()
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

func (l *loop) run() {
	l.own.Lock()
	defer l.own.Unlock()
	l.mu.Lock()
	l.running = true
	l.mu.Unlock()
	events := make([]unix.EpollEvent, 256)
	l.now = l.clock()
	for !l.stop {
		next := l.nextWake()
		if next != 0 {
			l.mu.Lock()
			if len(l.incoming) == 0 && len(l.cmds) == 0 && !l.slotFreed.Load() {
				l.sleeping = true
			} else {
				next = 0
			}
			l.mu.Unlock()
		}
		n := l.wait(events, next)
		l.now = l.clock()
		for i := range events[:n] {
			ev := &events[i]
			if ev.Pad == listenPad {
				l.listenerEvent(ev.Fd)
				continue
			}
			if ev.Fd == int32(l.efd) {
				var b [8]byte
				unix.Read(l.efd, b[:])
				continue
			}
			c := l.conns[ev.Fd]
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
		in, cmds := l.incoming, l.cmds
		l.incoming, l.cmds = nil, nil
		l.mu.Unlock()
		for _, c := range in {
			l.adopt(c)
		}
		for _, fn := range cmds {
			fn(l)
		}
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
	in, cmds := l.incoming, l.cmds
	l.incoming, l.cmds = nil, nil
	l.mu.Unlock()
	for _, c := range in {
		l.load.Add(-1)
		c.closeUnadopted(l.p)
	}
	for _, fn := range cmds {
		fn(l)
	}
	l.closeAll(nil)
	for _, p := range l.free {
		unix.Close(p.r)
		unix.Close(p.w)
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
	if l.fdRetryAt != 0 {
		return // short of fds: fdRetry resumes accepting
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
		c := &conn{fe: fe, cfd: int32(fd), sfd: -1, src: sa}
		if o := l.lighter(); o != nil && o.post(c) {
			continue
		}
		l.load.Add(1)
		l.adopt(c)
	}
	l.lnWork = true // the batch ran out: more next round
}

// closeAll closes every connection the loop owns for which match is true
// (all if match is nil), including ones still connecting.
func (l *loop) closeAll(match func(*conn) bool) {
	var victims []*conn
	for fd, c := range l.conns {
		if fd == c.cfd && (match == nil || match(c)) {
			victims = append(victims, c)
		}
	}
	for _, c := range victims {
		c.close(l)
	}
}

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

func (l *loop) getPipe() *pipe {
	if n := len(l.free); n > 0 {
		p := l.free[n-1]
		l.free = l.free[:n-1]
		return p
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil
	}
	p := &pipe{r: fds[0], w: fds[1], cap: 1 << 16}
	if n, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize); err == nil {
		p.cap = n
	}
	return p
}

func (l *loop) putPipe(p *pipe) {
	if p.n == 0 && len(l.free) < maxFreePipes {
		l.free = append(l.free, p)
		return
	}
	unix.Close(p.r)
	unix.Close(p.w)
}

// Connection flags.
const (
	fCRead uint32 = 1 << iota // client readable since the last EAGAIN (edge-triggered)
	fCWrite
	fSRead
	fSWrite
	fC2SEOF  // client sent FIN
	fS2CEOF  // server sent FIN
	fC2SShut // FIN forwarded to the server
	fS2CShut // FIN forwarded to the client
	fEstablished
	fConnecting // on the loop's connecting list
	fAgain      // on the loop's again list
	fClosed
	fC2SBulk // client to server moves by splice (the last read filled the buffer)
	fS2CBulk
	fCHup // the client's FIN or an error was signalled: read until EOF
	fSHup
	fParked // on the loop's parked list, waiting for a file descriptor
)

// conn is one proxied connection. It holds no buffer while idle: a pipe is
// taken from the loop's pool only while bytes are in flight.
type conn struct {
	fe       *frontend
	be       *backend
	srv      *server
	src      netip.AddrPort // client address from accept
	pipes    [2]*pipe       // [0] client->server, [1] server->client
	pend     [2][]byte      // bytes read but not yet written, only after a short write
	deadline int64          // connect deadline
	last     int64          // last activity, for the idle timeout
	tried    [maxTries]*server
	cfd, sfd int32
	cid, sid int32 // registration ids: stale epoll events are ignored
	ci       int32 // index in the loop's connecting list, with fConnecting
	flags    uint32
	tries    uint8
}

func (l *loop) id() int32 {
	l.nextID++
	if l.nextID <= 0 {
		l.nextID = 1
	}
	return l.nextID
}

// adopt registers a new client connection and starts connecting.
func (l *loop) adopt(c *conn) {
	c.cid = l.id()
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.cfd), &unix.EpollEvent{Events: connEvents, Fd: c.cfd, Pad: c.cid}); err != nil {
		l.load.Add(-1)
		c.closeUnadopted(l.p)
		return
	}
	l.conns[c.cfd] = c
	c.last = l.now
	c.be = c.fe.be.Load()
	c.connect(l)
}

// connect tries eligible servers not tried yet, up to maxTries, and closes
// the client when none is left.
func (c *conn) connect(l *loop) {
	for c.tries < maxTries {
		s := c.pick()
		if s == nil {
			break
		}
		c.tried[c.tries] = s
		c.tries++
		fd, err := l.serverSocket(s.raw.family)
		if err != nil {
			if outOfFds(err) {
				// Not the server's fault: wait for an fd, the server untried.
				c.tries--
				c.tried[c.tries] = nil
				l.park(c, err)
				return
			}
			s.failed.Add(1)
			if ok, held := l.p.socketWarn.allow(l.now); ok {
				l.p.log.Warn().Err(err).Int("repeated", held).Msg("socket for server connection")
			}
			break
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle)
		err = connectRaw(fd, &s.raw)
		if err != nil && err != unix.EINPROGRESS {
			unix.Close(fd)
			s.failed.Add(1)
			l.p.log.Debug().Err(err).Str("backend", c.be.name).Str("server", s.name).Msg("connect failed")
			continue
		}
		c.srv = s
		s.active.Add(1)
		c.sfd = int32(fd)
		c.sid = l.id()
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: connEvents, Fd: c.sfd, Pad: c.sid}); err != nil {
			c.close(l)
			return
		}
		l.conns[c.sfd] = c
		if err == nil {
			c.established(l)
			c.run(l)
			return
		}
		c.deadline = l.now + c.fe.connectTimeout.Load()
		if c.flags&fConnecting == 0 {
			c.flags |= fConnecting
			c.ci = int32(len(l.connecting))
			l.connecting = append(l.connecting, c)
		}
		l.scheduleSweep(c.deadline)
		return
	}
	if c.tries == 0 {
		l.p.log.Warn().Str("frontend", c.fe.name).Str("backend", c.be.name).Msg("no server available")
	}
	c.close(l)
}

func (c *conn) pick() *server {
	snap := c.be.snap.Load()
	cand := snap.servers
	if c.tries > 0 {
		var buf [8]*server
		f := buf[:0]
	next:
		for _, s := range cand {
			for _, t := range c.tried[:c.tries] {
				if s == t {
					continue next
				}
			}
			f = append(f, s)
		}
		cand = f
	}
	if len(cand) == 0 {
		return nil
	}
	ip := c.src.Addr()
	return snap.picker.pick(ip, cand)
}

func (c *conn) connectFailed(l *loop, err error) {
	l.dropConnecting(c)
	s := c.srv
	s.failed.Add(1)
	s.active.Add(-1)
	l.p.log.Debug().Err(err).Str("backend", c.be.name).Str("server", s.name).Msg("connect failed")
	c.srv = nil
	delete(l.conns, c.sfd)
	unix.Close(int(c.sfd))
	c.sfd = -1
	c.connect(l)
}

func (c *conn) established(l *loop) {
	l.dropConnecting(c)
	c.flags |= fEstablished
	c.srv.total.Add(1)
	if c.be.snap.Load().proxyProto {
		dst := netipFromFd(int(c.cfd))
		hdr := AppendProxyHeaderV2(make([]byte, 0, 52), c.src, dst)
		if n, err := unix.Write(int(c.sfd), hdr); err != nil || n != len(hdr) {
			c.close(l)
		}
	}
}

func (c *conn) clientEvent(l *loop, ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fCRead
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fCHup
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fCWrite
	}
	if c.flags&fEstablished == 0 {
		if ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.close(l) // client gone while we connect
		}
		return
	}
	c.run(l)
}

func (c *conn) serverEvent(l *loop, ev uint32) {
	if c.flags&fEstablished == 0 {
		if ev&unix.EPOLLERR != 0 || ev&unix.EPOLLOUT == 0 {
			err, _ := unix.GetsockoptInt(int(c.sfd), unix.SOL_SOCKET, unix.SO_ERROR)
			c.connectFailed(l, unix.Errno(err))
			return
		}
		c.established(l)
		if c.flags&fClosed != 0 {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fSRead
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fSHup
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fSWrite
	}
	c.run(l)
}

// run moves whatever can move in both directions.
func (c *conn) run(l *loop) {
	c.last = l.now
	more := false
	for d := range 2 {
		m, ok := c.pump(l, d)
		if !ok {
			c.close(l)
			return
		}
		more = more || m
	}
	if c.flags&(fC2SShut|fS2CShut) == fC2SShut|fS2CShut {
		c.close(l)
		return
	}
	if more && c.flags&fAgain == 0 {
		c.flags |= fAgain
		l.again = append(l.again, c)
	}
}

var dirFlags = [2]struct{ read, write, eof, shut, bulk, hup uint32 }{
	{fCRead, fSWrite, fC2SEOF, fC2SShut, fC2SBulk, fCHup},
	{fSRead, fCWrite, fS2CEOF, fS2CShut, fS2CBulk, fSHup},
}

// pump moves one direction (0: client to server, 1: server to client)
// until the source has nothing or the destination is full. Small reads go
// through the loop's shared buffer (recv+send, and a short recv means the
// socket is drained, saving the EAGAIN probe); once a read fills the
// buffer the direction switches to splice through a pooled pipe, zero-copy,
// until reads get small again. Nothing stays held while the connection is
// idle. It reports whether its budget ran out with work left, and false in
// ok on a fatal error.
func (c *conn) pump(l *loop, d int) (more, ok bool) {
	f := dirFlags[d]
	if c.flags&f.shut != 0 {
		return false, true
	}
	src, dst := int(c.cfd), int(c.sfd)
	counter := &c.fe.bytesIn
	if d == 1 {
		src, dst = dst, src
		counter = &c.fe.bytesOut
	}
	for range spliceBudget {
		if p := c.pipes[d]; p != nil && p.n > 0 {
			if c.flags&f.write == 0 {
				return false, true
			}
			n, err := unix.Splice(p.r, nil, dst, nil, p.n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if err != nil {
				if err == unix.EAGAIN {
					c.flags &^= f.write
					return false, true
				}
				if err == unix.EINTR {
					continue
				}
				return false, false
			}
			p.n -= int(n)
			counter.Add(uint64(n))
			if p.n == 0 {
				c.pipes[d] = nil
				l.putPipe(p)
			}
			continue
		}
		if len(c.pend[d]) > 0 {
			if c.flags&f.write == 0 {
				return false, true
			}
			n, err := unix.Write(dst, c.pend[d])
			if err != nil {
				if err == unix.EAGAIN {
					c.flags &^= f.write
					return false, true
				}
				if err == unix.EINTR {
					continue
				}
				return false, false
			}
			counter.Add(uint64(n))
			if c.pend[d] = c.pend[d][n:]; len(c.pend[d]) == 0 {
				c.pend[d] = nil
			}
			continue
		}
		if c.flags&f.eof != 0 {
			// The other direction already finished: close (in run) sends
			// this FIN, so skip the shutdown call.
			if c.flags&(fC2SShut|fS2CShut) == 0 {
				unix.Shutdown(dst, unix.SHUT_WR)
			}
			c.flags |= f.shut
			return false, true
		}
		if c.flags&f.read == 0 {
			return false, true
		}
		if c.flags&f.bulk != 0 {
			p := c.pipes[d]
			if p == nil {
				if p = l.getPipe(); p == nil {
					c.flags &^= f.bulk // out of fds: copy through the buffer
					continue
				}
				c.pipes[d] = p
			}
			n, err := unix.Splice(src, nil, p.w, nil, p.cap, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == unix.EAGAIN:
				c.flags &^= f.read
				c.pipes[d] = nil
				l.putPipe(p)
				return false, true
			case err == unix.EINTR:
				continue
			case err != nil:
				return false, false
			case n == 0:
				c.flags |= f.eof
			case n < smallRead:
				c.flags &^= f.bulk
			}
			p.n = int(n)
			continue
		}
		if c.flags&f.write == 0 {
			return false, true // backpressure: leave the bytes in the socket
		}
		n, err := unix.Read(src, l.buf)
		switch {
		case err == unix.EAGAIN:
			c.flags &^= f.read
			return false, true
		case err == unix.EINTR:
			continue
		case err != nil:
			return false, false
		case n == 0:
			c.flags |= f.eof
			continue
		case n == len(l.buf):
			c.flags |= f.bulk
		case c.flags&f.hup == 0:
			// A short read emptied the receive queue; new data brings a
			// new edge. After a FIN or error was signalled keep reading
			// until EOF.
			c.flags &^= f.read
		}
		w, err := unix.Write(dst, l.buf[:n])
		if err != nil {
			if err != unix.EAGAIN {
				return false, false
			}
			w = 0
			c.flags &^= f.write
		}
		counter.Add(uint64(w))
		if w < n {
			c.pend[d] = append([]byte(nil), l.buf[w:n]...)
		}
	}
	return true, true
}

// close closes both sides and releases everything the connection holds.
func (c *conn) close(l *loop) {
	if c.flags&fClosed != 0 {
		return
	}
	l.dropConnecting(c)
	c.flags |= fClosed
	l.load.Add(-1)
	if l.fdRetryAt != 0 {
		l.fdRetryAt = l.now // fds freed: parked clients and accepting retry now
	}
	delete(l.conns, c.cfd)
	unix.Close(int(c.cfd))
	if c.sfd >= 0 {
		delete(l.conns, c.sfd)
		unix.Close(int(c.sfd))
	}
	for d, p := range c.pipes {
		if p != nil {
			c.pipes[d] = nil
			l.putPipe(p)
		}
	}
	if c.srv != nil {
		c.srv.active.Add(-1)
		c.srv = nil
	}
	c.release(l.p)
}

// closeUnadopted closes a connection no loop has registered.
func (c *conn) closeUnadopted(p *Proxy) {
	c.flags |= fClosed
	unix.Close(int(c.cfd))
	c.release(p)
}

func (c *conn) release(p *Proxy) {
	c.fe.active.Add(-1)
	p.active.Add(-1)
	p.unadmit(c.fe)
}

func netipFromFd(fd int) netip.AddrPort {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return sockaddrToAddrPort(sa)
}

func closeFd(fd int) { unix.Close(fd) }
