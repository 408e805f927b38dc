//go:build linux

package netcfg

// IPv6 tests: the same namespaces as newLab, plus fd77:N::1/64 on A and
// fd77:N::2/64 on B (ULA, inside the test's namespaces only).

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func newLab6(t *testing.T) *lab {
	t.Helper()
	l := newLab(t)
	ip(t, "-n", l.nsA, "-6", "addr", "add", l.addr6(1).String()+"/64", "dev", l.ifA, "nodad")
	ip(t, "-n", l.nsB, "-6", "addr", "add", l.addr6(2).String()+"/64", "dev", l.ifB, "nodad")
	// The link-local addresses run DAD (about a second): wait until both
	// are usable as a source.
	for _, e := range [][2]string{{l.nsA, l.ifA}, {l.nsB, l.ifB}} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			out := ip(t, "-n", e[0], "-6", "addr", "show", "dev", e[1], "scope", "link")
			if strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("link-local address on %s not ready:\n%s", e[1], out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return l
}

// addr6 returns fd77:N::host.
func (l *lab) addr6(host byte) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x77, 2: byte(l.n >> 8), 3: byte(l.n), 15: host})
}

func (l *lab) env6(extra ...string) []string {
	return l.env(append([]string{"NC_ADDR6_A=" + l.addr6(1).String(), "NC_ADDR6_B=" + l.addr6(2).String()}, extra...)...)
}

// TestVRRP6Multicast: A and B exchange adverts over ff02::12 from their
// link-local addresses. B checks source, destination ff02::12 and hop limit
// 255 of A's packet; A checks that it never hears its own packets.
func TestVRRP6Multicast(t *testing.T) {
	l := newLab6(t)
	env := l.env6("NC_MODE=multicast")
	recv := startHelper(t, l.nsB, "VRRP6Recv", env)
	recv.awaitReady(t)
	runHelper(t, l.nsA, "VRRP6Send", env)
	recv.wait(t)
}

// TestVRRP6Unicast: the same exchange addressed to the peer's global
// address, from the node's global address.
func TestVRRP6Unicast(t *testing.T) {
	l := newLab6(t)
	env := l.env6("NC_MODE=unicast")
	recv := startHelper(t, l.nsB, "VRRP6Recv", env)
	recv.awaitReady(t)
	runHelper(t, l.nsA, "VRRP6Send", env)
	recv.wait(t)
}

// TestAnnouncer6: B holds a stale neighbour entry for the VIP pointing at a
// bogus MAC; A's unsolicited neighbour advertisement moves it to A's MAC.
func TestAnnouncer6(t *testing.T) {
	l := newLab6(t)
	vip := l.addr6(0x10)
	ip(t, "-n", l.nsB, "-6", "neigh", "replace", vip.String(), "lladdr", "02:00:00:00:00:99", "dev", l.ifB, "nud", "stale")
	runHelper(t, l.nsA, "NASend", l.env6("NC_VIP="+vip.String()))
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := ip(t, "-n", l.nsB, "-6", "neigh", "show", vip.String(), "dev", l.ifB)
		if strings.Contains(out, l.macA) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's neighbour entry for %s did not move to %s: %q", vip, l.macA, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAddresses6: an IPv6 VIP is added without DAD and deprecated, so the
// kernel never picks it as a source, even for a destination that shares a
// longer prefix with the VIP than with the node address.
func TestAddresses6(t *testing.T) {
	l := newLab6(t)
	runHelper(t, l.nsA, "Addresses6", l.env6())
}

func vrrp6Config(t *testing.T, self, peer string) (cfg VRRPConfig, src, dst netip.Addr) {
	t.Helper()
	cfg = VRRPConfig{Interface: env(t, "NC_IF_"+self)}
	if env(t, "NC_MODE") == "unicast" {
		cfg.Unicast = true
		cfg.Source = envAddr(t, "NC_ADDR6_"+self)
		cfg.Peers = []netip.Addr{envAddr(t, "NC_ADDR6_"+peer)}
		return cfg, cfg.Source, envAddr(t, "NC_ADDR6_"+peer)
	}
	ll, err := LinkLocal(cfg.Interface)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Source = ll
	return cfg, ll, VRRPGroup6()
}

// peerSource is where the peer's packets come from: its link-local
// address (multicast) or its global address (unicast).
func peerSource(t *testing.T, peer string) netip.Addr {
	t.Helper()
	if env(t, "NC_MODE") == "unicast" {
		return envAddr(t, "NC_ADDR6_"+peer)
	}
	ifi, err := net.InterfaceByName(env(t, "NC_IF_"+peer))
	if err == nil {
		t.Fatalf("peer interface %s visible in this namespace", ifi.Name)
	}
	return netip.Addr{} // unknown here: checked to be link-local
}

func TestHelperVRRP6Recv(t *testing.T) {
	isHelper(t)
	cfg, self, _ := vrrp6Config(t, "B", "A")
	want := peerSource(t, "A")
	wantDst := VRRPGroup6()
	if cfg.Unicast {
		wantDst = self
	}
	c, err := ListenVRRP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Println("READY")
	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("no ping")
		}
		n, src, dst, ttl, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if string(buf[:n]) != "ping" {
			continue
		}
		if (want.IsValid() && src != want) || (!want.IsValid() && !src.IsLinkLocalUnicast()) || dst != wantDst || ttl != 255 {
			t.Errorf("ping: src %s dst %s hop limit %d; want %v (link-local if invalid) %s 255", src, dst, ttl, want, wantDst)
		}
		break
	}
	if err := c.Send([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	// Let the pong leave before the socket closes.
	time.Sleep(100 * time.Millisecond)
}

func TestHelperVRRP6Send(t *testing.T) {
	isHelper(t)
	cfg, self, _ := vrrp6Config(t, "A", "B")
	want := peerSource(t, "B")
	wantDst := VRRPGroup6()
	if cfg.Unicast {
		wantDst = self
	}
	c, err := ListenVRRP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	deadline := time.Now().Add(15 * time.Second)
	for try := 0; try < 100 && time.Now().Before(deadline); try++ {
		if err := c.Send([]byte("ping")); err != nil {
			t.Fatal(err)
		}
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
			if src == self || string(buf[:n]) == "ping" {
				t.Fatalf("heard own packet %q from %s: multicast loopback on?", buf[:n], src)
			}
			if string(buf[:n]) == "pong" {
				if (want.IsValid() && src != want) || (!want.IsValid() && !src.IsLinkLocalUnicast()) || dst != wantDst || ttl != 255 {
					t.Errorf("pong: src %s dst %s hop limit %d; want %v %s 255", src, dst, ttl, want, wantDst)
				}
				return
			}
		}
	}
	t.Fatal("no pong from B")
}

func TestHelperNASend(t *testing.T) {
	isHelper(t)
	vip := envAddr(t, "NC_VIP")
	a, err := NewAnnouncer(env(t, "NC_IF_A"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 3 {
		if err := a.Announce(vip); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The same announcer still does GARP for an IPv4 VIP.
	if err := a.Announce(labAddr(t, 100)); err != nil {
		t.Fatal(err)
	}
}

func TestHelperAddresses6(t *testing.T) {
	isHelper(t)
	ifname := env(t, "NC_IF_A")
	node := envAddr(t, "NC_ADDR6_A")
	vip := netip.PrefixFrom(netip.AddrFrom16(node.As16()), 128)
	b := vip.Addr().As16()
	b[15] = 0x64
	vip = netip.PrefixFrom(netip.AddrFrom16(b), 128)
	b[15] = 0x65
	near := netip.AddrFrom16(b) // shares 127 bits with the VIP
	a, err := NewAddresses()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 2 { // idempotent
		if err := a.AddVIP(ifname, vip); err != nil {
			t.Fatal(err)
		}
	}
	got := findAddr(nlAddrs6(t, ifname), vip)
	if got == nil {
		t.Fatalf("VIP %s not on %s", vip, ifname)
	}
	if got.Flags&unix.IFA_F_NODAD == 0 || got.Flags&unix.IFA_F_TENTATIVE != 0 {
		t.Errorf("VIP flags %#x: want NODAD and not tentative", got.Flags)
	}
	if got.Flags&unix.IFA_F_DEPRECATED == 0 || got.PreferedLft != 0 {
		t.Errorf("VIP flags %#x preferred_lft %d: want deprecated (preferred_lft 0)", got.Flags, got.PreferedLft)
	}
	if src := routeSrc(t, near); src != node {
		t.Errorf("route get %s: src %s, want the node address %s (the VIP must never be the source)", near, src, node)
	}
	if src := routeSrc(t, envAddr(t, "NC_ADDR6_B")); src != node {
		t.Errorf("route get to the peer: src %s, want %s", src, node)
	}
	// The VIP accepts connections on its own address.
	ln, err := net.Listen("tcp", netip.AddrPortFrom(vip.Addr(), 0).String())
	if err != nil {
		t.Fatalf("listen on the VIP: %v", err)
	}
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatalf("connect to the VIP: %v", err)
	}
	c.Close()
	ln.Close()
	if has, err := a.HasVIP(ifname, vip); err != nil || !has {
		t.Errorf("HasVIP = %v, %v", has, err)
	}
	for range 2 {
		if err := a.RemoveVIP(ifname, vip); err != nil {
			t.Fatal(err)
		}
	}
	if has, err := a.HasVIP(ifname, vip); err != nil || has {
		t.Errorf("HasVIP after remove = %v, %v", has, err)
	}
	if out, err := exec.Command("ip", "-6", "addr", "show", "dev", ifname).CombinedOutput(); err == nil && strings.Contains(string(out), vip.Addr().String()) {
		t.Errorf("VIP still listed:\n%s", out)
	}
}

func nlAddrs6(t *testing.T, ifname string) []netlink.Addr {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	return as
}
