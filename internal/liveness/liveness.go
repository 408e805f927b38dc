package liveness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Node is a vipd node: its [[node]] name and address.
type Node struct {
	Name string
	Addr netip.Addr
}

// Config configures a Liveness.
type Config struct {
	Self  Node
	Peers []Node // the other [[node]]s
	Port  uint16 // TCP for the connection, UDP for the second question
	// Sources returns this node's VRRP advert source addresses (its node
	// address, or link-local ones in IPv6 multicast mode), sent in the
	// hello so that a peer can name this node's adverts.
	Sources func() []netip.Addr
	// Gone is called once for every confirmed crash of a peer's process,
	// with the advert sources that peer sent in its hello and the reason.
	// It must not block.
	Gone func(peer Node, sources []netip.Addr, reason string)
	// Changed is called when a peer's status changed. It must not block.
	Changed func()
	// Control sets socket options on the listeners (IP_FREEBIND).
	Control func(network, address string, c syscall.RawConn) error
	Log     zerolog.Logger

	// Seams for tests; nil means the real network.
	dial  func(ctx context.Context, peer Node) (net.Conn, error)
	probe func(ctx context.Context, peer Node) Verdict
	// noListen skips the listeners (in-memory tests hand connections to
	// accepted).
	noListen bool
}

// Timing of the connection.
const (
	pingEvery    = time.Second
	helloTimeout = 2 * time.Second
	writeTimeout = time.Second
	// userTimeout ends a connection whose data goes unacknowledged this
	// long (TCP_USER_TIMEOUT): a dead host, a cut link. That end is a
	// timeout, which is never taken for a crash.
	userTimeout = 10 * time.Second
)

// Liveness keeps one connection to every peer and reports the crash of a
// peer's process. Run it; call Bye before every planned stop.
type Liveness struct {
	cfg   Config
	peers map[netip.Addr]*peer
	order []*peer

	byeOnce sync.Once
	byeCh   chan struct{} // closed by Bye

	mu      sync.Mutex // guards every peer's core and sources, and leaving
	leaving string
	off     string // why liveness is off (cannot bind), for status
}

type peer struct {
	l        *Liveness
	node     Node
	dialer   bool
	incoming chan net.Conn
	core     core         // under l.mu
	sources  []netip.Addr // from the peer's hello; under l.mu
}

// New builds a Liveness; Run starts it.
func New(cfg Config) *Liveness {
	l := &Liveness{cfg: cfg, peers: map[netip.Addr]*peer{}, byeCh: make(chan struct{})}
	for _, n := range cfg.Peers {
		if !n.Addr.IsValid() || n.Addr == cfg.Self.Addr || l.peers[n.Addr] != nil {
			continue
		}
		p := &peer{l: l, node: n, dialer: cfg.Self.Addr.Less(n.Addr), incoming: make(chan net.Conn, 1),
			core: core{peer: n.Name}}
		l.peers[n.Addr] = p
		l.order = append(l.order, p)
	}
	if l.cfg.Gone == nil {
		l.cfg.Gone = func(Node, []netip.Addr, string) {}
	}
	if l.cfg.Changed == nil {
		l.cfg.Changed = func() {}
	}
	if l.cfg.Sources == nil {
		l.cfg.Sources = func() []netip.Addr { return []netip.Addr{cfg.Self.Addr} }
	}
	if l.cfg.dial == nil {
		l.cfg.dial = l.dialTCP
	}
	if l.cfg.probe == nil {
		l.cfg.probe = func(ctx context.Context, p Node) Verdict {
			return probeUDP(ctx, cfg.Self.Addr, netip.AddrPortFrom(p.Addr, cfg.Port))
		}
	}
	return l
}

// Bye tells every peer that this node's connections will close on purpose
// (a stop, a hitless restart): their end will not be taken for a crash.
// It may be called more than once; the first reason is sent.
func (l *Liveness) Bye(reason string) {
	l.byeOnce.Do(func() {
		l.mu.Lock()
		l.leaving = reason
		l.mu.Unlock()
		close(l.byeCh)
	})
}

// Run listens on the port, keeps a connection to every peer and reports
// crashes until ctx ends; then it says goodbye and closes everything. A
// port that cannot be bound turns liveness off (logged, in status): the
// RFC timers still work.
func (l *Liveness) Run(ctx context.Context) error {
	if len(l.order) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	if !l.cfg.noListen {
		ln, pc, err := l.listen(ctx)
		if err != nil {
			l.mu.Lock()
			l.off = err.Error()
			l.mu.Unlock()
			l.cfg.Log.Warn().Err(err).Msg("liveness off: a crashed peer is detected by the RFC timers only")
			l.cfg.Changed()
			return nil
		}
		wg.Add(2)
		go func() { defer wg.Done(); l.acceptLoop(ln) }()
		go func() {
			defer wg.Done()
			serveEcho(pc, l.cfg.Self.Name, func(a netip.Addr) bool { return l.peers[a] != nil })
		}()
		defer func() {
			ln.Close()
			pc.Close()
			wg.Wait()
			// Accepted while stopping, never served: closed on purpose too.
			for _, p := range l.order {
				select {
				case c := <-p.incoming:
					c.SetWriteDeadline(time.Now().Add(writeTimeout))
					writeMsg(c, message{T: "bye", Reason: "stopping"})
					c.Close()
				default:
				}
			}
		}()
	}
	var peers sync.WaitGroup
	for _, p := range l.order {
		peers.Add(1)
		go func() { defer peers.Done(); p.run(ctx) }()
	}
	peers.Wait()
	return nil
}

func (l *Liveness) listen(ctx context.Context) (net.Listener, *net.UDPConn, error) {
	addr := netip.AddrPortFrom(l.cfg.Self.Addr, l.cfg.Port).String()
	lc := net.ListenConfig{Control: l.cfg.Control}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("liveness: listen tcp %s: %w", addr, err)
	}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("liveness: listen udp %s: %w", addr, err)
	}
	return ln, pc.(*net.UDPConn), nil
}

func (l *Liveness) acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: do not spin
			continue
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		if !l.accepted(c, ap.Addr().Unmap()) {
			c.Close()
		}
	}
}

// accepted hands a connection from addr to its peer; false for a stranger.
func (l *Liveness) accepted(c net.Conn, addr netip.Addr) bool {
	p := l.peers[addr]
	if p == nil {
		return false
	}
	setUserTimeout(c)
	select {
	case p.incoming <- c:
	default:
		// One is already waiting: the newer wins.
		select {
		case old := <-p.incoming:
			old.Close()
		default:
		}
		p.incoming <- c
	}
	return true
}

func (l *Liveness) dialTCP(ctx context.Context, p Node) (net.Conn, error) {
	d := net.Dialer{
		Timeout:   2 * time.Second,
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.cfg.Self.Addr, 0)),
	}
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(p.Addr, l.cfg.Port).String())
	if err != nil {
		return nil, err
	}
	setUserTimeout(c)
	return c, nil
}

func (l *Liveness) now() time.Time { return time.Now() }

func (p *peer) update(f func(c *core)) {
	p.l.mu.Lock()
	f(&p.core)
	p.l.mu.Unlock()
	p.l.cfg.Changed()
}

// run keeps the peer's connection until ctx ends.
func (p *peer) run(ctx context.Context) {
	for ctx.Err() == nil {
		c := p.next(ctx)
		for c != nil {
			c = p.serve(ctx, c)
		}
	}
}

// next returns the next connection: an accepted one, or (on the dialing
// side) one it dialed when the backoff allows. nil when ctx ended or a
// dial failed.
func (p *peer) next(ctx context.Context) net.Conn {
	var retry <-chan time.Time
	if p.dialer {
		p.l.mu.Lock()
		wait := p.core.retryAt.Sub(p.l.now())
		p.l.mu.Unlock()
		t := time.NewTimer(max(wait, 0))
		defer t.Stop()
		retry = t.C
	}
	select {
	case <-ctx.Done():
		return nil
	case c := <-p.incoming:
		return c
	case <-retry:
	}
	c, err := p.l.cfg.dial(ctx, p.node)
	if err == nil {
		return c
	}
	if ctx.Err() != nil {
		return nil
	}
	refused := errors.Is(err, syscall.ECONNREFUSED)
	var ask bool
	p.update(func(c *core) { ask = c.dialFailed(p.l.now(), err, refused, rand.Float64()*0.2-0.1) })
	if ask {
		v := p.l.cfg.probe(ctx, p.node)
		p.update(func(c *core) { c.refusedVerdict(v, p.l.cfg.Port) })
		if v == Alive {
			p.l.cfg.Log.Warn().Str("peer", p.node.Name).Msgf("%s refuses tcp/%d while its vipd answers on udp/%d: a firewall rejects the liveness port; a crash there is detected by the RFC timers only", p.node.Name, p.l.cfg.Port, p.l.cfg.Port)
		}
	}
	return nil
}

type readResult struct {
	msg message
	err error
}

// serve runs one connection until it ends and returns a newer connection
// from the same peer if one replaced it.
func (p *peer) serve(ctx context.Context, c net.Conn) (replacement net.Conn) {
	log := p.l.cfg.Log.With().Str("peer", p.node.Name).Logger()
	reads := make(chan readResult, 4)
	readDone, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readDone)
		r := bufio.NewReaderSize(c, maxLine)
		for {
			m, err := readMsg(r)
			select {
			case reads <- readResult{m, err}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	saidBye := false
	send := func(m message) error {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		return writeMsg(c, m)
	}
	bye := func(reason string) {
		if !saidBye {
			saidBye = true
			send(message{T: "bye", Reason: reason})
		}
	}
	// closeOnPurpose: every close this node makes is preceded by a goodbye.
	stopReading := func() {
		c.Close()
		close(quit)
		<-readDone
	}
	closeOnPurpose := func(reason string) {
		bye(reason)
		stopReading()
	}
	send(message{T: "hello", V: wireVersion, Node: p.l.cfg.Self.Name, Sources: p.l.cfg.Sources()})
	c.SetReadDeadline(time.Now().Add(helloTimeout))
	byeCh := p.l.byeCh
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	helloed := false
	for {
		select {
		case <-ctx.Done():
			p.l.mu.Lock()
			reason := p.l.leaving
			p.l.mu.Unlock()
			if reason == "" {
				reason = "stopping"
			}
			closeOnPurpose(reason)
			p.update(func(co *core) { co.ended(p.l.now(), EndLocal, nil) })
			return nil
		case <-byeCh:
			byeCh = nil
			p.l.mu.Lock()
			reason := p.l.leaving
			p.l.mu.Unlock()
			bye(reason)
		case n := <-p.incoming:
			closeOnPurpose("replaced by a newer connection")
			p.update(func(co *core) { co.ended(p.l.now(), EndLocal, nil) })
			return n
		case <-ping.C:
			send(message{T: "ping"})
		case r := <-reads:
			if r.err != nil {
				how := classify(r.err)
				if errors.Is(r.err, errProtocol) || (!helloed && how == EndOther) {
					closeOnPurpose("protocol error")
					how = EndLocal
				} else {
					stopReading()
				}
				var confirm bool
				p.update(func(co *core) { confirm = co.ended(p.l.now(), how, r.err) })
				if confirm {
					p.confirm(ctx, log)
				} else {
					log.Debug().Err(r.err).Str("end", how.String()).Msg("liveness connection ended")
				}
				return nil
			}
			switch r.msg.T {
			case "hello":
				if helloed {
					continue
				}
				if r.msg.V < 1 || (r.msg.Node != "" && r.msg.Node != p.node.Name) {
					closeOnPurpose(fmt.Sprintf("hello from %q at %s, which is %s here", r.msg.Node, p.node.Addr, p.node.Name))
					p.update(func(co *core) { co.ended(p.l.now(), EndLocal, nil) })
					return nil
				}
				helloed = true
				c.SetReadDeadline(time.Time{})
				p.l.mu.Lock()
				p.sources = append([]netip.Addr(nil), r.msg.Sources...)
				p.l.mu.Unlock()
				p.update(func(co *core) { co.up(p.l.now()) })
				log.Debug().Msg("liveness connection up")
			case "bye":
				p.update(func(co *core) { co.bye(r.msg.Reason) })
				log.Info().Str("reason", r.msg.Reason).Msg("peer says goodbye: its connection closes on purpose")
			}
		}
	}
}

// confirm asks the peer's host the second question and reports a crash.
func (p *peer) confirm(ctx context.Context, log zerolog.Logger) {
	v := p.l.cfg.probe(ctx, p.node)
	var reason string
	var sources []netip.Addr
	p.update(func(co *core) {
		co.verdict(p.l.now(), v, p.l.cfg.Port)
		reason = co.reason(p.l.cfg.Port)
		sources = append([]netip.Addr(nil), p.sources...)
	})
	switch v {
	case Gone:
		if len(sources) == 0 {
			sources = []netip.Addr{p.node.Addr}
		}
		log.Warn().Msgf("%s's vipd is gone: %s", p.node.Name, reason)
		p.l.cfg.Gone(p.node, sources, reason)
	case Alive:
		log.Warn().Msgf("the liveness connection to %s ended without a goodbye, but %s's vipd answers on udp/%d: a firewall or middlebox is cutting tcp/%d; staying on the RFC timers", p.node.Name, p.node.Name, p.l.cfg.Port, p.l.cfg.Port)
	default:
		log.Info().Msgf("the liveness connection to %s ended without a goodbye and its host did not answer on udp/%d: not confirmed, the RFC timers decide", p.node.Name, p.l.cfg.Port)
	}
}

// classify maps a read error to how the connection ended.
func classify(err error) End {
	switch {
	case errors.Is(err, io.EOF):
		return EndEOF
	case errors.Is(err, syscall.ECONNRESET):
		return EndReset
	case errors.Is(err, net.ErrClosed):
		return EndLocal
	}
	return EndOther
}

// PeerStatus is one peer's liveness, for status, the page and metrics.
type PeerStatus struct {
	Name, Addr                                         string
	State                                              string // "up", "down", "off"
	Since                                              time.Time
	Dialer                                             bool   // this node dials it
	Speaks                                             bool   // it completed a hello since this node started
	DialError                                          string // the last failed dial, while down
	LastEnd                                            string
	LastEndAt                                          time.Time
	Problem                                            string // something an operator must fix
	Ups, Goodbyes, Crashes, AliveAfterEnd, Unconfirmed uint64
}

// Status returns every peer's liveness, by name.
func (l *Liveness) Status() []PeerStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]PeerStatus, 0, len(l.order))
	for _, p := range l.order {
		c := p.core
		st := PeerStatus{
			Name: p.node.Name, Addr: p.node.Addr.String(), State: c.phase.String(), Since: c.since,
			Dialer: p.dialer, Speaks: c.speaks, LastEnd: c.lastEnd, LastEndAt: c.lastEndAt, Problem: c.problem,
			Ups: c.ups, Goodbyes: c.goodbyes, Crashes: c.crashes, AliveAfterEnd: c.aliveAfterEnd, Unconfirmed: c.unconfirmed,
		}
		if c.phase != PhaseUp {
			st.DialError = c.dialErr
		}
		if l.off != "" {
			st.State, st.Problem = "off", l.off
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
