//go:build linux

package netcfg

// Addresses and their effect on source selection, in the lab's namespaces.

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

func TestAddresses(t *testing.T) {
	l := newLab(t)
	runHelper(t, l.nsA, "Addresses", l.env())
}

// TestAddresses6: an IPv6 VIP is added without DAD and deprecated, so the
// kernel never picks it as a source, even for a destination that shares a
// longer prefix with the VIP than with the node address.
func TestAddresses6(t *testing.T) {
	l := newLab6(t)
	runHelper(t, l.nsA, "Addresses6", l.env6())
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
	// The VIP accepts connections on its own address, at once: a
	// connection made before the kernel installed the local route is
	// routed out of the interface and hangs.
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

// TestAddresses6Local: AddVIP returns only once the kernel delivers an
// IPv6 VIP locally. The kernel installs that route from a workqueue after
// the address is added; without the wait, 10 to 40 % of adds returned
// early here.
func TestAddresses6Local(t *testing.T) {
	l := newLab6(t)
	runHelper(t, l.nsA, "Addresses6Local", l.env6())
}

func TestHelperAddresses6Local(t *testing.T) {
	isHelper(t)
	ifname := env(t, "NC_IF_A")
	a, err := NewAddresses()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	early := 0
	const n = 50
	for i := range n {
		b := envAddr(t, "NC_ADDR6_A").As16()
		b[14], b[15] = 1, byte(i)
		vip := netip.PrefixFrom(netip.AddrFrom16(b), 128)
		if err := a.AddVIP(ifname, vip); err != nil {
			t.Fatal(err)
		}
		rs, err := netlink.RouteGet(vip.Addr().AsSlice())
		if err != nil || len(rs) == 0 || rs[0].Type != unix.RTN_LOCAL {
			early++
		}
		if err := a.RemoveVIP(ifname, vip); err != nil {
			t.Fatal(err)
		}
	}
	if early > 0 {
		t.Errorf("%d of %d AddVIP calls returned before the VIP's local route existed", early, n)
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
