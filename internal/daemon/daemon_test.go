package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// bus is an in-memory L2 segment for VRRP: every datagram written by one
// conn reaches every other conn (multicast) or the one addressed.
type bus struct {
	mu    sync.Mutex
	conns map[netip.Addr]*busConn
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
}

func (b *bus) listen(addr netip.Addr) *busConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &busConn{bus: b, addr: addr, in: make(chan datagram, 64), close: make(chan struct{})}
	b.conns[addr] = c
	return c
}

func (c *busConn) ReadFrom(p []byte) (int, netip.Addr, netip.Addr, int, error) {
	select {
	case d := <-c.in:
		return copy(p, d.b), d.src, d.dst, 255, nil
	case <-c.close:
		return 0, netip.Addr{}, netip.Addr{}, 0, net.ErrClosed
	}
}

func (c *busConn) WriteTo(p []byte, dst netip.Addr) error {
	c.bus.mu.Lock()
	defer c.bus.mu.Unlock()
	for a, o := range c.bus.conns {
		if a == c.addr || (dst != vrrp.IPv4Group && dst != a) {
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
		delete(c.bus.conns, c.addr)
		c.bus.mu.Unlock()
	})
	return nil
}

// fakeAddrs records the VIPs a node holds.
type fakeAddrs struct {
	mu   sync.Mutex
	have map[netip.Prefix]bool
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
	delete(f.have, p)
	return nil
}
func (f *fakeAddrs) HasVIP(_ string, p netip.Prefix) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.have[p], nil
}
func (f *fakeAddrs) Close() error { return nil }

type fakeAnnouncer struct {
	mu sync.Mutex
	n  int
}

func (a *fakeAnnouncer) Announce(netip.Addr) error { a.mu.Lock(); a.n++; a.mu.Unlock(); return nil }
func (a *fakeAnnouncer) Close() error              { return nil }
func (a *fakeAnnouncer) count() int                { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

// testNode is one in-process daemon on the bus.
type testNode struct {
	d     *Daemon
	addrs *fakeAddrs
	ann   *fakeAnnouncer
	link  chan bool // interface tracker input
	done  chan error
	stop  context.CancelFunc
}

// vip is a TEST-NET-1 address: the proxy only binds it (IP_FREEBIND); no
// test sends traffic to it.
const vip = "192.0.2.10/32"

func writeConfig(t *testing.T, dir, extra string, port int) string {
	t.Helper()
	cfg := fmt.Sprintf(`
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

%s%s`, vip, frontend(port), extra)
	path := filepath.Join(dir, "vipd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// frontend returns a frontend/backend pair on port, or nothing for 0.
func frontend(port int) string {
	if port == 0 {
		return ""
	}
	return fmt.Sprintf(`
[[frontend]]
name = "kubernetes"
port = %d
backend = "kube"

[[backend]]
name = "kube"
servers = ["127.0.0.1:1"]
check = { type = "none" }
`, port)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startNode(t *testing.T, b *bus, name, addr, extra string, port int) *testNode {
	t.Helper()
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, extra+fmt.Sprintf("\n[control]\nsocket = %q\n", filepath.Join(dir, "s.sock")), port)
	n := &testNode{addrs: &fakeAddrs{have: map[netip.Prefix]bool{}}, ann: &fakeAnnouncer{}, link: make(chan bool, 4), done: make(chan error, 1)}
	os := OS{
		Addrs:        n.addrs,
		NewAnnouncer: func(string) (netcfg.Announcer, error) { return n.ann, nil },
		ListenVRRP:   func(netcfg.VRRPConfig) (vrrp.Conn, error) { return b.listen(netip.MustParseAddr(addr)), nil },
		WatchVIPs: func(ctx context.Context, _ string, _ []netip.Prefix, _ func(netip.Prefix)) error {
			<-ctx.Done()
			return nil
		},
		WatchLink: func(ctx context.Context, ifname string, changed func(bool)) error {
			if ifname != "eth1" { // only the tracked uplink is driven by the test
				<-ctx.Done()
				return nil
			}
			for {
				select {
				case <-ctx.Done():
					return nil
				case up := <-n.link:
					changed(up)
				}
			}
		},
		LocalAddrs: func() ([]netip.Addr, error) { return nil, nil },
		Burst: func(ctx context.Context, a netcfg.Announcer, vips []netip.Addr, count int, gap time.Duration) error {
			for _, v := range vips {
				a.Announce(v)
			}
			return nil
		},
	}
	d, err := New(Options{ConfigPath: cfgPath, NodeName: name, Log: zerolog.New(zerolog.NewTestWriter(t)).With().Str("node", name).Logger(), OS: os})
	if err != nil {
		t.Fatal(err)
	}
	n.d = d
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() { n.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	})
	return n
}

func (n *testNode) state() string {
	st := n.d.Status()
	if len(st.Instances) == 0 {
		return ""
	}
	return st.Instances[0].State
}

func waitState(t *testing.T, n *testNode, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.state() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want %s", n.d.node.Name, n.state(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *testNode) hasVIP() bool {
	ok, _ := n.addrs.HasVIP("", netip.MustParsePrefix(vip))
	return ok
}

func (n *testNode) listening() bool {
	if len(n.d.Status().Frontends) == 0 {
		return n.state() == "MASTER"
	}
	for _, f := range n.d.Status().Frontends {
		if f.Listening {
			return true
		}
	}
	return false
}

// TestDaemonElectionAndHandover wires two daemons with fake netlink and
// ARP on an in-memory bus: the master holds the VIP, listens and
// announced; Shutdown hands over with priority 0 and the old master drops
// everything and stops.
func TestDaemonElectionAndHandover(t *testing.T) {
	b := &bus{conns: map[netip.Addr]*busConn{}}
	port := freePort(t)
	n1 := startNode(t, b, "lb1", "10.99.0.11", "", port)
	waitState(t, n1, "MASTER")
	// Both daemons share this process's network namespace: each binds
	// its own port (the frontends are not what this test is about).
	n2 := startNode(t, b, "lb2", "10.99.0.12", "", freePort(t))
	waitState(t, n2, "BACKUP")
	if !n1.hasVIP() || n2.hasVIP() {
		t.Fatalf("VIP: lb1 %v lb2 %v, want only lb1", n1.hasVIP(), n2.hasVIP())
	}
	if !n1.listening() || n2.listening() {
		t.Fatalf("listening: lb1 %v lb2 %v, want only lb1", n1.listening(), n2.listening())
	}
	if n1.ann.count() == 0 {
		t.Error("the master sent no gratuitous ARP")
	}
	deadline := time.Now().Add(3 * time.Second)
	st := n2.d.Status()
	for st.Instances[0].MasterAddr != "10.99.0.11" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		st = n2.d.Status()
	}
	if st.Instances[0].MasterAddr != "10.99.0.11" || len(st.Instances[0].Senders) != 1 || st.Instances[0].Senders[0].Checksum != "pseudo-header" {
		t.Errorf("backup status %+v", st.Instances[0])
	}

	n1.d.Shutdown()
	select {
	case err := <-n1.done:
		if err != nil {
			t.Errorf("Run after Shutdown: %v", err)
		}
		n1.done <- nil
	case <-time.After(3 * time.Second):
		t.Fatal("lb1 did not stop after Shutdown")
	}
	waitState(t, n2, "MASTER")
	if n1.hasVIP() || !n2.hasVIP() {
		t.Errorf("after handover VIP: lb1 %v lb2 %v", n1.hasVIP(), n2.hasVIP())
	}
	st = n2.d.Status()
	if r := st.Instances[0].Recent[0].Reason; r == "" {
		t.Error("transition without a reason")
	}
}

// TestDaemonInterfaceTrackerMovesVIP: an interface tracker with weight
// -60 drops lb1 (150) below lb2 (100); the VIP moves; link up moves it back.
func TestDaemonInterfaceTrackerMovesVIP(t *testing.T) {
	b := &bus{conns: map[netip.Addr]*busConn{}}
	port := freePort(t)
	tr := "\n[[track]]\nname = \"uplink\"\ntype = \"interface\"\ninterface = \"eth1\"\nweight = -60\n"
	n1 := startNode(t, b, "lb1", "10.99.0.11", tr, port)
	n1.link <- true
	waitState(t, n1, "MASTER")
	n2 := startNode(t, b, "lb2", "10.99.0.12", tr, freePort(t))
	n2.link <- true
	waitState(t, n2, "BACKUP")
	n1.link <- false
	waitState(t, n2, "MASTER")
	waitState(t, n1, "BACKUP")
	if got := n1.d.Status().Instances[0].EffectivePriority; got != 90 {
		t.Errorf("lb1 effective priority %d, want 90", got)
	}
	if n1.hasVIP() || !n2.hasVIP() {
		t.Errorf("VIP: lb1 %v lb2 %v, want lb2", n1.hasVIP(), n2.hasVIP())
	}
	n1.link <- true
	waitState(t, n1, "MASTER")
	waitState(t, n2, "BACKUP")
}

// TestDaemonDrillRefusals: a drill on the backup, and a drill without a
// known healthy backup, are refused and change nothing.
func TestDaemonDrillRefusals(t *testing.T) {
	b := &bus{conns: map[netip.Addr]*busConn{}}
	port := 0 // no frontend: the drill must not probe a TEST-NET address
	n1 := startNode(t, b, "lb1", "10.99.0.11", "", port)
	waitState(t, n1, "MASTER")
	// Both daemons share this process's network namespace: each binds
	// its own port (the frontends are not what this test is about).
	n2 := startNode(t, b, "lb2", "10.99.0.12", "", freePort(t))
	waitState(t, n2, "BACKUP")
	ctx := context.Background()
	if _, err := n2.d.Drill(ctx, control.DrillRequest{}); !errors.Is(err, control.ErrRefused) {
		t.Errorf("drill on backup: %v, want ErrRefused", err)
	}
	// status_port = 0: no beacons, so no backup is known.
	if _, err := n1.d.Drill(ctx, control.DrillRequest{}); !errors.Is(err, control.ErrRefused) {
		t.Errorf("drill without a known backup: %v, want ErrRefused", err)
	}
	if n1.state() != "MASTER" || n2.state() != "BACKUP" {
		t.Errorf("refused drills changed state: %s %s", n1.state(), n2.state())
	}
	// --force skips the check: the VIP moves.
	res, err := n1.d.Drill(ctx, control.DrillRequest{Force: true, Hold: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.To == "nobody" {
		t.Errorf("forced drill: nobody took over: %+v", res)
	}
	waitState(t, n2, "MASTER")
}
