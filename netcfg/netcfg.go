package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Sentinel errors, wrapped by the errors this package returns.
var (
	// ErrNoInterface reports that the named interface does not exist.
	ErrNoInterface = errors.New("no such interface")
	// ErrNotIPv4 reports an operation that only supports IPv4 addresses.
	ErrNotIPv4 = errors.New("not an IPv4 address")
	// ErrInvalidConfig reports a VRRPConfig or argument that cannot work.
	ErrInvalidConfig = errors.New("invalid configuration")
)

// Addresses adds, removes and queries VIPs on an interface. Operations are
// idempotent: adding a VIP that is already there, or removing one that is
// not, succeeds.
type Addresses interface {
	// AddVIP adds p to ifname as an address that is never chosen as the
	// node's source address: a /32 (or /128) as given, or, for a shorter
	// prefix, with IFA_F_NOPREFIXROUTE so the subnet route is not
	// duplicated.
	AddVIP(ifname string, p netip.Prefix) error
	// RemoveVIP removes p from ifname. A missing address or a missing
	// interface is success: the VIP is not there either way.
	RemoveVIP(ifname string, p netip.Prefix) error
	// HasVIP reports whether ifname has exactly p (address and prefix
	// length).
	HasVIP(ifname string, p netip.Prefix) (bool, error)
	// Close releases the netlink socket.
	Close() error
}

// Announcer tells the L2 segment where a VIP lives now.
type Announcer interface {
	// Announce sends one gratuitous ARP request and one gratuitous ARP reply
	// for the IPv4 address vip, broadcast from the interface's MAC.
	Announce(vip netip.Addr) error
	// Close releases the socket.
	Close() error
}

// Burst announces every address in vips count times, gap apart (the daemon
// uses 5 rounds 100 ms apart), so that a lost frame or a neighbour that was
// busy does not keep clients on the old master. It stops early, returning
// ctx.Err(), when ctx is done. A failed round does not end the burst: the
// interface may be coming back up (a link flap is when clients most need
// the announcement), so every round is tried and the first error of each
// failed round is returned, joined.
func Burst(ctx context.Context, a Announcer, vips []netip.Addr, count int, gap time.Duration) error {
	var t *time.Timer
	var failed []error
	for i := range count {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i > 0 {
			if t == nil {
				t = time.NewTimer(gap)
				defer t.Stop()
			} else {
				t.Reset(gap)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
		for _, vip := range vips {
			if err := a.Announce(vip); err != nil {
				failed = append(failed, fmt.Errorf("round %d: %w", i+1, err))
				break
			}
		}
	}
	return errors.Join(failed...)
}

// NewAnnouncerConn returns an Announcer that writes Ethernet frames to pc
// with ifi's hardware address as the sender. pc is normally an AF_PACKET
// socket (github.com/mdlayher/packet) bound to ifi; tests pass a fake. The
// frames are built with github.com/mdlayher/arp's codec rather than an
// arp.Client because arp.New refuses an interface without an IPv4 address
// of its own, and a VIP may well live on one.
func NewAnnouncerConn(ifi *net.Interface, pc net.PacketConn) (Announcer, error) {
	if ifi == nil || len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("netcfg: announcer: %w: interface needs a 6-byte MAC", ErrInvalidConfig)
	}
	return &announcer{ifi: ifi, pc: pc}, nil
}

type announcer struct {
	ifi *net.Interface
	pc  net.PacketConn
}

func (a *announcer) Announce(vip netip.Addr) error {
	frames, err := garpFrames(a.ifi.HardwareAddr, vip)
	if err != nil {
		return fmt.Errorf("netcfg: announce %s on %s: %w", vip, a.ifi.Name, err)
	}
	dst := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	for _, f := range frames {
		if _, err := a.pc.WriteTo(f, dst); err != nil {
			return fmt.Errorf("netcfg: announce %s on %s: %w", vip, a.ifi.Name, err)
		}
	}
	return nil
}

func (a *announcer) Close() error { return a.pc.Close() }

// garpFrames builds the two gratuitous ARP frames for vip: a request exactly
// like keepalived's (sender IP = target IP = vip, target MAC broadcast) and a
// reply of the same shape, both to the Ethernet broadcast address. Linux
// treats both as gratuitous (arp_is_garp) and overrides an existing
// neighbour entry with them.
const ethHeaderLen = 14

func garpFrames(mac net.HardwareAddr, vip netip.Addr) ([][]byte, error) {
	if !vip.Is4() {
		return nil, ErrNotIPv4
	}
	var frames [][]byte
	for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		p, err := arp.NewPacket(op, mac, vip, ethernet.Broadcast, vip)
		if err != nil {
			return nil, err
		}
		pb, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		f := &ethernet.Frame{
			Destination: ethernet.Broadcast,
			Source:      mac,
			EtherType:   ethernet.EtherTypeARP,
			Payload:     pb,
		}
		fb, err := f.MarshalBinary()
		if err != nil {
			return nil, err
		}
		// ethernet pads to the 60-byte minimum; send the 42 bytes
		// keepalived sends and let the driver pad on the wire.
		frames = append(frames, fb[:ethHeaderLen+len(pb)])
	}
	return frames, nil
}

// DefaultTOS is the TOS byte of VRRP adverts: DSCP CS6 (network control),
// what keepalived sends.
const DefaultTOS = 0xc0

// VRRPTTL is the TTL (hop limit) VRRP packets are sent with and, in
// multicast mode, must arrive with (RFC 9568 section 7.1).
const VRRPTTL = 255

// vrrpProto is the IP protocol number of VRRP.
const vrrpProto = 112

// VRRPGroup returns the IPv4 VRRP multicast group, 224.0.0.18.
func VRRPGroup() netip.Addr { return netip.AddrFrom4([4]byte{224, 0, 0, 18}) }

// VRRPGroup6 returns the IPv6 VRRP multicast group, ff02::12.
func VRRPGroup6() netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})
}

// VRRPConfig configures a VRRP socket.
type VRRPConfig struct {
	// Interface is the interface adverts are sent and received on.
	Interface string
	// Source, when valid, is the source address of sent adverts (set per
	// packet with IP_PKTINFO or IPV6_PKTINFO). It should be the node's own
	// address so that adverts never come from the VIP. When invalid, the
	// kernel chooses, which for a /32 VIP is the interface's first (node)
	// address. An IPv6 Source selects IPv6. Over IPv6 in multicast mode it
	// must be the interface's link-local address (RFC 9568 section
	// 5.1.2.1; see LinkLocal); in unicast mode, the node's own address.
	Source netip.Addr
	// IPv6 selects VRRP over IPv6 (group ff02::12) when Source is not set;
	// an IPv6 Source implies it.
	IPv6 bool
	// Unicast sends to every address in Peers instead of the multicast
	// group, and does not join the group.
	Unicast bool
	// Peers are the unicast destinations; required when Unicast is set.
	Peers []netip.Addr
	// TOS is the IPv4 TOS byte (IPv6 traffic class) of sent adverts; 0
	// means DefaultTOS.
	TOS int
}

// ipv6 reports whether cfg asks for VRRP over IPv6.
func (cfg VRRPConfig) ipv6() bool { return cfg.IPv6 || cfg.Source.Is6() }

// VRRPConn is a raw IPv4 or IPv6 socket for VRRP (IP protocol 112). The
// kernel builds the IP header (TTL or hop limit 255, TOS from VRRPConfig,
// DF clear as keepalived); ReadFrom strips it and reports the fields the
// receiver must check. Close unblocks a pending ReadFrom.
type VRRPConn struct {
	ifname string
	ifi    *net.Interface
	p      *ipv4.PacketConn // IPv4; nil over IPv6
	wcm    *ipv4.ControlMessage
	p6     *ipv6.PacketConn // IPv6; nil over IPv4
	wcm6   *ipv6.ControlMessage
	dsts   []net.Addr
}

// ReadFrom reads one VRRP packet into b and returns the VRRP payload length
// (IP header stripped), the IP source and destination, and the TTL the
// packet arrived with. ttl is -1 if the kernel did not report it. The
// caller drops packets with ttl != 255 (multicast) and packets whose src is
// one of its own addresses.
func (c *VRRPConn) ReadFrom(b []byte) (n int, src, dst netip.Addr, ttl int, err error) {
	if c.p6 != nil {
		return c.readFrom6(b)
	}
	n, cm, from, err := c.p.ReadFrom(b)
	if err != nil {
		return 0, netip.Addr{}, netip.Addr{}, 0, fmt.Errorf("netcfg: vrrp read on %s: %w", c.ifname, err)
	}
	if a, ok := from.(*net.IPAddr); ok {
		src, _ = netip.AddrFromSlice(a.IP)
		src = src.Unmap()
	}
	ttl = -1
	if cm != nil {
		dst, _ = netip.AddrFromSlice(cm.Dst)
		dst = dst.Unmap()
		ttl = cm.TTL
	}
	return n, src, dst, ttl, nil
}

// readFrom6 is ReadFrom over IPv6: the raw IPv6 socket delivers the VRRP
// message without the IPv6 header; the hop limit and destination come
// from IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO. A link-local source loses
// its zone: the socket is bound to one interface.
func (c *VRRPConn) readFrom6(b []byte) (n int, src, dst netip.Addr, ttl int, err error) {
	n, cm, from, err := c.p6.ReadFrom(b)
	if err != nil {
		return 0, netip.Addr{}, netip.Addr{}, 0, fmt.Errorf("netcfg: vrrp read on %s: %w", c.ifname, err)
	}
	if a, ok := from.(*net.IPAddr); ok {
		src, _ = netip.AddrFromSlice(a.IP)
	}
	ttl = -1
	if cm != nil {
		dst, _ = netip.AddrFromSlice(cm.Dst)
		ttl = cm.HopLimit
	}
	return n, src, dst, ttl, nil
}

// Send sends payload, a marshalled VRRP message, to 224.0.0.18 or, in
// unicast mode, to every peer. A peer that cannot be reached does not stop
// the others; their errors are joined.
func (c *VRRPConn) Send(payload []byte) error {
	var errs []error
	for _, dst := range c.dsts {
		if err := c.write(payload, dst); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: vrrp send to %s on %s: %w", dst, c.ifname, err))
		}
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
	if err := c.write(payload, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("netcfg: vrrp send to %s on %s: %w", dst, c.ifname, err)
	}
	return nil
}

func (c *VRRPConn) write(payload []byte, dst net.Addr) error {
	var err error
	if c.p6 != nil {
		_, err = c.p6.WriteTo(payload, c.wcm6, dst)
	} else {
		_, err = c.p.WriteTo(payload, c.wcm, dst)
	}
	return err
}

// SetReadDeadline sets the deadline for ReadFrom.
func (c *VRRPConn) SetReadDeadline(t time.Time) error {
	if c.p6 != nil {
		return c.p6.SetReadDeadline(t)
	}
	return c.p.SetReadDeadline(t)
}

// Close closes the socket, leaving the multicast group.
func (c *VRRPConn) Close() error {
	if c.p6 != nil {
		return c.p6.Close()
	}
	return c.p.Close()
}

// validate checks cfg and returns the destinations to send to.
func (cfg VRRPConfig) validate() ([]net.Addr, error) {
	if cfg.Interface == "" {
		return nil, fmt.Errorf("%w: no interface", ErrInvalidConfig)
	}
	v6 := cfg.ipv6()
	if cfg.Source.IsValid() && !v6 && !cfg.Source.Is4() {
		return nil, fmt.Errorf("%w: source %s: %w", ErrInvalidConfig, cfg.Source, ErrNotIPv4)
	}
	if v6 && cfg.Source.IsValid() && (!cfg.Source.Is6() || cfg.Source.Is4In6() || cfg.Source.IsMulticast() || cfg.Source.IsUnspecified()) {
		return nil, fmt.Errorf("%w: source %s is not an IPv6 unicast address", ErrInvalidConfig, cfg.Source)
	}
	if cfg.TOS < 0 || cfg.TOS > 0xff {
		return nil, fmt.Errorf("%w: tos %d out of range", ErrInvalidConfig, cfg.TOS)
	}
	if !cfg.Unicast {
		if v6 {
			return []net.Addr{&net.IPAddr{IP: VRRPGroup6().AsSlice()}}, nil
		}
		return []net.Addr{&net.IPAddr{IP: VRRPGroup().AsSlice()}}, nil
	}
	if len(cfg.Peers) == 0 {
		return nil, fmt.Errorf("%w: unicast without peers", ErrInvalidConfig)
	}
	dsts := make([]net.Addr, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		if v6 {
			if !p.Is6() || p.Is4In6() || p.IsMulticast() || p.IsUnspecified() {
				return nil, fmt.Errorf("%w: peer %s is not an IPv6 unicast address", ErrInvalidConfig, p)
			}
			dsts = append(dsts, &net.IPAddr{IP: p.AsSlice()})
			continue
		}
		if !p.Is4() || p.IsMulticast() || p.IsUnspecified() {
			return nil, fmt.Errorf("%w: peer %s is not an IPv4 unicast address", ErrInvalidConfig, p)
		}
		dsts = append(dsts, &net.IPAddr{IP: p.AsSlice()})
	}
	return dsts, nil
}

// InterfaceAddrs returns the addresses configured on ifname, IPv4 and IPv6,
// in the order the kernel lists them (for IPv4 the node's primary address
// comes before a VIP added later).
func InterfaceAddrs(ifname string) ([]netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("netcfg: addresses of %s: %w: %w", ifname, ErrNoInterface, err)
	}
	as, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("netcfg: addresses of %s: %w", ifname, err)
	}
	return toAddrs(as), nil
}

// LocalAddrs returns every address configured on the host, so the daemon
// can pick which configured node it is by address.
func LocalAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("netcfg: local addresses: %w", err)
	}
	return toAddrs(as), nil
}

func toAddrs(as []net.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, addr.Unmap())
		}
	}
	return out
}

// Sysctls reads and writes kernel parameters. Names use the sysctl(8)
// dotted form ("net.ipv4.ip_forward") or the path form under /proc/sys
// ("net/ipv4/conf/eth0.100/arp_ignore"); use the path form, or
// InterfaceSysctl, when an interface name contains a dot.
type Sysctls interface {
	Get(name string) (string, error)
	// Set writes value unless the parameter already holds it.
	Set(name, value string) error
}

// NewSysctls returns Sysctls backed by /proc/sys.
func NewSysctls() Sysctls { return procSysctls{root: "/proc/sys"} }

// InterfaceSysctl returns the path-form name of a per-interface IPv4
// parameter, e.g. InterfaceSysctl("eth0", "promote_secondaries"), which
// vipd wants set to 1 so that removing the node's primary address does not
// take a secondary VIP with it.
func InterfaceSysctl(ifname, key string) string {
	return "net/ipv4/conf/" + ifname + "/" + key
}

type procSysctls struct{ root string }

func (s procSysctls) path(name string) (string, error) {
	if !strings.Contains(name, "/") {
		name = strings.ReplaceAll(name, ".", "/")
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("%w: sysctl name %q", ErrInvalidConfig, name)
		}
	}
	return filepath.Join(s.root, name), nil
}

func (s procSysctls) Get(name string) (string, error) {
	p, err := s.path(name)
	if err != nil {
		return "", fmt.Errorf("netcfg: sysctl get %s: %w", name, err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("netcfg: sysctl get %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s procSysctls) Set(name, value string) error {
	cur, err := s.Get(name)
	if err != nil {
		return err
	}
	if cur == value {
		return nil
	}
	p, _ := s.path(name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("netcfg: sysctl set %s=%s: %w", name, value, err)
	}
	return nil
}
