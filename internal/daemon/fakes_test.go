package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/bgp"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/liveness"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/proxy"
	"github.com/vipd/vipd/vrrp"
)

// The daemon's unit tests run whole daemons in one process inside a
// testing/synctest bubble: VRRP goes over an in-memory bus, netlink, ARP,
// the proxy and the control socket are fakes that block only on channels,
// so fake time advances exactly as the timers say and nothing sleeps. The
// real parts are tested in the integration suite.

// bus is an in-memory L2 segment for VRRP: every datagram written by one
// conn reaches every other conn (multicast) or the one addressed.
type bus struct {
	mu    sync.Mutex
	conns []*busConn // several per address: one per instance, as raw sockets
	// cut drops every datagram to or from these addresses.
	cut   map[netip.Addr]bool
	nodes []*testNode
}

func newBus() *bus { return &bus{cut: map[netip.Addr]bool{}} }

// probe is a client connecting to target: it succeeds when a node holds
// the address and listens on a frontend bound to it.
func (b *bus) probe(_ context.Context, target netip.AddrPort) error {
	b.mu.Lock()
	nodes := slices.Clone(b.nodes)
	b.mu.Unlock()
	for _, n := range nodes {
		n.addrs.mu.Lock()
		held := false
		for p := range n.addrs.have {
			held = held || p.Addr() == target.Addr()
		}
		n.addrs.mu.Unlock()
		if !held {
			continue
		}
		n.px.mu.Lock()
		for _, f := range n.px.cfg.Frontends {
			if n.px.listening[f.Name] && slices.Contains(f.Binds, target) {
				n.px.mu.Unlock()
				return nil
			}
		}
		n.px.mu.Unlock()
	}
	return errors.New("connection refused")
}

// neighMAC is a neighbour table shared by the segment: a node's address,
// or a VIP, maps to that node's "MAC" ("mac-lb2").
func (b *bus) neighMAC(_ string, addr netip.Addr) string {
	b.mu.Lock()
	nodes := slices.Clone(b.nodes)
	b.mu.Unlock()
	for _, n := range nodes {
		if n.addr == addr {
			return "mac-" + n.name
		}
		if n.addrs.has(netip.PrefixFrom(addr, addr.BitLen()).String()) {
			return "mac-" + n.name
		}
	}
	return ""
}

type datagram struct {
	b        []byte
	src, dst netip.Addr
}

type busConn struct {
	bus   *bus
	addr  netip.Addr
	in    chan datagram
	once  sync.Once
	close chan struct{}
	// kick is closed by a read deadline in the past (a restart's freeze).
	mu   sync.Mutex
	kick chan struct{}
}

func (b *bus) listen(addr netip.Addr) *busConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &busConn{bus: b, addr: addr, in: make(chan datagram, 64), close: make(chan struct{}), kick: make(chan struct{})}
	b.conns = append(b.conns, c)
	return c
}

func (b *bus) setCut(a netip.Addr, cut bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut[a] = cut
}

func (c *busConn) ReadFrom(p []byte) (int, netip.Addr, netip.Addr, int, error) {
	c.mu.Lock()
	kick := c.kick
	c.mu.Unlock()
	select {
	case <-kick:
		return 0, netip.Addr{}, netip.Addr{}, 0, os.ErrDeadlineExceeded
	case d := <-c.in:
		return copy(p, d.b), d.src, d.dst, 255, nil
	case <-c.close:
		return 0, netip.Addr{}, netip.Addr{}, 0, net.ErrClosed
	}
}

func (c *busConn) WriteTo(p []byte, dst netip.Addr) error {
	c.bus.mu.Lock()
	defer c.bus.mu.Unlock()
	if c.bus.cut[c.addr] {
		return nil
	}
	for _, o := range c.bus.conns {
		a := o.addr
		if a == c.addr || c.bus.cut[a] || (dst != vrrp.IPv4Group && dst != a) {
			continue
		}
		select {
		case o.in <- datagram{b: append([]byte(nil), p...), src: c.addr, dst: dst}:
		default:
		}
	}
	return nil
}

func (c *busConn) Close() error {
	c.once.Do(func() {
		close(c.close)
		c.bus.mu.Lock()
		c.bus.conns = slices.DeleteFunc(c.bus.conns, func(o *busConn) bool { return o == c })
		c.bus.mu.Unlock()
	})
	return nil
}

// fakeAddrs is the interface's addresses.
type fakeAddrs struct {
	mu      sync.Mutex
	have    map[netip.Prefix]bool
	removed []netip.Prefix // every removal, in order
}

func newFakeAddrs(have ...netip.Prefix) *fakeAddrs {
	f := &fakeAddrs{have: map[netip.Prefix]bool{}}
	for _, p := range have {
		f.have[p] = true
	}
	return f
}

func (f *fakeAddrs) AddVIP(_ string, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.have[p] = true
	return nil
}
func (f *fakeAddrs) RemoveVIP(_ string, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.have[p] {
		f.removed = append(f.removed, p)
	}
	delete(f.have, p)
	return nil
}
func (f *fakeAddrs) HasVIP(_ string, p netip.Prefix) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.have[p], nil
}
func (f *fakeAddrs) Close() error { return nil }
func (f *fakeAddrs) has(p string) bool {
	ok, _ := f.HasVIP("", netip.MustParsePrefix(p))
	return ok
}

// drop removes an address behind the daemon's back (an operator, networkd).
func (f *fakeAddrs) drop(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.have, netip.MustParsePrefix(p))
}

type fakeAnnouncer struct {
	mu sync.Mutex
	n  int
}

func (a *fakeAnnouncer) Announce(netip.Addr) error { a.mu.Lock(); a.n++; a.mu.Unlock(); return nil }
func (a *fakeAnnouncer) Close() error              { return nil }
func (a *fakeAnnouncer) count() int                { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

// fakeProxy records which frontends listen; Listen fails while failListen
// is set.
type fakeProxy struct {
	mu         sync.Mutex
	cfg        proxy.Config
	listening  map[string]bool
	closes     int
	failListen error
	// healthy is the healthy-server count per frontend; 1 when not set.
	healthy map[string]int
	// A restart's calls; thawed is open while frozen, and onFreeze runs
	// in Freeze.
	frozen, resumed, abandoned, adopted, closeAdopted int
	thawed                                            chan struct{}
	onFreeze                                          func()
	// admin records SetAdmin and SetDrainLeft calls, one line each.
	admin []string
}

func (p *fakeProxy) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (p *fakeProxy) names(fes []string) []string {
	if len(fes) > 0 {
		return fes
	}
	var out []string
	for _, f := range p.cfg.Frontends {
		out = append(out, f.Name)
	}
	return out
}
func (p *fakeProxy) Listen(fes ...string) error {
	p.mu.Lock()
	for p.thawed != nil {
		// Frozen for a restart: Listen waits for Resume or Abandon, as
		// the real proxy's does.
		ch := p.thawed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	if p.failListen != nil {
		return p.failListen
	}
	for _, f := range p.names(fes) {
		p.listening[f] = true
	}
	return nil
}
func (p *fakeProxy) Unlisten(fes ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.names(fes) {
		delete(p.listening, f)
	}
}
func (p *fakeProxy) CloseConns(...string) { p.mu.Lock(); p.closes++; p.mu.Unlock() }
func (p *fakeProxy) CheckBinds() error    { return nil }
func (p *fakeProxy) Update(cfg proxy.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg = cfg
	return nil
}
func (p *fakeProxy) Freeze(context.Context) (*proxy.Handoff, []*os.File, error) {
	p.mu.Lock()
	p.frozen++
	p.thawed = make(chan struct{})
	f := p.onFreeze
	p.mu.Unlock()
	if f != nil {
		f()
	}
	return &proxy.Handoff{}, nil, nil
}
func (p *fakeProxy) thaw() {
	if p.thawed != nil {
		close(p.thawed)
		p.thawed = nil
	}
}
func (p *fakeProxy) Resume() error { p.mu.Lock(); p.resumed++; p.thaw(); p.mu.Unlock(); return nil }
func (p *fakeProxy) Abandon()      { p.mu.Lock(); p.abandoned++; p.thaw(); p.mu.Unlock() }
func (p *fakeProxy) Adopt(*proxy.Handoff, []*os.File) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adopted++
	return nil
}
func (p *fakeProxy) CloseAdopted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeAdopted++
	return 0
}
func (p *fakeProxy) SetHealth(string, string, bool) {}
func (p *fakeProxy) SetAdmin(be, srv string, a proxy.Admin) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.admin = append(p.admin, fmt.Sprintf("%s/%s %v", be, srv, a))
	return nil
}
func (p *fakeProxy) SetDrainLeft(be, srv string, left time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.admin = append(p.admin, fmt.Sprintf("%s/%s DRAIN %v left", be, srv, left))
	return nil
}
func (p *fakeProxy) Healthy(f string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.healthy[f]; ok {
		return n
	}
	return 1
}
func (p *fakeProxy) setHealthy(f string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healthy == nil {
		p.healthy = map[string]int{}
	}
	p.healthy[f] = n
}
func (p *fakeProxy) isListening(f string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listening[f]
}
func (p *fakeProxy) setFailListen(err error) { p.mu.Lock(); p.failListen = err; p.mu.Unlock() }
func (p *fakeProxy) Status() proxy.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st proxy.Status
	for _, f := range p.cfg.Frontends {
		st.Frontends = append(st.Frontends, proxy.FrontendStatus{Name: f.Name, Binds: f.Binds, Listening: p.listening[f.Name], Backend: f.Backend})
	}
	return st
}

// fakeListener is a control socket nobody connects to.
type fakeListener struct {
	once   sync.Once
	closed chan struct{}
}

func (l *fakeListener) Accept() (net.Conn, error) { <-l.closed; return nil, net.ErrClosed }
func (l *fakeListener) Close() error              { l.once.Do(func() { close(l.closed) }); return nil }
func (l *fakeListener) Addr() net.Addr            { return &net.UnixAddr{Name: "fake", Net: "unix"} }

// testNode is one in-process daemon on the bus.
type testNode struct {
	t     *testing.T
	name  string
	path  string
	d     *Daemon
	addrs *fakeAddrs
	ann   *fakeAnnouncer
	px    *fakeProxy
	addr  netip.Addr
	live  *fakeLiveness
	// link feeds interface trackers (any interface but eth0); own feeds
	// the VRRP interface's own link; vipGone tells the VIP watcher.
	link, own chan bool
	vipGone   chan netip.Prefix
	done      chan error
	cancel    context.CancelFunc
	// sysctls are what the live checks read (doctorEnv); unset ones are 0.
	sysctls sync.Map
	// sp is the node's BGP speaker, once the daemon built one.
	sp *fakeSpeaker
}

const vip = "192.0.2.10/32"

// baseConfig is two nodes, one instance, a frontend; extra is appended.
func baseConfig(extra string) string {
	return fmt.Sprintf(`
[vrrp]
vrid = 51
interface = "eth0"
vips = [%q]
advert_interval = "100ms"
status_port = 0
startup_interval = "0s"

[[node]]
name = "lb1"
address = "10.99.0.11"
priority = 150

[[node]]
name = "lb2"
address = "10.99.0.12"
priority = 100

[[frontend]]
name = "kubernetes"
port = 6443
backend = "kube-apiserver"

[[backend]]
name = "kube-apiserver"
servers = ["192.0.2.31:6443"]
check = { type = "none" }
%s`, vip, extra)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vipd.toml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newNode builds (does not start) a daemon for node name on b with the
// given config text; have are addresses already on its interface.
func newNode(t *testing.T, b *bus, name, cfgText string, have ...netip.Prefix) *testNode {
	t.Helper()
	n := blankNode(t, name, writeFile(t, cfgText), newFakeAddrs(have...))
	n.build(b, nil)
	return n
}

// blankNode is a testNode before its daemon is built.
func blankNode(t *testing.T, name, path string, addrs *fakeAddrs) *testNode {
	return &testNode{
		t: t, name: name, path: path, addrs: addrs, ann: &fakeAnnouncer{},
		px: &fakeProxy{listening: map[string]bool{}}, link: make(chan bool, 16), own: make(chan bool, 16),
		vipGone: make(chan netip.Prefix, 16), done: make(chan error, 1),
	}
}

// build builds n's daemon on b; opts, when set, adjusts its Options.
func (n *testNode) build(b *bus, opts func(*Options)) {
	t := n.t
	t.Helper()
	name := n.name
	osSeam := OS{
		Addrs:        n.addrs,
		NewAnnouncer: func(string) (netcfg.Announcer, error) { return n.ann, nil },
		ListenVRRP: func(cfg netcfg.VRRPConfig) (vrrp.Conn, error) {
			n.addr = cfg.Source
			return b.listen(cfg.Source), nil
		},
		WatchVIPs: func(ctx context.Context, _ string, _ []netip.Prefix, removed func(netip.Prefix)) error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case p := <-n.vipGone:
					removed(p)
				}
			}
		},
		WatchLink: func(ctx context.Context, ifname string, changed func(bool)) error {
			ch := n.link
			if ifname == "eth0" {
				ch = n.own
			}
			for {
				select {
				case <-ctx.Done():
					return nil
				case up := <-ch:
					changed(up)
				}
			}
		},
		LocalAddrs: func() ([]netip.Addr, error) { return nil, nil },
		LinkLocal:  func(string) (netip.Addr, error) { return netip.Addr{}, errors.New("no IPv6 here") },
		Burst: func(ctx context.Context, a netcfg.Announcer, vips []netip.Addr, count int, gap time.Duration) error {
			for _, v := range vips {
				a.Announce(v)
			}
			return nil
		},
		SetSysctl: func(name, value string) error {
			n.sysctls.Store(name, value)
			return nil
		},
		NewProxy: func(cfg proxy.Config, _ zerolog.Logger) (Proxy, error) {
			n.px.cfg = cfg
			return n.px, nil
		},
		ListenControl: func(control.SocketOptions) (net.Listener, error) {
			return &fakeListener{closed: make(chan struct{})}, nil
		},
		Probe:    b.probe,
		NeighMAC: b.neighMAC,
		NewLiveness: func(cfg liveness.Config) Liveness {
			n.live = &fakeLiveness{cfg: cfg}
			return n.live
		},
		Doctor: n.doctorEnv(),
		NewSpeaker: func(cfg bgp.Config, _ zerolog.Logger) (Speaker, error) {
			n.sp = newFakeSpeaker(cfg, n)
			return n.sp, nil
		},
	}
	b.mu.Lock()
	b.nodes = append(b.nodes, n)
	b.mu.Unlock()
	o := Options{ConfigPath: n.path, NodeName: name, Log: zerolog.New(zerolog.NewTestWriter(t)).With().Str("node", name).Logger(), OS: osSeam}
	if opts != nil {
		opts(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	n.d = d
}

// start runs the daemon; the bubble's end stops it.
func (n *testNode) start() *testNode {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.d.Run(ctx) }()
	n.t.Cleanup(func() {
		cancel()
		<-n.done
	})
	synctest.Wait()
	return n
}

func startNode(t *testing.T, b *bus, name, cfgText string) *testNode {
	return newNode(t, b, name, cfgText).start()
}

func (n *testNode) state() string {
	st := n.d.Status()
	if len(st.Instances) == 0 {
		return ""
	}
	return st.Instances[0].State
}

func (n *testNode) mustState(want string) {
	n.t.Helper()
	synctest.Wait()
	if got := n.state(); got != want {
		n.t.Fatalf("%s is %s, want %s", n.name, got, want)
	}
}

// settle lets fake time pass (every timer that falls due fires) and waits
// for the bubble to be idle.
func settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// stopped reports whether Run has returned, and with what.
func (n *testNode) stopped() (bool, error) {
	synctest.Wait()
	select {
	case err := <-n.done:
		n.done <- err
		return true, err
	default:
		return false, nil
	}
}

func (n *testNode) reload(t *testing.T, cfgText string) (control.ReloadResult, error) {
	t.Helper()
	if err := os.WriteFile(n.path, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := n.d.Reload(context.Background())
	synctest.Wait()
	return res, err
}

func (n *testNode) transitions() int {
	st := n.d.Status()
	if len(st.Instances) == 0 {
		return 0
	}
	return st.Instances[0].Transitions
}

// fakeLiveness records what the daemon asked of its liveness connections;
// tests call its config's Gone as a confirmed crash would.
type fakeLiveness struct {
	cfg     liveness.Config
	mu      sync.Mutex
	byes    []string
	problem string // every peer's, in Status
}

func (f *fakeLiveness) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *fakeLiveness) Bye(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byes = append(f.byes, reason)
}
func (f *fakeLiveness) said() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.byes...)
}
func (f *fakeLiveness) Status() []liveness.PeerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []liveness.PeerStatus
	for _, p := range f.cfg.Peers {
		out = append(out, liveness.PeerStatus{Name: p.Name, Addr: p.Addr.String(), State: "up", Speaks: true, Problem: f.problem})
	}
	return out
}

func zerologNop() zerolog.Logger { return zerolog.Nop() }

func itoa(n int) string { return fmt.Sprint(n) }
