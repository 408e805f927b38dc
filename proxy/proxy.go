package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
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

	// sleep waits d or until done is closed (false); tests replace it.
	sleep func(done <-chan struct{}, d time.Duration) bool
	// afterFunc runs f in its own goroutine after d, unless stop is called
	// first (time.AfterFunc); it times drains, and tests replace it.
	afterFunc func(d time.Duration, f func()) (stop func() bool)

	active   atomic.Int64 // open connections
	slots    atomic.Int64 // active plus acceptors' reservations, for the limit
	maxConn  atomic.Int64
	idleMin  atomic.Int64 // the shortest idle timeout of any frontend, ns; 0: none
	nextLoop atomic.Uint32
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
	n := min(runtime.GOMAXPROCS(0), 8)
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
	var wg sync.WaitGroup
	for _, l := range p.loops {
		wg.Go(l.run)
	}
	<-ctx.Done()
	p.Unlisten()
	p.mu.Lock()
	p.closed = true
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
	p.log.Info().Str("frontend", fe.name).Stringer("bind", a).Msg("listening")
}

// Serve accepts connections for frontend on ln until ctx is done, then
// closes ln. A *net.TCPListener is taken over (its socket is accepted from
// directly; closing ln no longer stops Serve, cancelling ctx does). Connections it accepted stay up; they are tracked
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

// Listening reports whether every named frontend (every frontend when none
// is named) is listening: Listen succeeded and Unlisten has not been
// called since.
func (p *Proxy) Listening(frontends ...string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	sel := p.selected(frontends)
	for _, fe := range sel {
		if !fe.listening {
			return false
		}
	}
	return len(sel) > 0
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

// closeServer closes the connections to s on every loop, without waiting.
func (p *Proxy) closeServer(s *server) {
	for _, l := range p.loops {
		l.async(func(l *loop) { l.closeAll(func(c *conn) bool { return c.srv == s }) })
	}
}

// SetHealth records a health-check result. Unknown names are ignored.
func (p *Proxy) SetHealth(backend, server string, up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.backends[backend]
	if b == nil {
		return
	}
	s := b.server(server)
	if s == nil || s.up == up {
		return
	}
	s.up = up
	p.log.Info().Str("backend", b.name).Str("server", s.name).Bool("up", up).Stringer("state", s.state()).Msg("server health changed")
	b.rebuild(p)
	if !up && b.cfg.CloseOnDown {
		p.closeServer(s)
	}
}

// SetAdmin sets a server ready, draining or in maintenance. Drain stops new
// connections and closes those left after the backend's DrainTimeout; maint
// closes its connections now.
func (p *Proxy) SetAdmin(backend, server string, a Admin) error {
	if a > AdminMaint {
		return fmt.Errorf("proxy: invalid admin state %d", a)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.backends[backend]
	if b == nil {
		return fmt.Errorf("%w: backend %q", ErrUnknown, backend)
	}
	s := b.server(server)
	if s == nil {
		return fmt.Errorf("%w: server %q in backend %q", ErrUnknown, server, backend)
	}
	if s.admin == a {
		return nil
	}
	s.admin = a
	s.stopDrain()
	switch a {
	case AdminDrain:
		gen := s.drainGen
		s.drainStop = p.afterFunc(b.drainTimeout(), func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if s.admin == AdminDrain && s.drainGen == gen && !p.closed {
				p.log.Info().Str("backend", b.name).Str("server", s.name).Int64("conns", s.active.Load()).Msg("drain timeout: closing remaining connections")
				p.closeServer(s)
			}
		})
	case AdminMaint:
		p.closeServer(s)
	}
	p.log.Info().Str("backend", b.name).Str("server", s.name).Stringer("admin", a).Stringer("state", s.state()).Msg("server admin state changed")
	b.rebuild(p)
	return nil
}

func (s *server) stopDrain() {
	s.drainGen++
	if s.drainStop != nil {
		s.drainStop()
		s.drainStop = nil
	}
}

func afterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// Update applies a new configuration: only the differences. Established
// connections are never dropped by a reload (even to removed servers);
// listeners of unchanged binds are untouched; new binds are bound at once
// if the proxy is listening.
func (p *Proxy) Update(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.apply(cfg)
	var errs []error
	for _, fe := range p.frontends {
		if !fe.listening {
			continue
		}
		for _, a := range fe.binds {
			if fe.listeners[a] != nil {
				continue
			}
			ln, err := p.bind(fe, a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.serveLocked(fe, a, ln)
		}
	}
	return errors.Join(errs...)
}

// apply makes the proxy's frontends and backends match cfg, reusing what is
// unchanged. It does not bind new addresses. p.mu is held.
func (p *Proxy) apply(cfg Config) {
	p.maxConn.Store(int64(cfg.MaxConn))
	backends := make(map[string]*backend, len(cfg.Backends))
	for _, bc := range cfg.Backends {
		b := p.backends[bc.Name]
		if b == nil {
			b = &backend{name: bc.Name}
		}
		if b.picker == nil || b.cfg.Balance != bc.Balance {
			b.picker = newPicker(bc.Balance)
		}
		servers := make([]*server, 0, len(bc.Servers))
		for _, sc := range bc.Servers {
			s := b.server(sc.Name)
			if s == nil || s.addr != sc.Addr {
				s = newServer(sc)
			}
			servers = append(servers, s)
		}
		for _, old := range b.servers {
			if !slices.Contains(servers, old) {
				old.stopDrain() // its connections stay until they end
			}
		}
		b.cfg = bc
		b.cfg.Servers = slices.Clone(bc.Servers)
		b.servers = servers
		b.rebuild(p)
		backends[bc.Name] = b
	}
	for name, b := range p.backends {
		if backends[name] == nil {
			for _, s := range b.servers {
				s.stopDrain()
			}
		}
	}
	p.backends = backends

	var idleMin time.Duration
	frontends := make([]*frontend, 0, len(cfg.Frontends))
	for _, fc := range cfg.Frontends {
		fe := p.frontend(fc.Name)
		if fe == nil {
			fe = &frontend{name: fc.Name, listeners: make(map[netip.AddrPort]*listener)}
		}
		fe.be.Store(backends[fc.Backend])
		fe.maxConn.Store(int64(fc.MaxConn))
		ct := fc.ConnectTimeout
		if ct == 0 {
			ct = DefaultConnectTimeout
		}
		fe.connectTimeout.Store(int64(ct))
		fe.idle.Store(int64(fc.IdleTimeout))
		if fc.IdleTimeout > 0 && (idleMin == 0 || fc.IdleTimeout < idleMin) {
			idleMin = fc.IdleTimeout
		}
		fe.binds = slices.Clone(fc.Binds)
		fe.unlisten(p, func(a netip.AddrPort) bool { return slices.Contains(fe.binds, a) })
		frontends = append(frontends, fe)
	}
	for _, fe := range p.frontends {
		if !slices.Contains(frontends, fe) {
			fe.unlisten(p, nil) // its connections stay until they end
		}
	}
	p.frontends = frontends
	p.idleMin.Store(int64(idleMin))
	p.gate.signal() // limits may have been raised
}

func (p *Proxy) frontend(name string) *frontend {
	for _, fe := range p.frontends {
		if fe.name == name {
			return fe
		}
	}
	return nil
}

// Status is a point-in-time view of the proxy.
type Status struct {
	Frontends []FrontendStatus `json:"frontends"`
	Backends  []BackendStatus  `json:"backends"`
	// ActiveConns counts every open proxied connection.
	ActiveConns int64 `json:"active_conns"`
}

// FrontendStatus describes one frontend.
type FrontendStatus struct {
	Name        string           `json:"name"`
	Binds       []netip.AddrPort `json:"binds"`
	Backend     string           `json:"backend"`
	Listening   bool             `json:"listening"`
	ActiveConns int64            `json:"active_conns"`
	TotalConns  int64            `json:"total_conns"`
	BytesIn     uint64           `json:"bytes_in"`
	BytesOut    uint64           `json:"bytes_out"`
}

// BackendStatus describes one backend.
type BackendStatus struct {
	Name     string         `json:"name"`
	FailOpen bool           `json:"fail_open"`
	Servers  []ServerStatus `json:"servers"`
}

// ServerStatus describes one server.
type ServerStatus struct {
	Name        string         `json:"name"`
	Addr        netip.AddrPort `json:"addr"`
	State       State          `json:"state"`
	Healthy     bool           `json:"healthy"`
	Admin       string         `json:"admin"`
	ActiveConns int64          `json:"active_conns"`
	TotalConns  int64          `json:"total_conns"`
	FailedConns int64          `json:"failed_conns"`
}

// Status returns counters and states. Connection counts are exact: they
// move when a connection is accepted, connected and closed.
func (p *Proxy) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{ActiveConns: p.active.Load()}
	for _, fe := range p.frontends {
		fs := FrontendStatus{
			Name:        fe.name,
			Binds:       slices.Clone(fe.binds),
			Listening:   len(fe.listeners) > 0,
			ActiveConns: fe.active.Load(),
			TotalConns:  fe.total.Load(),
			BytesIn:     fe.bytesIn.Load(),
			BytesOut:    fe.bytesOut.Load(),
		}
		if b := fe.be.Load(); b != nil {
			fs.Backend = b.name
		}
		st.Frontends = append(st.Frontends, fs)
	}
	names := make([]string, 0, len(p.backends))
	for n := range p.backends {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b := p.backends[n]
		bs := BackendStatus{Name: b.name, FailOpen: b.failOpen}
		for _, s := range b.servers {
			bs.Servers = append(bs.Servers, ServerStatus{
				Name: s.name, Addr: s.addr, State: s.state(), Healthy: s.up, Admin: s.admin.String(),
				ActiveConns: s.active.Load(), TotalConns: s.total.Load(), FailedConns: s.failed.Load(),
			})
		}
		st.Backends = append(st.Backends, bs)
	}
	return st
}

// Healthy counts the UP servers (not DOWN, DRAIN or MAINT) behind a
// frontend, for the VRRP "backends" tracker. 0 for an unknown frontend.
func (p *Proxy) Healthy(frontend string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	fe := p.frontend(frontend)
	if fe == nil {
		return 0
	}
	b := fe.be.Load()
	if b == nil {
		return 0
	}
	n := 0
	for _, s := range b.servers {
		if s.state() == StateUp {
			n++
		}
	}
	return n
}
