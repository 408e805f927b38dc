//go:build linux

package netcfg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// VRRPConn is a raw IPv4 or IPv6 socket for VRRP (IP protocol 112). The
// kernel builds the IP header (TTL or hop limit 255, TOS from VRRPConfig,
// DF clear as keepalived); ReadFrom strips it and reports the fields the
// receiver must check. Close unblocks a pending ReadFrom.
type VRRPConn struct {
	ifname string
	fam    *family
	conn   *net.IPConn
	wcm    []byte // control message sent with every packet: source, interface
	dsts   []netip.Addr
}

// ReadFrom reads one VRRP packet into b and returns the VRRP payload length
// (IP header stripped), the IP source and destination, and the TTL (IPv6:
// hop limit) the packet arrived with, as the kernel reported them in
// control messages. ttl is -1 when the kernel reported none; dst is the
// zero Addr when it reported no destination. A link-local IPv6 source
// loses its zone: the socket is bound to one interface.
//
// The caller decides what to drop: RFC 9568 section 7.1 requires TTL 255
// of multicast adverts only (a unicast peer may be a routed hop away), and
// a packet from one of the node's own addresses is its own.
func (c *VRRPConn) ReadFrom(b []byte) (n int, src, dst netip.Addr, ttl int, err error) {
	buf := b
	if c.fam.header {
		buf = make([]byte, maxIPv4Header+len(b))
	}
	oob := make([]byte, oobLen)
	n, oobn, _, from, err := c.conn.ReadMsgIP(buf, oob)
	if err != nil {
		return 0, netip.Addr{}, netip.Addr{}, 0, fmt.Errorf("netcfg: vrrp read on %s: %w", c.ifname, err)
	}
	if c.fam.header {
		n = copy(b, ipv4Payload(buf[:n]))
	}
	if from != nil {
		src, _ = netip.AddrFromSlice(from.IP)
		src = src.Unmap()
	}
	dst, ttl = parseControl(oob[:oobn])
	return n, src, dst, ttl, nil
}

// maxIPv4Header is the longest IPv4 header (IHL 15), which a raw IPv4
// socket delivers in front of the VRRP message.
const maxIPv4Header = 60

// oobLen is room for the control messages a VRRP socket asks for (a TTL
// and a pktinfo message, about 56 bytes), with margin.
const oobLen = 128

// ipv4Payload strips the IPv4 header the kernel delivers on a raw socket.
// The kernel has validated the header; a length that does not fit still
// yields an empty payload rather than a panic, which the VRRP codec then
// counts as malformed.
func ipv4Payload(pkt []byte) []byte {
	if len(pkt) < 20 {
		return nil
	}
	hl := int(pkt[0]&0x0f) << 2
	if hl < 20 || hl > len(pkt) {
		return nil
	}
	return pkt[hl:]
}

// parseControl returns the destination address and the TTL or hop limit
// from the control messages of one received packet: IP_PKTINFO and IP_TTL
// over IPv4, IPV6_PKTINFO and IPV6_HOPLIMIT over IPv6. ttl is -1 unless a
// TTL or hop limit message with a value in 0..255 is present; dst is the
// zero Addr unless a pktinfo message is present.
func parseControl(oob []byte) (dst netip.Addr, ttl int) {
	ttl = -1
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return dst, ttl
	}
	for _, m := range msgs {
		h, d := m.Header, m.Data
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL,
			h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT:
			if len(d) >= 4 {
				if v := int32(binary.NativeEndian.Uint32(d)); v >= 0 && v <= 255 {
					ttl = int(v)
				}
			}
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO:
			// struct in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr (the
			// header's destination).
			if len(d) >= unix.SizeofInet4Pktinfo {
				dst = netip.AddrFrom4([4]byte(d[8:12]))
			}
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO:
			// struct in6_pktinfo: ipi6_addr, ipi6_ifindex.
			if len(d) >= unix.SizeofInet6Pktinfo {
				dst = netip.AddrFrom16([16]byte(d[:16]))
			}
		}
	}
	return dst, ttl
}

// Send sends payload, a marshalled VRRP message, to the group or, in
// unicast mode, to every peer. A peer that cannot be reached does not stop
// the others; their errors are joined.
func (c *VRRPConn) Send(payload []byte) error {
	var errs []error
	for _, dst := range c.dsts {
		errs = append(errs, c.WriteTo(payload, dst))
	}
	return errors.Join(errs...)
}

// WriteTo sends one VRRP message to dst: the group, or one unicast peer.
// The runner needs it per destination because the IPv4 pseudo-header
// checksum covers the destination address.
// Over IPv6 the VRRP checksum (with the IPv6 pseudo-header) must already
// be in payload: vipd computes it in user space (vrrp.Checksum) and does
// not set IPV6_CHECKSUM, so the kernel neither fills nor verifies it.
func (c *VRRPConn) WriteTo(payload []byte, dst netip.Addr) error {
	if _, _, err := c.conn.WriteMsgIP(payload, c.wcm, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("netcfg: vrrp send to %s on %s: %w", dst, c.ifname, err)
	}
	return nil
}

// SetReadDeadline sets the deadline for ReadFrom.
func (c *VRRPConn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// Close closes the socket, leaving the multicast group.
func (c *VRRPConn) Close() error { return c.conn.Close() }

// ListenVRRP opens the VRRP socket described by cfg, IPv4 (RFC 9568
// section 5.1.1) or IPv6 (section 5.1.2). In multicast mode it joins the
// group (224.0.0.18 or ff02::12) on cfg.Interface only and turns multicast
// loopback off, so the node never hears itself; in unicast mode it sends to
// each peer. Either way the socket is bound to the device
// (SO_BINDTODEVICE), sends with TTL (hop limit) 255 and TOS (traffic
// class) cfg.TOS, and reports the received TTL and destination in control
// messages. It needs CAP_NET_RAW.
//
// IPV6_CHECKSUM is deliberately not set: the runner puts the checksum
// (IPv6 pseudo-header included, vrrp.Checksum) in every advert and
// verifies received ones itself. With IPV6_CHECKSUM the kernel would
// overwrite the first and silently drop the second when bad, hiding them
// from the drop counters.
func ListenVRRP(cfg VRRPConfig) (*VRRPConn, error) {
	c, err := listenVRRP(cfg)
	if err != nil {
		return nil, fmt.Errorf("netcfg: listen vrrp on %s: %w", cfg.Interface, err)
	}
	return c, nil
}

func listenVRRP(cfg VRRPConfig) (*VRRPConn, error) {
	dsts, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoInterface, err)
	}
	f := &vrrpIPv4
	if cfg.ipv6() {
		f = &vrrpIPv6
	}
	// Every option is set before the socket is bound, so no packet is
	// queued from another interface or without its TTL.
	var setupErr error
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if err := rc.Control(func(fd uintptr) {
			setupErr = runSetup(f.setupSteps(int(fd), cfg, ifi.Index))
		}); err != nil {
			return err
		}
		return setupErr
	}}
	// Not bound to an address: a raw socket bound to a unicast address
	// would no longer receive packets sent to the group.
	pc, err := lc.ListenPacket(context.Background(), f.network, f.wildcard)
	if setupErr != nil {
		return nil, setupErr // the socket is closed; name the step
	}
	if err != nil {
		return nil, err
	}
	return &VRRPConn{
		ifname: cfg.Interface,
		fam:    f,
		conn:   pc.(*net.IPConn),
		wcm:    f.pktinfo(cfg.Source.WithZone(""), ifi.Index),
		dsts:   dsts,
	}, nil
}

// A family is what differs between VRRP over IPv4 and over IPv6, as data:
// one setup list (setupSteps), one reader and one writer serve both.
type family struct {
	network  string     // for net.ListenConfig.ListenPacket
	wildcard string     // the unbound local address
	group    netip.Addr // joined on the interface in multicast mode
	level    int        // IPPROTO_IP or IPPROTO_IPV6, for opts
	opts     []intOpt   // integer options, in the order they are set
	// multicastIf names the interface multicast adverts leave from.
	multicastIf func(fd, ifindex int) error
	// join joins group on the interface.
	join func(fd int, group netip.Addr, ifindex int) error
	// pktinfo is the control message that sets the source address (if
	// valid) and the interface of a sent packet.
	pktinfo func(src netip.Addr, ifindex int) []byte
	// header reports that reads return the IP header in front of the
	// VRRP message (raw IPv4 sockets do, raw IPv6 sockets do not).
	header bool
}

// An intOpt is one integer socket option of a family's setup.
type intOpt struct {
	name string // as in ip(7) and ipv6(7); errors name it
	opt  int
	val  int  // the value, unless tos
	tos  bool // the value is VRRPConfig's TOS (traffic class)
}

var vrrpIPv4 = family{
	network:  fmt.Sprintf("ip4:%d", vrrpProto),
	wildcard: "0.0.0.0",
	group:    vrrpGroup4,
	level:    unix.IPPROTO_IP,
	opts: []intOpt{
		// Only the groups this socket joined, not every group some other
		// process joined on the host.
		{name: "IP_MULTICAST_ALL", opt: unix.IP_MULTICAST_ALL, val: 0},
		// DF clear, as keepalived sends.
		{name: "IP_MTU_DISCOVER", opt: unix.IP_MTU_DISCOVER, val: unix.IP_PMTUDISC_DONT},
		{name: "IP_RECVTTL", opt: unix.IP_RECVTTL, val: 1},
		{name: "IP_PKTINFO", opt: unix.IP_PKTINFO, val: 1},
		{name: "IP_TOS", opt: unix.IP_TOS, tos: true},
		{name: "IP_TTL", opt: unix.IP_TTL, val: vrrpTTL},
		{name: "IP_MULTICAST_TTL", opt: unix.IP_MULTICAST_TTL, val: vrrpTTL},
		{name: "IP_MULTICAST_LOOP", opt: unix.IP_MULTICAST_LOOP, val: 0},
	},
	multicastIf: func(fd, ifindex int) error {
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifindex)})
	},
	join: func(fd int, group netip.Addr, ifindex int) error {
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
			&unix.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifindex)})
	},
	pktinfo: func(src netip.Addr, ifindex int) []byte {
		pi := &unix.Inet4Pktinfo{Ifindex: int32(ifindex)}
		if src.Is4() {
			pi.Spec_dst = src.As4()
		}
		return unix.PktInfo4(pi)
	},
	header: true,
}

var vrrpIPv6 = family{
	network:  fmt.Sprintf("ip6:%d", vrrpProto),
	wildcard: "::",
	group:    vrrpGroup6,
	level:    unix.IPPROTO_IPV6,
	opts: []intOpt{
		{name: "IPV6_MULTICAST_ALL", opt: unix.IPV6_MULTICAST_ALL, val: 0},
		{name: "IPV6_RECVHOPLIMIT", opt: unix.IPV6_RECVHOPLIMIT, val: 1},
		{name: "IPV6_RECVPKTINFO", opt: unix.IPV6_RECVPKTINFO, val: 1},
		{name: "IPV6_TCLASS", opt: unix.IPV6_TCLASS, tos: true},
		{name: "IPV6_UNICAST_HOPS", opt: unix.IPV6_UNICAST_HOPS, val: vrrpTTL},
		{name: "IPV6_MULTICAST_HOPS", opt: unix.IPV6_MULTICAST_HOPS, val: vrrpTTL},
		{name: "IPV6_MULTICAST_LOOP", opt: unix.IPV6_MULTICAST_LOOP, val: 0},
	},
	multicastIf: func(fd, ifindex int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex)
	},
	join: func(fd int, group netip.Addr, ifindex int) error {
		return unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP,
			&unix.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(ifindex)})
	},
	pktinfo: func(src netip.Addr, ifindex int) []byte {
		pi := &unix.Inet6Pktinfo{Ifindex: uint32(ifindex)}
		if src.Is6() {
			pi.Addr = src.As16()
		}
		return unix.PktInfo6(pi)
	},
}

// setupSteps lists the setup of a VRRP socket on fd, the same for both
// families: bound to the device, the family's options, the multicast
// interface and, in multicast mode, the group joined on that interface.
func (f *family) setupSteps(fd int, cfg VRRPConfig, ifindex int) []setupStep {
	steps := []setupStep{{"SO_BINDTODEVICE", func() error {
		// Receive only on, and send only from, this interface.
		return unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, cfg.Interface)
	}}}
	for _, o := range f.opts {
		v := o.val
		if o.tos {
			v = cfg.tos()
		}
		steps = append(steps, setupStep{o.name, func() error { return unix.SetsockoptInt(fd, f.level, o.opt, v) }})
	}
	steps = append(steps, setupStep{"multicast interface", func() error { return f.multicastIf(fd, ifindex) }})
	if !cfg.Unicast {
		steps = append(steps, setupStep{"join " + f.group.String(), func() error { return f.join(fd, f.group, ifindex) }})
	}
	return steps
}

// setupStep is one socket option applied to a new VRRP socket.
type setupStep struct {
	name string
	fn   func() error
}

// runSetup applies steps in order and names the first that fails.
func runSetup(steps []setupStep) error {
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}
