//go:build linux

package netcfg

// The VRRP socket: adverts exchanged between two namespaces over IPv4 and
// IPv6, multicast and unicast. One pair of helpers serves all four: B
// (TestHelperVRRPRecv) waits for A's "ping" and "low" and answers "pong",
// A (TestHelperVRRPSend) sends until the pong arrives.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// TestVRRPMulticast: A and B exchange adverts over 224.0.0.18 through the
// bridge. B checks source, destination, TTL 255 and the IP header (TOS
// 0xc0, DF clear) of A's packet, and that a packet sent with TTL 254
// reports 254 (the runner drops it: RFC 9568 section 7.1); A checks that it
// never hears its own packets.
func TestVRRPMulticast(t *testing.T) {
	l := newLab(t)
	// A holds a /32 VIP and sends without an explicit source: the kernel
	// must still pick the node address.
	ip(t, "-n", l.nsA, "addr", "add", l.addr(100).String()+"/32", "dev", l.ifA)
	exchange(t, l, l.env("NC_FAMILY=4", "NC_MODE=multicast", "NC_SRC_A="+l.addrA.String(), "NC_SRC_B="+l.addrB.String()))
}

// TestVRRPUnicast: the same exchange addressed to the peer. A holds a VIP
// and a second address, .3, which it names as VRRPConfig.Source: adverts
// must leave from .3, which the kernel would not pick by itself. A packet
// sent with TTL 64 arrives reporting 64: a unicast peer may be a routed
// hop away, and the runner accepts any TTL from a configured peer.
func TestVRRPUnicast(t *testing.T) {
	l := newLab(t)
	ip(t, "-n", l.nsA, "addr", "add", l.addr(100).String()+"/32", "dev", l.ifA)
	ip(t, "-n", l.nsA, "addr", "add", l.addr(3).String()+"/32", "dev", l.ifA)
	exchange(t, l, l.env("NC_FAMILY=4", "NC_MODE=unicast", "NC_SRC_A="+l.addr(3).String(), "NC_SRC_B="+l.addrB.String()))
}

// TestVRRP6Multicast: A and B exchange adverts over ff02::12 from their
// link-local addresses. B checks source, destination ff02::12, hop limit
// 255 and traffic class 0xc0 of A's packet, and that a packet sent with hop
// limit 254 reports 254; A checks that it never hears its own packets.
func TestVRRP6Multicast(t *testing.T) {
	l := newLab6(t)
	exchange(t, l, l.env6("NC_FAMILY=6", "NC_MODE=multicast"))
}

// TestVRRP6Unicast: the same exchange addressed to the peer's global
// address, from the node's global address; a packet sent with hop limit 64
// arrives reporting 64.
func TestVRRP6Unicast(t *testing.T) {
	l := newLab6(t)
	exchange(t, l, l.env6("NC_FAMILY=6", "NC_MODE=unicast"))
}

// exchange runs the receiver in B and the sender in A.
func exchange(t *testing.T, l *lab, env []string) {
	t.Helper()
	recv := startHelper(t, l.nsB, "VRRPRecv", env)
	recv.awaitReady(t)
	runHelper(t, l.nsA, "VRRPSend", env)
	recv.wait(t)
}

// end is one side of the exchange, as its helper sees it.
type end struct {
	cfg     VRRPConfig
	self    netip.Addr // the source of this side's packets
	peerSrc netip.Addr // the source of the peer's; invalid: a link-local one
	dst     netip.Addr // where the peer's packets to this side go
	lowDst  netip.Addr // where this side's "low" goes
}

// exchangeEnd describes side self ("A" or "B") from the helper's
// environment.
func exchangeEnd(t *testing.T, self, peer string) end {
	t.Helper()
	e := end{cfg: VRRPConfig{Interface: env(t, "NC_IF_"+self), Unicast: env(t, "NC_MODE") == "unicast"}}
	switch {
	case env(t, "NC_FAMILY") == "4":
		e.self, e.peerSrc, e.dst = envAddr(t, "NC_SRC_"+self), envAddr(t, "NC_SRC_"+peer), vrrpGroup4
		if e.cfg.Unicast {
			e.cfg.Source = e.self
			e.cfg.Peers = []netip.Addr{envAddr(t, "NC_ADDR_"+peer)}
			e.dst = envAddr(t, "NC_ADDR_"+self)
		}
	case e.cfg.Unicast:
		e.self, e.peerSrc, e.dst = envAddr(t, "NC_ADDR6_"+self), envAddr(t, "NC_ADDR6_"+peer), envAddr(t, "NC_ADDR6_"+self)
		e.cfg.Source = e.self
		e.cfg.Peers = []netip.Addr{e.peerSrc}
	default:
		// The peer's link-local address is not known in this namespace.
		ll, err := LinkLocal(e.cfg.Interface)
		if err != nil {
			t.Fatal(err)
		}
		e.self, e.dst, e.cfg.Source = ll, vrrpGroup6, ll
	}
	e.lowDst = e.dst
	if e.cfg.Unicast {
		e.lowDst = e.cfg.Peers[0]
	}
	return e
}

// fromPeer reports whether src is the peer's source address.
func (e end) fromPeer(src netip.Addr) bool {
	if e.peerSrc.IsValid() {
		return src == e.peerSrc
	}
	return src.IsLinkLocalUnicast() && src != e.self
}

// lowTTL is the TTL (hop limit) of A's "low" packet: 254 to the group,
// which the receiver must see to drop it; 64 to a unicast peer, as a
// keepalived peer with unicast_ttl 64 sends.
func (e end) lowTTL() int {
	if e.cfg.Unicast {
		return 64
	}
	return 254
}

// TestHelperVRRPRecv runs on B: it waits for A's "ping" and A's "low"
// (sent with lowTTL), checks them, answers "pong", and then checks the
// ping as the kernel built it (see wireCheck).
func TestHelperVRRPRecv(t *testing.T) {
	isHelper(t)
	e := exchangeEnd(t, "B", "A")
	c, err := ListenVRRP(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkWire := wireCheck(t, e)
	fmt.Println("READY")

	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var gotPing, gotLow bool
	buf := make([]byte, 1500)
	for i := 0; i < 1000 && !(gotPing && gotLow); i++ {
		n, src, dst, ttl, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read: %v (ping %v low %v)", err, gotPing, gotLow)
		}
		switch string(buf[:n]) {
		case "ping":
			if !e.fromPeer(src) || dst != e.dst || ttl != 255 {
				t.Errorf("ping: src %s dst %s ttl %d; want %v (link-local if invalid) %s 255", src, dst, ttl, e.peerSrc, e.dst)
			}
			gotPing = true
		case "low":
			if ttl != e.lowTTL() || dst != e.dst {
				t.Errorf("low: ttl %d dst %s; want %d %s", ttl, dst, e.lowTTL(), e.dst)
			}
			gotLow = true
		}
	}
	if !gotPing || !gotLow {
		t.Fatalf("ping %v low %v after 1000 packets", gotPing, gotLow)
	}
	if err := c.Send([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	checkWire()
}

// wireCheck opens a second raw socket on B that sees A's packets as A's
// kernel built them, and returns the check of A's "ping" on it: over IPv4
// the header (TOS 0xc0, TTL 255, DF clear, protocol 112, addresses), over
// IPv6, which delivers no header, traffic class 0xc0 and hop limit 255.
func wireCheck(t *testing.T, e end) func() {
	t.Helper()
	buf := make([]byte, 1500)
	if e.cfg.ipv6() {
		c, err := net.ListenPacket("ip6:112", "::")
		if err != nil {
			t.Fatal(err)
		}
		p := ipv6.NewPacketConn(c)
		t.Cleanup(func() { p.Close() })
		if err := p.SetControlMessage(ipv6.FlagTrafficClass|ipv6.FlagHopLimit, true); err != nil {
			t.Fatal(err)
		}
		return func() {
			t.Helper()
			readPing(t, p, func() (string, error) {
				n, cm, _, err := p.ReadFrom(buf)
				if err == nil && string(buf[:n]) == "ping" && (cm == nil || cm.TrafficClass != defaultTOS || cm.HopLimit != 255) {
					t.Errorf("ping control message %v; want traffic class 0xc0, hop limit 255", cm)
				}
				return string(buf[:n]), err
			})
		}
	}
	c, err := net.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ipv4.NewRawConn(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return func() {
		t.Helper()
		readPing(t, rc, func() (string, error) {
			h, p, _, err := rc.ReadFrom(buf)
			if err == nil && string(p) == "ping" && (h.TOS != defaultTOS || h.TTL != 255 || h.Flags&ipv4.DontFragment != 0 ||
				h.Protocol != vrrpProto || !h.Src.Equal(e.peerSrc.AsSlice()) || !h.Dst.Equal(e.dst.AsSlice())) {
				t.Errorf("ping header %v; want TOS 0xc0, TTL 255, DF clear, proto 112, %s -> %s", h, e.peerSrc, e.dst)
			}
			return string(p), err
		})
	}
}

// readPing calls read, which checks what it read, until it read "ping".
func readPing(t *testing.T, c interface{ SetReadDeadline(time.Time) error }, read func() (string, error)) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		got, err := read()
		if err != nil {
			t.Fatalf("second socket: %v", err)
		}
		if got == "ping" {
			return
		}
	}
	t.Fatal("second socket: no ping in 1000 packets")
}

// TestHelperVRRPSend runs on A: it sends "ping", and "low" from another
// socket with lowTTL, until B's "pong" arrives, and fails if it ever reads
// its own packets back.
func TestHelperVRRPSend(t *testing.T) {
	isHelper(t)
	e := exchangeEnd(t, "A", "B")
	c, err := ListenVRRP(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sendLow := lowSender(t, e)

	buf := make([]byte, 1500)
	deadline := time.Now().Add(15 * time.Second)
	for try := 0; try < 100 && time.Now().Before(deadline); try++ {
		sendLow()
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
			if src == e.self || string(buf[:n]) == "ping" || string(buf[:n]) == "low" {
				t.Fatalf("heard own packet %q from %s: multicast loopback on?", buf[:n], src)
			}
			if string(buf[:n]) == "pong" {
				if !e.fromPeer(src) || dst != e.dst || ttl != 255 {
					t.Errorf("pong: src %s dst %s ttl %d; want %v (link-local if invalid) %s 255", src, dst, ttl, e.peerSrc, e.dst)
				}
				return
			}
		}
	}
	t.Fatal("no pong from B")
}

// lowSender opens a plain raw socket, not a VRRPConn, and returns a
// function that sends "low" with e.lowTTL() to e.lowDst.
func lowSender(t *testing.T, e end) func() {
	t.Helper()
	ifi, err := net.InterfaceByName(e.cfg.Interface)
	if err != nil {
		t.Fatal(err)
	}
	dst := &net.IPAddr{IP: e.lowDst.AsSlice()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Its copy looped back would reach the VRRPConn, which joined the
	// group, and fail the test.
	if e.cfg.ipv6() {
		c, err := net.ListenPacket("ip6:112", "::")
		must(err)
		p := ipv6.NewPacketConn(c)
		t.Cleanup(func() { p.Close() })
		must(p.SetHopLimit(e.lowTTL()))
		must(p.SetMulticastHopLimit(e.lowTTL()))
		must(p.SetMulticastInterface(ifi))
		must(p.SetMulticastLoopback(false))
		return func() { _, err := p.WriteTo([]byte("low"), nil, dst); must(err) }
	}
	c, err := net.ListenPacket("ip4:112", "0.0.0.0")
	must(err)
	p := ipv4.NewPacketConn(c)
	t.Cleanup(func() { p.Close() })
	must(p.SetTTL(e.lowTTL()))
	must(p.SetMulticastTTL(e.lowTTL()))
	must(p.SetMulticastInterface(ifi))
	must(p.SetMulticastLoopback(false))
	return func() { _, err := p.WriteTo([]byte("low"), nil, dst); must(err) }
}
