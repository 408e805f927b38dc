//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Serve accepts connections for frontend on ln until ctx is done, then
// closes ln. A *net.TCPListener is taken over (its socket is accepted from
// directly, with the same inherited options as Listen's sockets, which
// connections already queued on it lack; closing ln no longer stops Serve,
// cancelling ctx does). Connections it accepted stay up; they are tracked
// like any other. For listeners made elsewhere (socket activation, tests).
func (p *Proxy) Serve(ctx context.Context, frontend string, ln net.Listener) error {
	p.mu.Lock()
	fe := p.frontend(frontend)
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if fe == nil {
		return fmt.Errorf("%w: frontend %q", ErrUnknown, frontend)
	}
	if tl, ok := ln.(*net.TCPListener); ok {
		// Take the socket over: accept4 through our own poller handle.
		rc, err := tl.SyscallConn()
		if err != nil {
			return err
		}
		nfd, derr := -1, error(nil)
		if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
			return err
		}
		if derr != nil {
			return derr
		}
		ln.Close()
		if err := setOpts(nfd, inheritedOpts); err != nil {
			unix.Close(nfd)
			return err
		}
		rl, err := newRawListener(nfd)
		if err != nil {
			return err
		}
		p.attach(fe, rl)
		<-ctx.Done()
		p.detach(rl)
		return ctx.Err()
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { close(done); ln.Close() })
	defer stop()
	p.acceptLoop(fe, netAccept(ln), done)
	ln.Close()
	return ctx.Err()
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
		c := &conn{fe: fe, cfd: int32(fd), sfd: -1}
		c.setSource(sa)
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
