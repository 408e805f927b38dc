//go:build linux

package proxy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

func TestDialFailureTriesNextServer(t *testing.T) {
	dead := ServerConfig{Name: "dead", Addr: deadPort(t)}
	live := newTestServer(t, "live", nil)
	p := startProxy(t, oneBackend(BalanceRoundRobin, dead, live.config()), zerolog.Nop())
	addr := serve(t, p, "fe")
	for range 4 {
		c := dial(t, addr)
		if got := c.greeting(t); got != "live" {
			t.Fatalf("greeting %q, want live", got)
		}
		c.echo(t, "ping")
	}
	if f := serverStatus(p, "be", "dead").FailedConns; f < 1 {
		t.Errorf("dead server FailedConns = %d, want >= 1", f)
	}
	if n := serverStatus(p, "be", "live").TotalConns; n != 4 {
		t.Errorf("live server TotalConns = %d, want 4", n)
	}
}

func TestNoServerClosesClient(t *testing.T) {
	p := startProxy(t, oneBackend("", ServerConfig{Name: "dead", Addr: deadPort(t)}), zerolog.Nop())
	c := dial(t, serve(t, p, "fe"))
	c.closedWithin(t, 5*time.Second)
	waitFor(t, "active 0", func() bool { return p.Status().ActiveConns == 0 })
}

func testServers(n int) []*server {
	var ss []*server
	for i := range n {
		ss = append(ss, newServer(ServerConfig{Name: fmt.Sprintf("s%d", i), Addr: netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:6443", i+1))}))
	}
	return ss
}

func TestLeastConnPicksFewestActive(t *testing.T) {
	ss := testServers(3)
	ss[0].active.Store(5)
	ss[1].active.Store(2)
	ss[2].active.Store(7)
	lc := &leastConn{}
	for range 10 {
		if got := lc.pick(netip.Addr{}, ss); got != ss[1] {
			t.Fatalf("picked %s, want s1", got.name)
		}
	}
	// Ties share the load.
	ss[0].active.Store(2)
	seen := map[string]int{}
	for range 10 {
		seen[lc.pick(netip.Addr{}, ss).name]++
	}
	if seen["s0"] == 0 || seen["s1"] == 0 || seen["s2"] != 0 {
		t.Errorf("tie picks %v, want s0 and s1 only", seen)
	}
}

func TestRoundRobinCycles(t *testing.T) {
	ss := testServers(3)
	rr := &roundRobin{}
	var got []string
	for range 6 {
		got = append(got, rr.pick(netip.Addr{}, ss).name)
	}
	if diff := cmp.Diff([]string{"s0", "s1", "s2", "s0", "s1", "s2"}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestSourceHashStableAndSpread(t *testing.T) {
	ss := testServers(3)
	var sh sourceHash
	count := map[string]int{}
	for i := range 300 {
		ip := netip.AddrFrom4([4]byte{192, 168, byte(i / 250), byte(i % 250)})
		first := sh.pick(ip, ss)
		for range 3 {
			if again := sh.pick(ip, ss); again != first {
				t.Fatalf("%v: %s then %s", ip, first.name, again.name)
			}
		}
		count[first.name]++
		// Removing another server does not move this client.
		var others []*server
		for _, s := range ss {
			if s == first || len(others) < 1 {
				others = append(others, s)
			}
		}
		if got := sh.pick(ip, others); got != first {
			t.Fatalf("%v moved from %s to %s when another server left", ip, first.name, got.name)
		}
	}
	for _, s := range ss {
		if count[s.name] < 50 {
			t.Errorf("poor spread over 300 clients: %v", count)
		}
	}
}

func TestMaxConn(t *testing.T) {
	for _, tc := range []struct {
		name         string
		global, perF int
	}{{"frontend", 0, 2}, {"global", 2, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, "a", nil)
			cfg := oneBackend("", s.config())
			cfg.MaxConn = tc.global
			cfg.Frontends[0].MaxConn = tc.perF
			p := startProxy(t, cfg, zerolog.Nop())
			addr := serve(t, p, "fe")
			c1, c2 := dial(t, addr), dial(t, addr)
			c1.greeting(t)
			c2.greeting(t)
			c3 := dial(t, addr) // completes in the kernel backlog
			c3.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c3.r.ReadString('\n'); err == nil {
				t.Fatal("third connection served over the limit")
			}
			if st := p.Status(); st.ActiveConns != 2 {
				t.Fatalf("ActiveConns %d, want 2", st.ActiveConns)
			}
			c1.Close()
			if got := c3.greeting(t); got != "a" {
				t.Fatalf("greeting %q", got)
			}
			c3.echo(t, "served once a slot freed")
			c2.echo(t, "still fine")
		})
	}
}

func twoServers(t *testing.T, be BackendConfig) (*Proxy, string, *testServer, *testServer) {
	t.Helper()
	a, b := newTestServer(t, "a", nil), newTestServer(t, "b", nil)
	be.Name = "be"
	be.Servers = []ServerConfig{a.config(), b.config()}
	cfg := Config{Frontends: []FrontendConfig{{Name: "fe", Backend: "be"}}, Backends: []BackendConfig{be}}
	p := startProxy(t, cfg, zerolog.Nop())
	return p, serve(t, p, "fe"), a, b
}

// connectTo opens a connection that lands on server name by putting the
// other in maintenance for the time of the connect.
func connectTo(t *testing.T, p *Proxy, addr, name, other string) *client {
	t.Helper()
	if err := p.SetAdmin("be", other, AdminMaint); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	if got := c.greeting(t); got != name {
		t.Fatalf("greeting %q, want %q", got, name)
	}
	if err := p.SetAdmin("be", other, AdminReady); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDrain(t *testing.T) {
	const drain = 400 * time.Millisecond
	p, addr, _, _ := twoServers(t, BackendConfig{DrainTimeout: drain})
	old := connectTo(t, p, addr, "a", "b")
	start := time.Now()
	if err := p.SetAdmin("be", "a", AdminDrain); err != nil {
		t.Fatal(err)
	}
	if st := serverStatus(p, "be", "a").State; st != StateDrain {
		t.Fatalf("state %v, want DRAIN", st)
	}
	if n := p.Healthy("fe"); n != 1 {
		t.Errorf("Healthy = %d, want 1", n)
	}
	for range 3 {
		if got := dial(t, addr).greeting(t); got != "b" {
			t.Fatalf("new connection went to %q while a drains", got)
		}
	}
	old.echo(t, "kept while draining")
	old.closedWithin(t, 5*time.Second)
	if el := time.Since(start); el < drain-50*time.Millisecond {
		t.Errorf("closed after %v, before the drain timeout %v", el, drain)
	}
	waitFor(t, "server a has no connection", func() bool { return serverStatus(p, "be", "a").ActiveConns == 0 })
}

func TestDrainReadyCancelsTimeout(t *testing.T) {
	p, addr, _, _ := twoServers(t, BackendConfig{DrainTimeout: 100 * time.Millisecond})
	old := connectTo(t, p, addr, "a", "b")
	p.SetAdmin("be", "a", AdminDrain)
	p.SetAdmin("be", "a", AdminReady)
	old.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := old.r.ReadString('\n'); !errors.Is(err, syscall.ETIMEDOUT) && !isTimeout(err) {
		t.Fatalf("connection closed after drain was cancelled: %v", err)
	}
	old.echo(t, "alive")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestMaintCloses(t *testing.T) {
	p, addr, _, _ := twoServers(t, BackendConfig{})
	c := connectTo(t, p, addr, "a", "b")
	p.SetAdmin("be", "a", AdminMaint)
	c.closedWithin(t, 2*time.Second)
	if got := dial(t, addr).greeting(t); got != "b" {
		t.Fatalf("got %q, want b", got)
	}
	if err := p.SetAdmin("be", "nope", AdminMaint); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown server: %v", err)
	}
	if err := p.SetAdmin("nope", "a", AdminMaint); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown backend: %v", err)
	}
}

func TestCloseOnDown(t *testing.T) {
	for _, closeOnDown := range []bool{false, true} {
		t.Run(fmt.Sprint(closeOnDown), func(t *testing.T) {
			p, addr, _, _ := twoServers(t, BackendConfig{CloseOnDown: closeOnDown})
			c := connectTo(t, p, addr, "a", "b")
			p.SetHealth("be", "a", false)
			if got := dial(t, addr).greeting(t); got != "b" {
				t.Fatalf("got %q, want b", got)
			}
			if closeOnDown {
				c.closedWithin(t, 2*time.Second)
			} else {
				c.echo(t, "kept")
			}
		})
	}
}

func TestFailOpen(t *testing.T) {
	var logs syncBuf
	p, addr, _, _ := twoServers(t, BackendConfig{})
	p.log = zerolog.New(&logs)
	p.SetHealth("be", "a", false)
	p.SetHealth("be", "b", false)
	p.SetHealth("be", "zz", false) // unknown: ignored
	if n := p.Healthy("fe"); n != 0 {
		t.Errorf("Healthy = %d, want 0", n)
	}
	for range 4 {
		c := dial(t, addr)
		c.greeting(t)
		c.echo(t, "served although every server is DOWN")
	}
	// Still once per episode after more state changes inside it.
	p.SetAdmin("be", "b", AdminMaint)
	if got := dial(t, addr).greeting(t); got != "a" {
		t.Fatalf("fail-open sent to %q, want a (b is MAINT)", got)
	}
	if n := strings.Count(logs.String(), `"fail_open":true`); n != 1 {
		t.Errorf("fail_open logged %d times, want 1:\n%s", n, logs.String())
	}
	if !p.Status().Backends[0].FailOpen {
		t.Error("status does not show fail open")
	}
	p.SetHealth("be", "a", true)
	if p.Status().Backends[0].FailOpen {
		t.Error("still fail open with a server UP")
	}
}

func TestUnlistenAndCloseConns(t *testing.T) {
	s := newTestServer(t, "a", nil)
	cfg := oneBackend("", s.config())
	port := freePort(t)
	cfg.Frontends[0].Binds = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	p := startProxy(t, cfg, zerolog.Nop())
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := p.Listen(); err != nil {
		t.Fatalf("second Listen: %v", err)
	}
	if !listening(p) {
		t.Fatal("not listening")
	}
	addr := cfg.Frontends[0].Binds[0].String()
	var cs []*client
	for range 3 {
		c := dial(t, addr)
		c.greeting(t)
		cs = append(cs, c)
	}
	p.Unlisten()
	if listening(p) || p.Status().Frontends[0].Listening {
		t.Fatal("still listening")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("dial succeeded after Unlisten")
	}
	for _, c := range cs {
		c.echo(t, "kept after Unlisten")
	}
	start := time.Now()
	p.CloseConns()
	for _, c := range cs {
		c.closedWithin(t, time.Second)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("clients saw the close after %v", el)
	}
	if st := p.Status(); st.ActiveConns != 0 || st.Frontends[0].ActiveConns != 0 || st.Backends[0].Servers[0].ActiveConns != 0 {
		t.Errorf("counts after CloseConns: %+v", st)
	}
	if err := p.Listen(); err != nil {
		t.Fatalf("Listen again: %v", err)
	}
	dial(t, addr).echo(t, "a")
}

func TestListenFreebind(t *testing.T) {
	// 192.0.2.1 (TEST-NET-1) is on no interface: only IP_FREEBIND lets us
	// bind it. Nothing is sent to it.
	cfg := oneBackend("", ServerConfig{Name: "a", Addr: deadPort(t)})
	cfg.Frontends[0].Binds = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:6443")}
	p := startProxy(t, cfg, zerolog.Nop())
	if err := p.Listen(); err != nil {
		t.Fatalf("Listen on an address not on the host: %v", err)
	}
	if !p.Status().Frontends[0].Listening {
		t.Fatal("not listening")
	}
}

func TestListenColocationDiagnosis(t *testing.T) {
	hold, err := net.Listen("tcp4", "0.0.0.0:0") // what kube-apiserver does with *:6443
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	port := netip.MustParseAddrPort(hold.Addr().String()).Port()
	other := freePort(t)
	cfg := oneBackend("", ServerConfig{Name: "a", Addr: deadPort(t)})
	cfg.Frontends[0].Binds = []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), other),
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
	}
	p := startProxy(t, cfg, zerolog.Nop())
	err = p.Listen()
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen: %v, want EADDRINUSE", err)
	}
	var be *BindError
	if !errors.As(err, &be) || !be.Wildcard {
		t.Fatalf("not diagnosed as a wildcard listener: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("*:%d", port), "--bind-address=<node IP>", "another port"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if listening(p) {
		t.Error("Listening after a failed Listen")
	}
	// What it opened before failing was closed.
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", other))
	if err != nil {
		t.Fatalf("port %d still held after failed Listen: %v", other, err)
	}
	ln.Close()
}

func TestWildcardIn(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   2: 00000000:0050 0100007F:1234 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0`
	for port, want := range map[uint16]bool{6443: true, 8080: false, 80: false, 50000: false} {
		if got := wildcardIn(table, port); got != want {
			t.Errorf("port %d: %v, want %v", port, got, want)
		}
	}
	v6 := "header\n   0: 00000000000000000000000000000000:C350 00000000000000000000000000000000:0000 0A 0\n"
	if !wildcardIn(v6, 50000) {
		t.Error("[::]:50000 not found")
	}
}

func TestProxyHeaderV2Golden(t *testing.T) {
	for _, tc := range []struct {
		src, dst string
		want     string
	}{
		{"192.168.30.5:51000", "192.168.30.30:6443",
			"0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "c0a81e05" + "c0a81e1e" + "c738" + "192b"},
		{"[2001:db8::1]:51000", "[2001:db8::30]:6443",
			"0d0a0d0a000d0a515549540a" + "21" + "21" + "0024" +
				"20010db8000000000000000000000001" + "20010db8000000000000000000000030" + "c738" + "192b"},
		{"[::ffff:10.0.0.1]:1", "10.0.0.2:2",
			"0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "0a000001" + "0a000002" + "0001" + "0002"},
	} {
		got := appendProxyHeaderV2(nil, netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst))
		if h := hex.EncodeToString(got); h != tc.want {
			t.Errorf("%s -> %s:\n got %s\nwant %s", tc.src, tc.dst, h, tc.want)
		}
	}
}

func TestProxyProtocolEndToEnd(t *testing.T) {
	hdr := make(chan []byte, 1)
	s := newTestServer(t, "a", func(c net.Conn) {
		b := make([]byte, 28)
		io.ReadFull(c, b)
		hdr <- b
		io.Copy(c, c)
	})
	cfg := oneBackend("", s.config())
	cfg.Backends[0].ProxyProtocol = true
	p := startProxy(t, cfg, zerolog.Nop())
	addr := serve(t, p, "fe")
	c := dial(t, addr)
	c.echo(t, "after the header")
	b := <-hdr
	want := appendProxyHeaderV2(nil, netip.MustParseAddrPort(c.LocalAddr().String()), netip.MustParseAddrPort(addr))
	if !bytes.Equal(b, want) {
		t.Errorf("header\n got %x\nwant %x", b, want)
	}
}

func TestUpdateKeepsConnections(t *testing.T) {
	a, b := newTestServer(t, "a", nil), newTestServer(t, "b", nil)
	bind1 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))
	bind2 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))
	base := Config{
		Frontends: []FrontendConfig{{Name: "f1", Binds: []netip.AddrPort{bind1}, Backend: "b1"}},
		Backends:  []BackendConfig{{Name: "b1", Servers: []ServerConfig{a.config()}}},
	}
	p := startProxy(t, base, zerolog.Nop())
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	l1 := p.frontend("f1").listeners[bind1]
	c1 := dial(t, bind1.String())
	c1.greeting(t)

	more := base
	more.Frontends = append(more.Frontends[:1:1], FrontendConfig{Name: "f2", Binds: []netip.AddrPort{bind2}, Backend: "b2"})
	more.Backends = append(more.Backends[:1:1], BackendConfig{Name: "b2", Servers: []ServerConfig{b.config()}})
	if err := p.Update(more); err != nil {
		t.Fatal(err)
	}
	if listening(p, "f2") {
		t.Error("an added frontend listens before Listen names it")
	}
	if err := p.Listen("f2"); err != nil {
		t.Fatal(err)
	}
	if p.frontend("f1").listeners[bind1] != l1 {
		t.Error("unchanged frontend's listener was replaced")
	}
	c1.echo(t, "kept across an added frontend")
	c2 := dial(t, bind2.String())
	if got := c2.greeting(t); got != "b" {
		t.Fatalf("new frontend greeting %q", got)
	}

	// Remove f2/b2 and change b1's balance: both established connections stay.
	less := base
	less.Backends = []BackendConfig{{Name: "b1", Servers: []ServerConfig{a.config()}, Balance: BalanceRoundRobin}}
	if err := p.Update(less); err != nil {
		t.Fatal(err)
	}
	c1.echo(t, "kept across a removed frontend")
	c2.echo(t, "kept although its frontend and backend were removed")
	if c, err := net.DialTimeout("tcp", bind2.String(), time.Second); err == nil {
		c.Close()
		t.Error("removed frontend still listening")
	}
	if err := p.Update(Config{Frontends: []FrontendConfig{{Name: "x", Backend: "nope"}}}); err == nil {
		t.Error("invalid config accepted")
	}
	c1.echo(t, "kept across a rejected update")
}

// emfileListener fails its first n accepts with EMFILE.
type emfileListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	fail := l.n > 0
	l.n--
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

func TestAcceptBackoff(t *testing.T) {
	var b backoff
	var got []time.Duration
	for range 10 {
		got = append(got, b.next())
	}
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	b.reset()
	if d := b.next(); d != 5*ms {
		t.Errorf("after reset %v", d)
	}

	// Through Serve: EMFILE is backed off, not fatal, and serving resumes.
	s := newTestServer(t, "a", nil)
	p := startProxy(t, oneBackend("", s.config()), zerolog.Nop())
	var mu sync.Mutex
	var slept []time.Duration
	p.sleep = func(_ <-chan struct{}, d time.Duration) bool { // fake clock: no real wait
		mu.Lock()
		slept = append(slept, d)
		mu.Unlock()
		return true
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serve0(t, p, &emfileListener{Listener: inner, n: 10})
	c := dial(t, addr)
	c.greeting(t)
	c.echo(t, "served after 10 EMFILE")
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, slept); diff != "" {
		t.Errorf("backoff delays (-want +got)\n%s", diff)
	}
}

func serve0(t *testing.T, p *Proxy, ln net.Listener) string {
	t.Helper()
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { p.Serve(ctx, "fe", ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}
