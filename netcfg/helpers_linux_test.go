//go:build linux

package netcfg

// The TestHelper* functions run inside a namespace, in a child process
// started by startHelper; in a normal test run they skip.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func env(t *testing.T, key string) string {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		t.Fatalf("helper: %s not set", key)
	}
	return v
}

func envAddr(t *testing.T, key string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(env(t, key))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// labAddr returns 10.213.N.host for the helper's lab.
func labAddr(t *testing.T, host byte) netip.Addr {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(env(t, "NC_N"), &n); err != nil {
		t.Fatal(err)
	}
	return netip.AddrFrom4([4]byte{10, 213, byte(n), host})
}

// await receives from ch within d.
func await[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
		panic("unreachable")
	}
}

// poll calls cond every 20ms until it returns true, failing after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, d)
		}
		<-tick.C
	}
}

func nlAddrs(t *testing.T, ifname string) []netlink.Addr {
	t.Helper()
	lk, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(lk, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

func findAddr(addrs []netlink.Addr, p netip.Prefix) *netlink.Addr {
	for i := range addrs {
		if got, ok := ipNetPrefix(addrs[i].IPNet); ok && got == p {
			return &addrs[i]
		}
	}
	return nil
}

func routeSrc(t *testing.T, dst netip.Addr) netip.Addr {
	t.Helper()
	rs, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		t.Fatalf("RouteGet(%s) = %v, %v", dst, rs, err)
	}
	src, _ := netip.AddrFromSlice(rs[0].Src)
	return src.Unmap()
}

func TestHelperAddresses(t *testing.T) {
	isHelper(t)
	ifname, node, peer := env(t, "NC_IF_A"), envAddr(t, "NC_ADDR_A"), envAddr(t, "NC_ADDR_B")
	vip32 := netip.PrefixFrom(labAddr(t, 100), 32)
	vip24 := netip.PrefixFrom(labAddr(t, 101), 24)
	subnet := netip.PrefixFrom(node, 24).Masked()
	a, err := NewAddresses()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	for i := range 2 { // the second add is a no-op
		if err := a.AddVIP(ifname, vip32); err != nil {
			t.Fatalf("AddVIP #%d: %v", i+1, err)
		}
	}
	if has, err := a.HasVIP(ifname, vip32); err != nil || !has {
		t.Fatalf("HasVIP(%s) = %v, %v after add", vip32, has, err)
	}
	if findAddr(nlAddrs(t, ifname), vip32) == nil {
		t.Fatalf("netlink does not list %s: %v", vip32, nlAddrs(t, ifname))
	}
	if has, _ := a.HasVIP(ifname, netip.PrefixFrom(vip32.Addr(), 24)); has {
		t.Errorf("HasVIP matched a different prefix length")
	}

	// Source selection: on-link and via a gateway, the node address wins.
	offLink := netip.AddrFrom4([4]byte{10, 213, byte((int(node.As4()[2]) + 1) % 256), 9})
	if out, err := runIP("route", "add", netip.PrefixFrom(offLink, 24).Masked().String(), "via", peer.String()); err != nil {
		t.Fatalf("ip route add: %v %s", err, out)
	}
	check := func(when string) {
		t.Helper()
		for _, dst := range []netip.Addr{peer, offLink} {
			if src := routeSrc(t, dst); src != node {
				t.Errorf("%s: route get %s: src %s, want node address %s", when, dst, src, node)
			}
		}
	}
	check("with /32 VIP")

	// A shorter prefix becomes a secondary without its own subnet route.
	if err := a.AddVIP(ifname, vip24); err != nil {
		t.Fatal(err)
	}
	if err := a.AddVIP(ifname, vip24); err != nil {
		t.Fatalf("AddVIP again: %v", err)
	}
	got := findAddr(nlAddrs(t, ifname), vip24)
	if got == nil {
		t.Fatalf("netlink does not list %s", vip24)
	}
	if got.Flags&unix.IFA_F_NOPREFIXROUTE == 0 || got.Flags&unix.IFA_F_SECONDARY == 0 {
		t.Errorf("%s flags %#x, want NOPREFIXROUTE and SECONDARY", vip24, got.Flags)
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Dst: &net.IPNet{IP: subnet.Addr().AsSlice(), Mask: net.CIDRMask(24, 32)}}, netlink.RT_FILTER_DST)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 {
		t.Errorf("routes to %s: %v, want exactly the node's one", subnet, routes)
	}
	check("with /32 and /24 VIPs")

	for _, p := range []netip.Prefix{vip32, vip24} {
		for i := range 2 { // the second remove is a no-op
			if err := a.RemoveVIP(ifname, p); err != nil {
				t.Fatalf("RemoveVIP(%s) #%d: %v", p, i+1, err)
			}
		}
		if has, err := a.HasVIP(ifname, p); err != nil || has {
			t.Errorf("HasVIP(%s) = %v, %v after remove", p, has, err)
		}
		if findAddr(nlAddrs(t, ifname), p) != nil {
			t.Errorf("netlink still lists %s", p)
		}
	}
	if findAddr(nlAddrs(t, ifname), netip.PrefixFrom(node, 24)) == nil {
		t.Errorf("node address %s/24 gone", node)
	}

	if err := a.AddVIP("ncnosuchif0", vip32); !errors.Is(err, ErrNoInterface) ||
		err.Error() != fmt.Sprintf("netcfg: add %s on ncnosuchif0: no such interface", vip32) {
		t.Errorf("AddVIP on missing interface = %v", err)
	}
	if err := a.RemoveVIP("ncnosuchif0", vip32); err != nil {
		t.Errorf("RemoveVIP on missing interface = %v, want nil", err)
	}
	if err := a.AddVIP(ifname, netip.Prefix{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("AddVIP(invalid) = %v, want ErrInvalidConfig", err)
	}
}

func execIP(ctx context.Context, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, "ip", args...).CombinedOutput()
}

func runIP(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return execIP(ctx, args...)
}

func TestHelperWatchVIPs(t *testing.T) {
	isHelper(t)
	ifname := env(t, "NC_IF_A")
	v1 := netip.PrefixFrom(labAddr(t, 100), 32)
	v2 := netip.PrefixFrom(labAddr(t, 101), 32)
	other := netip.PrefixFrom(labAddr(t, 150), 32)
	a, err := NewAddresses()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, p := range []netip.Prefix{v1, v2, other} {
		if err := a.AddVIP(ifname, p); err != nil {
			t.Fatal(err)
		}
	}
	// Removed before the watch starts: reported once it is subscribed.
	if out, err := runIP("addr", "del", v1.String(), "dev", ifname); err != nil {
		t.Fatalf("ip addr del: %v %s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	removed := make(chan netip.Prefix, 16)
	ret := make(chan error, 1)
	go func() {
		ret <- WatchVIPs(ctx, ifname, []netip.Prefix{v1, v2}, func(p netip.Prefix) {
			select {
			case removed <- p:
			default:
			}
		})
	}()
	if got := await(t, removed, 5*time.Second, "initial report"); got != v1 {
		t.Fatalf("first report %s, want %s (missing at start)", got, v1)
	}
	// Subscribed now. An address not watched is not reported; v2 is.
	for _, p := range []netip.Prefix{other, v2} {
		if out, err := runIP("addr", "del", p.String(), "dev", ifname); err != nil {
			t.Fatalf("ip addr del: %v %s", err, out)
		}
	}
	if got := await(t, removed, 5*time.Second, "report after ip addr del"); got != v2 {
		t.Fatalf("report %s, want %s", got, v2)
	}
	cancel()
	if err := await(t, ret, 5*time.Second, "WatchVIPs return after cancel"); err != nil {
		t.Errorf("WatchVIPs = %v, want nil after cancel", err)
	}
	if err := WatchVIPs(context.Background(), "ncnosuchif0", []netip.Prefix{v1}, func(netip.Prefix) {}); !errors.Is(err, ErrNoInterface) {
		t.Errorf("WatchVIPs(missing) = %v, want ErrNoInterface", err)
	}
}

func TestHelperWatchLink(t *testing.T) {
	isHelper(t)
	ifname, nsBr, port := env(t, "NC_IF_A"), env(t, "NC_NS_BR"), env(t, "NC_PORT_A")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan bool, 16)
	ret := make(chan error, 1)
	go func() {
		ret <- WatchLink(ctx, ifname, func(up bool) { changes <- up })
	}()
	if !await(t, changes, 5*time.Second, "initial state") {
		t.Fatal("initial state down, want up")
	}
	steps := []struct {
		args []string
		want bool
	}{
		{[]string{"link", "set", ifname, "down"}, false},
		{[]string{"link", "set", ifname, "up"}, true},
		// The peer going down takes the carrier: up but not running.
		{[]string{"-n", nsBr, "link", "set", port, "down"}, false},
		{[]string{"-n", nsBr, "link", "set", port, "up"}, true},
	}
	for _, s := range steps {
		if out, err := runIP(s.args...); err != nil {
			t.Fatalf("ip %v: %v %s", s.args, err, out)
		}
		if got := await(t, changes, 5*time.Second, fmt.Sprintf("change after ip %v", s.args)); got != s.want {
			t.Fatalf("after ip %v: up=%v, want %v", s.args, got, s.want)
		}
	}
	cancel()
	if err := await(t, ret, 5*time.Second, "WatchLink return"); err != nil {
		t.Errorf("WatchLink = %v", err)
	}

	// An interface that does not exist yet is down, and is picked up when
	// it appears; deleting it is down again. Steps that leave the state
	// unchanged must not report anything: the next report is checked.
	dummy := ifname + "d"
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	changes2 := make(chan bool, 16)
	go func() { ret <- WatchLink(ctx2, dummy, func(up bool) { changes2 <- up }) }()
	if await(t, changes2, 5*time.Second, "initial state of missing link") {
		t.Fatal("missing link reported up")
	}
	for _, args := range [][]string{
		{"link", "add", dummy, "type", "veth", "peer", "name", dummy + "p"}, // exists, down: no report
		{"link", "set", dummy + "p", "up"},                                  // still down: no report
		{"link", "set", dummy, "up"},
	} {
		if out, err := runIP(args...); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	if !await(t, changes2, 5*time.Second, "report after the new link came up") {
		t.Fatal("new link reported down, want the next report to be up")
	}
	if out, err := runIP("link", "del", dummy); err != nil {
		t.Fatalf("ip link del: %v %s", err, out)
	}
	if await(t, changes2, 5*time.Second, "report after link del") {
		t.Fatal("deleted link reported up")
	}
	cancel2()
	if err := await(t, ret, 5*time.Second, "WatchLink return"); err != nil {
		t.Errorf("WatchLink = %v", err)
	}
}

func TestHelperARPCapture(t *testing.T) {
	isHelper(t)
	ifname, vip := env(t, "NC_IF_B"), envAddr(t, "NC_VIP")
	macA, err := net.ParseMAC(env(t, "NC_MAC_A"))
	if err != nil {
		t.Fatal(err)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	// Pre-seed a wrong, stale entry: the burst must override it.
	wrong := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: ifi.Index, Family: netlink.FAMILY_V4,
		State: netlink.NUD_STALE, IP: vip.AsSlice(), HardwareAddr: wrong}); err != nil {
		t.Fatal(err)
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Println("READY")

	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	seen := map[arp.Operation]bool{}
	buf := make([]byte, 1500)
	for i := 0; i < 1000 && !(seen[arp.OperationRequest] && seen[arp.OperationReply]); i++ {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read: %v (seen %v)", err, seen)
		}
		var f ethernet.Frame
		var p arp.Packet
		if f.UnmarshalBinary(buf[:n]) != nil || f.EtherType != ethernet.EtherTypeARP || p.UnmarshalBinary(f.Payload) != nil {
			continue
		}
		if p.SenderIP != vip {
			continue
		}
		if f.Destination.String() != "ff:ff:ff:ff:ff:ff" || f.Source.String() != macA.String() {
			t.Errorf("%v frame %s -> %s, want %s -> broadcast", p.Operation, f.Source, f.Destination, macA)
		}
		if p.SenderHardwareAddr.String() != macA.String() || p.TargetIP != vip ||
			p.TargetHardwareAddr.String() != "ff:ff:ff:ff:ff:ff" {
			t.Errorf("%v: sender %s/%s target %s/%s; want %s/%s target ff:ff:ff:ff:ff:ff/%s",
				p.Operation, p.SenderHardwareAddr, p.SenderIP, p.TargetHardwareAddr, p.TargetIP, macA, vip, vip)
		}
		if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) {
			t.Errorf("%v: htype %d ptype %#x", p.Operation, p.HardwareType, p.ProtocolType)
		}
		seen[p.Operation] = true
	}
	if !seen[arp.OperationRequest] || !seen[arp.OperationReply] {
		t.Fatalf("saw %v, want request and reply", seen)
	}

	poll(t, 5*time.Second, "neighbour entry for VIP has A's MAC", func() bool {
		ns, err := netlink.NeighList(ifi.Index, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			if ip, _ := netip.AddrFromSlice(n.IP); ip.Unmap() == vip {
				return n.HardwareAddr.String() == macA.String()
			}
		}
		return false
	})
}

func TestHelperARPSend(t *testing.T) {
	isHelper(t)
	ifname, vip := env(t, "NC_IF_A"), envAddr(t, "NC_VIP")
	a, err := NewAnnouncer(ifname)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Burst(ctx, a, []netip.Addr{vip}, 3, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAnnouncer("ncnosuchif0"); !errors.Is(err, ErrNoInterface) {
		t.Errorf("NewAnnouncer(missing) = %v, want ErrNoInterface", err)
	}
}

func vrrpConfig(t *testing.T, self, peer string) (VRRPConfig, netip.Addr) {
	t.Helper()
	cfg := VRRPConfig{Interface: env(t, "NC_IF_"+self)}
	dst := VRRPGroup()
	if env(t, "NC_MODE") == "unicast" {
		cfg.Unicast = true
		cfg.Source = envAddr(t, "NC_SRC_"+self)
		cfg.Peers = []netip.Addr{envAddr(t, "NC_ADDR_"+peer)}
		dst = envAddr(t, "NC_ADDR_"+self)
	}
	return cfg, dst // dst: where packets to self are addressed
}

// TestHelperVRRPRecv runs on B: it waits for A's "ping" (and in multicast
// mode A's "low", sent with TTL 254), checks them, and answers "pong".
func TestHelperVRRPRecv(t *testing.T) {
	isHelper(t)
	cfg, wantDst := vrrpConfig(t, "B", "A")
	peer := envAddr(t, "NC_SRC_A") // where A's packets come from
	multicast := !cfg.Unicast
	c, err := ListenVRRP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A second raw socket sees the IP headers the kernel built on A.
	rc0, err := net.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ipv4.NewRawConn(rc0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	fmt.Println("READY")

	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var gotPing, gotLow bool
	buf := make([]byte, 1500)
	for i := 0; i < 1000 && !(gotPing && (gotLow || !multicast)); i++ {
		n, src, dst, ttl, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read: %v (ping %v low %v)", err, gotPing, gotLow)
		}
		switch string(buf[:n]) {
		case "ping":
			if src != peer || dst != wantDst || ttl != 255 {
				t.Errorf("ping: src %s dst %s ttl %d; want %s %s 255", src, dst, ttl, peer, wantDst)
			}
			gotPing = true
		case "low":
			if ttl != 254 || dst != wantDst {
				t.Errorf("low: ttl %d dst %s; want 254 %s", ttl, dst, wantDst)
			}
			gotLow = true
		}
	}
	if err := c.Send([]byte("pong")); err != nil {
		t.Fatal(err)
	}

	if err := rc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("no ping header")
		}
		h, p, _, err := rc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("raw read: %v", err)
		}
		if string(p) != "ping" {
			continue
		}
		if h.TOS != DefaultTOS || h.TTL != 255 || h.Flags&ipv4.DontFragment != 0 || h.Protocol != vrrpProto ||
			!h.Src.Equal(peer.AsSlice()) || !h.Dst.Equal(wantDst.AsSlice()) {
			t.Errorf("ping header %v; want TOS 0xc0, TTL 255, DF clear, proto 112, %s -> %s", h, peer, wantDst)
		}
		break
	}
}

// TestHelperVRRPSend runs on A: it sends "ping" (and "low" with TTL 254 in
// multicast mode) until B's "pong" arrives, and fails if it ever reads its
// own packets back.
func TestHelperVRRPSend(t *testing.T) {
	isHelper(t)
	cfg, wantDst := vrrpConfig(t, "A", "B")
	self, peer := envAddr(t, "NC_SRC_A"), envAddr(t, "NC_SRC_B")
	c, err := ListenVRRP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var low *ipv4.PacketConn
	if !cfg.Unicast {
		lc, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			t.Fatal(err)
		}
		low = ipv4.NewPacketConn(lc)
		defer low.Close()
		ifi, err := net.InterfaceByName(cfg.Interface)
		if err != nil {
			t.Fatal(err)
		}
		if err := low.SetMulticastInterface(ifi); err != nil {
			t.Fatal(err)
		}
		if err := low.SetMulticastTTL(254); err != nil {
			t.Fatal(err)
		}
		// Its copy looped back would reach c, which joined the group.
		if err := low.SetMulticastLoopback(false); err != nil {
			t.Fatal(err)
		}
	}

	buf := make([]byte, 1500)
	deadline := time.Now().Add(15 * time.Second)
	for try := 0; try < 100; try++ {
		if time.Now().After(deadline) {
			break
		}
		if low != nil {
			if _, err := low.WriteTo([]byte("low"), nil, &net.IPAddr{IP: VRRPGroup().AsSlice()}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Send([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		// Read until this round's wait is over; a looped-back packet
		// would arrive before B's answer.
		if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		for {
			n, src, dst, ttl, err := c.ReadFrom(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if src == self || string(buf[:n]) == "ping" || string(buf[:n]) == "low" {
				t.Fatalf("heard own packet %q from %s: multicast loopback on?", buf[:n], src)
			}
			if string(buf[:n]) == "pong" {
				if src != peer || dst != wantDst || ttl != 255 {
					t.Errorf("pong: src %s dst %s ttl %d; want %s %s 255", src, dst, ttl, peer, wantDst)
				}
				return
			}
		}
	}
	t.Fatal("no pong from B")
}

func TestHelperPermission(t *testing.T) {
	isHelper(t)
	ifname := env(t, "NC_IF_A")
	vip := netip.PrefixFrom(labAddr(t, 100), 32)
	a, err := NewAddresses()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = a.AddVIP(ifname, vip)
	if !errors.Is(err, os.ErrPermission) || !strings.HasPrefix(err.Error(), fmt.Sprintf("netcfg: add %s on %s: ", vip, ifname)) {
		t.Errorf("AddVIP without CAP_NET_ADMIN = %v, want wrapped os.ErrPermission", err)
	}
	if _, err := ListenVRRP(VRRPConfig{Interface: ifname}); !errors.Is(err, os.ErrPermission) {
		t.Errorf("ListenVRRP without CAP_NET_RAW = %v, want wrapped os.ErrPermission", err)
	}
	if _, err := NewAnnouncer(ifname); !errors.Is(err, os.ErrPermission) {
		t.Errorf("NewAnnouncer without CAP_NET_RAW = %v, want wrapped os.ErrPermission", err)
	}
	t.Logf("AddVIP: %v", err)
}
