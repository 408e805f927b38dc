package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const keepAliveIdle = 15 // seconds, as Go's net package

// BindError is returned by Listen when a frontend address cannot be bound.
type BindError struct {
	Frontend string
	Addr     netip.AddrPort
	// Wildcard is set when the address is in use and another socket
	// listens on the wildcard address of the same port (the
	// kube-apiserver co-location trap).
	Wildcard bool
	Err      error
}

func (e *BindError) Error() string {
	if e.Wildcard {
		p := e.Addr.Port()
		return fmt.Sprintf("proxy: frontend %q: cannot listen on %s: %v: another process listens on *:%d "+
			"(every address, the VIP included; kube-apiserver does this by default). "+
			"Fix: run kube-apiserver with --bind-address=<node IP> so it does not hold *:%d, "+
			"or give the frontend another port than %d", e.Frontend, e.Addr, e.Err, p, p, p)
	}
	return fmt.Sprintf("proxy: frontend %q: cannot listen on %s: %v", e.Frontend, e.Addr, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// listenFreebind opens a non-blocking listening socket on addr with
// IP_FREEBIND, so the address need not exist on the host yet (no global
// ip_nonlocal_bind). Accepted sockets inherit keepalive and TCP_NODELAY
// from the listener, which saves three system calls per connection.
func listenFreebind(addr netip.AddrPort) (*rawListener, error) {
	a := addr.Addr().Unmap()
	family := unix.AF_INET
	var sa unix.Sockaddr
	if a.Is6() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()} // As4 panics on IPv6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	opts := [][3]int{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		{unix.IPPROTO_IP, unix.IP_FREEBIND, 1},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle},
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	}
	if a.Is6() {
		opts[1] = [3]int{unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1}
		opts = append(opts, [3]int{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1})
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], o[2]); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("setsockopt %d/%d: %w", o[0], o[1], err)
		}
	}
	// IP_TRANSPARENT, inherited by accepted sockets, lets them keep
	// sending from the VIP after it is removed: on leaving MASTER the VIP
	// goes first (DESIGN.md section 4) and the FIN/RST that closes each
	// client connection must still reach the client, or it hangs until a
	// keepalive timeout. Best effort: it needs CAP_NET_ADMIN.
	if a.Is6() {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TRANSPARENT, 1)
	} else {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TRANSPARENT, 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Listen(fd, 65535); err != nil { // the kernel caps it at somaxconn
		unix.Close(fd)
		return nil, err
	}
	return newRawListener(fd)
}

// rawListener is a non-blocking listening socket. It is not registered
// with the runtime poller: every event loop has it in its epoll set with
// EPOLLEXCLUSIVE and accepts from it directly (see loop.acceptFrom).
type rawListener struct{ fd int }

func newRawListener(fd int) (*rawListener, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &rawListener{fd: fd}, nil
}

func (r *rawListener) close() { unix.Close(r.fd) }

// CheckBinds looks, without binding anything, for what would make Listen
// fail on the co-location trap: a process listening on the wildcard
// address (kube-apiserver on *:6443) or on the frontend's own address and
// port. It reads /proc/net/tcp{,6} only, so it is safe to call at start-up
// before the node has won any election; the error is a *BindError.
func (p *Proxy) CheckBinds() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, fe := range p.frontends {
		for _, a := range fe.binds {
			if fe.listeners[a] != nil {
				continue
			}
			switch {
			case wildcardListening(a.Port()):
				errs = append(errs, &BindError{Frontend: fe.name, Addr: a, Err: unix.EADDRINUSE, Wildcard: true})
			case exactListening(a):
				errs = append(errs, &BindError{Frontend: fe.name, Addr: a, Err: unix.EADDRINUSE})
			}
		}
	}
	return errors.Join(errs...)
}

// exactListening reports whether a socket listens on exactly a.
func exactListening(a netip.AddrPort) bool {
	f := "/proc/net/tcp"
	if a.Addr().Is6() {
		f = "/proc/net/tcp6"
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return false
	}
	return listeningIn(string(data), func(ip string, port uint16) bool {
		return port == a.Port() && ip == procHex(a.Addr())
	})
}

// procHex writes a the way /proc/net/tcp does: each 32-bit word in host
// (little-endian on the architectures vipd runs on) byte order.
func procHex(a netip.Addr) string {
	b := a.AsSlice()
	var sb strings.Builder
	for i := 0; i < len(b); i += 4 {
		fmt.Fprintf(&sb, "%02X%02X%02X%02X", b[i+3], b[i+2], b[i+1], b[i])
	}
	return sb.String()
}

// wildcardListening reports whether a socket listens on 0.0.0.0:port or
// [::]:port, from /proc/net/tcp and /proc/net/tcp6.
func wildcardListening(port uint16) bool {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if wildcardIn(string(data), port) {
			return true
		}
	}
	return false
}

func wildcardIn(table string, port uint16) bool {
	return listeningIn(table, func(ip string, p uint16) bool { return p == port && strings.Trim(ip, "0") == "" })
}

// listeningIn reports whether a listening socket in a /proc/net/tcp table
// matches.
func listeningIn(table string, match func(hexIP string, port uint16) bool) bool {
	for i, line := range strings.Split(table, "\n") {
		fields := strings.Fields(line)
		if i == 0 || len(fields) < 4 || fields[3] != "0A" { // TCP_LISTEN
			continue
		}
		ip, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			continue
		}
		if match(ip, uint16(p)) {
			return true
		}
	}
	return false
}

// gate lets acceptors at a connection limit wait until a connection closes.
type gate struct {
	mu      sync.Mutex
	ch      chan struct{}
	waiters atomic.Int32
}

func (g *gate) arm() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiters.Add(1)
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

func (g *gate) disarm() { g.waiters.Add(-1) }

func (g *gate) signal() {
	if g.waiters.Load() == 0 {
		return
	}
	g.mu.Lock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
	g.mu.Unlock()
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

func sleepDone(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

type acceptFunc func() (int, netip.AddrPort, error)

// netAccept accepts from any net.Listener and duplicates the connection's
// fd (the slow path, for Serve with listeners that are not TCP).
func netAccept(ln net.Listener) acceptFunc {
	return func() (int, netip.AddrPort, error) {
		c, err := ln.Accept()
		if err != nil {
			return -1, netip.AddrPort{}, err
		}
		defer c.Close()
		sc, ok := c.(syscall.Conn)
		if !ok {
			return -1, netip.AddrPort{}, fmt.Errorf("proxy: %T has no file descriptor", c)
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return -1, netip.AddrPort{}, err
		}
		nfd := -1
		var derr error
		if err := rc.Control(func(fd uintptr) {
			nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}); err != nil {
			return -1, netip.AddrPort{}, err
		}
		if derr != nil {
			return -1, netip.AddrPort{}, derr
		}
		unix.SetNonblock(nfd, true)
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		return nfd, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
}

// acceptLoop accepts on ln for fe until ln is closed or done is closed. At
// a connection limit it stops calling accept, so new connections wait in
// the kernel backlog. Accept errors are backed off, never fatal. It is the
// slow path, for Serve with a listener that is not TCP; TCP listeners are
// accepted from inside the event loops.
func (p *Proxy) acceptLoop(fe *frontend, accept acceptFunc, done <-chan struct{}) {
	var bo backoff
	for {
		if !p.admit(fe, done) {
			return
		}
		fd, sa, err := accept()
		if err != nil {
			p.unadmit(fe)
			select {
			case <-done:
				return
			default:
			}
			if errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			d := bo.next()
			if ok, held := p.acceptWarn.allow(int64(time.Since(p.epoch))); ok {
				p.log.Warn().Err(err).Str("frontend", fe.name).Dur("backoff", d).Int("repeated", held).Msg("accept failed, backing off")
			}
			if !p.sleep(done, d) {
				return
			}
			continue
		}
		bo.reset()
		fe.total.Add(1)
		fe.active.Add(1)
		p.active.Add(1)
		c := &conn{fe: fe, cfd: int32(fd), sfd: -1, src: sa}
		if !p.dispatch(c) {
			c.closeUnadopted(p)
		}
	}
}

// admit reserves a connection slot under the global and frontend limits,
// waiting for a close while at a limit. False when done is closed.
func (p *Proxy) admit(fe *frontend, done <-chan struct{}) bool {
	for {
		if p.tryAdmit(fe) {
			return true
		}
		ch := p.gate.arm()
		if p.tryAdmit(fe) {
			p.gate.disarm()
			return true
		}
		select {
		case <-ch:
			p.gate.disarm()
		case <-done:
			p.gate.disarm()
			return false
		}
	}
}

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

// dispatch hands a new connection to a loop: round robin, but preferring a
// loop that is awake, which saves the eventfd wake-up when one is busy.
func (p *Proxy) dispatch(c *conn) bool {
	n := uint32(len(p.loops))
	start := p.nextLoop.Add(1)
	for i := range n {
		if p.loops[(start+i)%n].postAwake(c) {
			return true
		}
	}
	return p.loops[start%n].post(c)
}
