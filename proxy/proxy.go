//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Proxy is the L4 TCP proxy: frontends listening on addresses, forwarding
// to backends of servers. Create it with New, run its loops with Run.
type Proxy struct {
	log   zerolog.Logger
	epoch time.Time
	loops []*loop
	fds   fdTable // every loop's connections by fd

	// sleep waits d or until done is closed (false); tests replace it.
	sleep func(done <-chan struct{}, d time.Duration) bool
	// afterFunc runs f in its own goroutine after d, unless stop is called
	// first (time.AfterFunc); it times drains, and tests replace it.
	afterFunc func(d time.Duration, f func()) (stop func() bool)

	active  atomic.Int64 // open connections
	slots   atomic.Int64 // active plus acceptors' reservations, for the limit
	maxConn atomic.Int64
	// pipes counts the splice pipes open, pooled ones included; maxPipes
	// bounds it (0: none).
	pipes, maxPipes atomic.Int64
	idleMin         atomic.Int64 // the shortest idle timeout of any frontend, ns; 0: none
	nextLoop        atomic.Uint32
	// slotWaiters has bit i set while loop i has a listener it stopped
	// accepting from at a connection limit; unadmit wakes it.
	slotWaiters atomic.Uint32
	admitMu     sync.Mutex
	gate        gate
	// fdShort counts the loops short of file descriptors; while any is,
	// loops do not hand new connections to each other (fdlimit.go).
	fdShort    atomic.Int32
	fdWarn     rateWarn // out of fds: clients wait
	socketWarn rateWarn // other socket() errors
	acceptWarn rateWarn // accept4 errors

	mu        sync.Mutex
	frontends []*frontend
	backends  map[string]*backend
	running   bool
	closed    bool
	// adopted holds the listeners Adopt took over until Listen uses them
	// (adopt.go).
	adopted map[adoptKey]*rawListener

	// frzMu guards frz, the handoff under way (freeze.go). Not p.mu: a
	// Listen or Update blocked on a frozen loop holds p.mu.
	frzMu sync.Mutex
	frz   *freezeState
}

// frontend is a named set of listeners. Settings the loops read are
// atomics; the rest is guarded by Proxy.mu.
type frontend struct {
	name           string
	be             atomic.Pointer[backend]
	maxConn        atomic.Int64
	connectTimeout atomic.Int64 // ns
	idle           atomic.Int64 // ns, 0 = none

	active   atomic.Int64
	slots    atomic.Int64
	total    atomic.Int64
	bytesIn  atomic.Uint64 // client to server
	bytesOut atomic.Uint64 // server to client

	binds     []netip.AddrPort
	listeners map[netip.AddrPort]*listener
	// listening is set between Listen and Unlisten of this frontend: a
	// reload then binds its new addresses at once.
	listening bool
}

type listener struct {
	ln *rawListener
}

// attach registers ln in every loop's epoll set; from then on the loops
// accept from it.
func (p *Proxy) attach(fe *frontend, ln *rawListener) {
	for _, l := range p.loops {
		l.do(func(l *loop) { l.addListener(fe, ln.fd) })
	}
}

// detach removes ln from every loop and closes it. Connections still in its
// backlog are reset by the kernel.
func (p *Proxy) detach(ln *rawListener) {
	for _, l := range p.loops {
		l.do(func(l *loop) { l.removeListener(ln.fd) })
	}
	ln.close()
}

// New validates cfg and builds a proxy. Nothing listens until Listen, and
// no connection moves until Run.
func New(cfg Config, log zerolog.Logger) (*Proxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Proxy{log: log, epoch: time.Now(), sleep: sleepDone, afterFunc: afterFunc, backends: make(map[string]*backend)}
	n := min(procsBase(), 8)
	for range n {
		l, err := newLoop(p)
		if err != nil {
			p.closeLoops()
			return nil, fmt.Errorf("proxy: event loop: %w", err)
		}
		l.index = len(p.loops)
		p.loops = append(p.loops, l)
	}
	p.mu.Lock()
	p.apply(cfg)
	p.mu.Unlock()
	return p, nil
}

func (p *Proxy) closeLoops() {
	for _, l := range p.loops {
		l.own.Lock()
		closeFd(l.epfd)
		closeFd(l.efd)
		if l.spare >= 0 {
			closeFd(l.spare)
		}
		l.epfd, l.efd, l.spare = -1, -1, -1
		l.own.Unlock()
	}
}

// Run runs the event loops until ctx is done, then closes every listener
// and connection and returns. A Proxy cannot be run twice.
func (p *Proxy) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running || p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.running = true
	p.mu.Unlock()
	defer holdProcs(len(p.loops))()
	var wg sync.WaitGroup
	for _, l := range p.loops {
		wg.Go(l.run)
	}
	<-ctx.Done()
	p.Unlisten()
	p.mu.Lock()
	p.closed = true
	p.closeAdoptedLocked()
	for _, b := range p.backends {
		for _, s := range b.servers {
			s.stopDrain()
		}
	}
	p.mu.Unlock()
	for _, l := range p.loops {
		l.async(func(l *loop) { l.stop = true })
	}
	wg.Wait()
	p.closeLoops()
	return nil
}

// selected returns the frontends named, or all of them when none is named.
// Unknown names are ignored. p.mu is held.
func (p *Proxy) selected(names []string) []*frontend {
	if len(names) == 0 {
		return p.frontends
	}
	var out []*frontend
	for _, fe := range p.frontends {
		if slices.Contains(names, fe.name) {
			out = append(out, fe)
		}
	}
	return out
}

// Listen binds the addresses of the named frontends (every frontend when
// none is named) not bound yet, with IP_FREEBIND so it works before the VIP
// is on the host. On failure it closes what this call opened and returns a
// *BindError.
func (p *Proxy) Listen(frontends ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	type opened struct {
		fe   *frontend
		addr netip.AddrPort
		ln   *rawListener
	}
	var lns []opened
	sel := p.selected(frontends)
	for _, fe := range sel {
		for _, a := range fe.binds {
			if fe.listeners[a] != nil {
				continue
			}
			ln, err := p.bind(fe, a)
			if err != nil {
				for _, o := range lns {
					if o.ln.adopted {
						p.adopted[adoptKey{o.fe.name, o.addr}] = o.ln // for the next Listen
						continue
					}
					o.ln.close()
				}
				return err
			}
			lns = append(lns, opened{fe, a, ln})
		}
	}
	for _, o := range lns {
		p.serveLocked(o.fe, o.addr, o.ln)
	}
	for _, fe := range sel {
		fe.listening = true
	}
	return nil
}

func (p *Proxy) bind(fe *frontend, a netip.AddrPort) (*rawListener, error) {
	if ln := p.takeAdopted(fe, a); ln != nil {
		return ln, nil
	}
	ln, err := listenFreebind(a)
	if err != nil {
		be := &BindError{Frontend: fe.name, Addr: a, Err: err}
		be.Wildcard = errors.Is(err, unix.EADDRINUSE) && wildcardListening(a.Port())
		return nil, be
	}
	return ln, nil
}

func (p *Proxy) serveLocked(fe *frontend, a netip.AddrPort, ln *rawListener) {
	fe.listeners[a] = &listener{ln: ln}
	p.attach(fe, ln)
	p.log.Info().Str("frontend", fe.name).Stringer("bind", a).Bool("adopted", ln.adopted).Msg("listening")
}

// Unlisten closes the listeners of the named frontends (every frontend when
// none is named) and waits for their acceptors to stop. Proxied connections
// stay up.
func (p *Proxy) Unlisten(frontends ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fe := range p.selected(frontends) {
		fe.unlisten(p, nil)
		fe.listening = false
	}
}

func (fe *frontend) unlisten(p *Proxy, keep func(netip.AddrPort) bool) {
	for a, l := range fe.listeners {
		if keep != nil && keep(a) {
			continue
		}
		p.detach(l.ln)
		delete(fe.listeners, a)
		p.log.Info().Str("frontend", fe.name).Stringer("bind", a).Msg("stopped listening")
	}
}

// CloseConns closes the proxied connections of the named frontends (every
// connection when none is named) now and returns when they are closed.
// Clients see EOF (or RST with unread data) and reconnect at once.
func (p *Proxy) CloseConns(frontends ...string) {
	var match func(*conn) bool
	if len(frontends) > 0 {
		p.mu.Lock()
		sel := p.selected(frontends)
		p.mu.Unlock()
		match = func(c *conn) bool { return slices.Contains(sel, c.fe) }
	}
	for _, l := range p.loops {
		l.do(func(l *loop) { l.closeAll(match) })
	}
}
