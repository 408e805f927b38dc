//go:build linux

package netcfg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// NewAddresses returns the netlink implementation of Addresses. It holds
// its own netlink socket in the calling process's network namespace.
func NewAddresses() (Addresses, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netcfg: netlink handle: %w", err)
	}
	return &nlAddresses{h: h}, nil
}

type nlAddresses struct{ h *netlink.Handle }

func (a *nlAddresses) Close() error {
	a.h.Close()
	return nil
}

// link resolves ifname, reporting a missing interface as ErrNoInterface.
func link(h *netlink.Handle, ifname string) (netlink.Link, error) {
	l, err := h.LinkByName(ifname)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, ErrNoInterface
		}
		return nil, err
	}
	return l, nil
}

// vipAddr is the netlink form of a VIP.
func vipAddr(p netip.Prefix) (*netlink.Addr, error) {
	if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return nil, fmt.Errorf("%w: prefix %s", ErrInvalidConfig, p)
	}
	bits := p.Addr().BitLen()
	a := &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)},
		Scope: unix.RT_SCOPE_UNIVERSE,
	}
	if p.Bits() < bits {
		// The node's own address already installed the subnet route;
		// a second copy would outlive the node address and confuse
		// operators reading "ip route".
		a.Flags |= unix.IFA_F_NOPREFIXROUTE
	}
	if p.Addr().Is6() {
		// The VIP moved here because a peer gave it up; duplicate address
		// detection would hold it tentative (unusable) for a second.
		a.Flags |= unix.IFA_F_NODAD
	}
	return a, nil
}

func (a *nlAddresses) AddVIP(ifname string, p netip.Prefix) error {
	if err := a.addVIP(ifname, p); err != nil {
		return fmt.Errorf("netcfg: add %s on %s: %w", p, ifname, err)
	}
	return nil
}

func (a *nlAddresses) addVIP(ifname string, p netip.Prefix) error {
	addr, err := vipAddr(p)
	if err != nil {
		return err
	}
	l, err := link(a.h, ifname)
	if err != nil {
		return err
	}
	if p.Addr().Is6() {
		// Preferred lifetime 0 (deprecated), valid forever: RFC 6724
		// source selection (rule 3, avoid deprecated addresses) then never
		// picks the VIP as the node's source address, while it still
		// accepts connections and serves sockets bound to it. IPv4 has no
		// such flag; a /32 listed after the node address does the same.
		addr.PreferedLft = 0
		forever := uint32(math.MaxUint32) // INFINITY_LIFE_TIME
		addr.ValidLft = int(forever)
	}
	if err := a.h.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

func (a *nlAddresses) RemoveVIP(ifname string, p netip.Prefix) error {
	if err := a.removeVIP(ifname, p); err != nil {
		return fmt.Errorf("netcfg: remove %s on %s: %w", p, ifname, err)
	}
	return nil
}

func (a *nlAddresses) removeVIP(ifname string, p netip.Prefix) error {
	addr, err := vipAddr(p)
	if err != nil {
		return err
	}
	l, err := link(a.h, ifname)
	if errors.Is(err, ErrNoInterface) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := a.h.AddrDel(l, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return err
	}
	return nil
}

func (a *nlAddresses) HasVIP(ifname string, p netip.Prefix) (bool, error) {
	has, err := a.hasVIP(ifname, p)
	if err != nil {
		return false, fmt.Errorf("netcfg: look up %s on %s: %w", p, ifname, err)
	}
	return has, nil
}

func (a *nlAddresses) hasVIP(ifname string, p netip.Prefix) (bool, error) {
	if _, err := vipAddr(p); err != nil {
		return false, err
	}
	l, err := link(a.h, ifname)
	if err != nil {
		return false, err
	}
	return hasPrefix(a.h, l.Attrs().Index, p)
}

func hasPrefix(h *netlink.Handle, index int, p netip.Prefix) (bool, error) {
	family := netlink.FAMILY_V4
	if p.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: index}}, family)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if got, ok := ipNetPrefix(a.IPNet); ok && got == p {
			return true, nil
		}
	}
	return false, nil
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones), true
}

// resubscribeBackoff bounds how fast a watcher re-subscribes after the
// kernel dropped its netlink socket (ENOBUFS when events overflowed).
const (
	resubscribeBackoff = 100 * time.Millisecond
	maxResubscribes    = 10 // consecutive failures before giving up
)

// watch runs one netlink subscription at a time until ctx is done. After
// each (re-)subscription, sync reconciles with the current state so that
// events lost before or between subscriptions are not lost for the caller.
func watch[T any](ctx context.Context, subscribe func(chan T, chan struct{}) error, sync func() error, handle func(T)) error {
	failures := 0
	for {
		ch := make(chan T, 64)
		done := make(chan struct{})
		err := subscribe(ch, done)
		if err == nil {
			err = sync()
		}
		if err == nil {
			failures = 0
			err = func() error {
				for {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case u, ok := <-ch:
						if !ok {
							return nil // socket dropped: resubscribe
						}
						handle(u)
					}
				}
			}()
		}
		close(done)
		// Drain so the library's reader goroutine, possibly blocked on a
		// send, sees the closed socket and exits. The socket is closed, so
		// this ends after at most the buffered messages.
		for range ch {
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			if failures >= maxResubscribes {
				return err
			}
		}
		t := time.NewTimer(resubscribeBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// WatchVIPs calls removed(p) whenever one of vips disappears from ifname
// (an RTM_DELADDR for it), until ctx is done; it then returns nil. After
// subscribing, and again after any re-subscription, it also reports every
// VIP that is already missing, so a removal between AddVIP and WatchVIPs is
// not lost. Callers therefore start it after adding the VIPs and cancel it
// before removing them. removed runs on the calling goroutine and should
// not block for long.
func WatchVIPs(ctx context.Context, ifname string, vips []netip.Prefix, removed func(netip.Prefix)) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netcfg: watch addresses on %s: %w", ifname, err)
	}
	defer h.Close()
	l, err := link(h, ifname)
	if err != nil {
		return fmt.Errorf("netcfg: watch addresses on %s: %w", ifname, err)
	}
	index := l.Attrs().Index
	want := make(map[netip.Prefix]bool, len(vips))
	for _, p := range vips {
		want[p] = true
	}
	subscribe := func(ch chan netlink.AddrUpdate, done chan struct{}) error {
		return netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
			// Errors end the subscription (the channel closes) and watch
			// re-subscribes; nothing to do here.
			ErrorCallback: func(error) {},
		})
	}
	sync := func() error {
		for _, p := range vips {
			has, err := hasPrefix(h, index, p)
			if err != nil {
				return err
			}
			if !has {
				removed(p)
			}
		}
		return nil
	}
	handle := func(u netlink.AddrUpdate) {
		if u.NewAddr || u.LinkIndex != index {
			return
		}
		if p, ok := ipNetPrefix(&u.LinkAddress); ok && want[p] {
			removed(p)
		}
	}
	if err := watch(ctx, subscribe, sync, handle); err != nil {
		return fmt.Errorf("netcfg: watch addresses on %s: %w", ifname, err)
	}
	return nil
}

// linkUp is the operational state the interface tracker wants: the
// interface is administratively up and the kernel considers it running
// (carrier present and RFC 2863 operstate up or unknown).
func linkUp(a *netlink.LinkAttrs) bool {
	return a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_RUNNING != 0
}

// WatchLink calls changed with ifname's operational state once at the
// start and then on every change, until ctx is done; it then returns nil.
// A missing, deleted or renamed interface is down; one created later under
// the name is picked up. changed runs on the calling goroutine.
func WatchLink(ctx context.Context, ifname string, changed func(up bool)) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netcfg: watch link %s: %w", ifname, err)
	}
	defer h.Close()
	var (
		reported bool
		last     bool
		index    int
	)
	report := func(up bool) {
		if reported && up == last {
			return
		}
		reported, last = true, up
		changed(up)
	}
	subscribe := func(ch chan netlink.LinkUpdate, done chan struct{}) error {
		return netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
			ErrorCallback: func(error) {},
		})
	}
	sync := func() error {
		l, err := link(h, ifname)
		if errors.Is(err, ErrNoInterface) {
			index = 0
			report(false)
			return nil
		}
		if err != nil {
			return err
		}
		index = l.Attrs().Index
		report(linkUp(l.Attrs()))
		return nil
	}
	handle := func(u netlink.LinkUpdate) {
		a := u.Attrs()
		switch {
		case a.Name == ifname && u.Header.Type == unix.RTM_DELLINK:
			index = 0
			report(false)
		case a.Name == ifname:
			index = a.Index
			report(linkUp(a))
		case index != 0 && a.Index == index:
			// Renamed away from ifname.
			index = 0
			report(false)
		}
	}
	if err := watch(ctx, subscribe, sync, handle); err != nil {
		return fmt.Errorf("netcfg: watch link %s: %w", ifname, err)
	}
	return nil
}

// NewAnnouncer opens an AF_PACKET socket on ifname for sending gratuitous
// ARP. The socket has a drop-all BPF filter: it only sends, so it must not
// queue every ARP frame on the segment.
func NewAnnouncer(ifname string) (Announcer, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("netcfg: announcer on %s: %w: %w", ifname, ErrNoInterface, err)
	}
	dropAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, fmt.Errorf("netcfg: announcer on %s: %w", ifname, err)
	}
	pc, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, &packet.Config{Filter: dropAll})
	if err != nil {
		return nil, fmt.Errorf("netcfg: announcer on %s: %w", ifname, err)
	}
	a, err := NewAnnouncerConn(ifi, pc)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &dualAnnouncer{garp: a, ifi: ifi}, nil
}

// dualAnnouncer sends gratuitous ARP for IPv4 VIPs and unsolicited
// neighbour advertisements for IPv6 VIPs. The ICMPv6 socket is opened on
// the first IPv6 announcement, so a node with only IPv4 VIPs never needs
// IPv6 on the interface, and one whose link-local address was still
// tentative at start-up gets it on the next attempt.
type dualAnnouncer struct {
	garp Announcer
	ifi  *net.Interface
	mu   sync.Mutex
	na   *ndp.Conn
}

func (a *dualAnnouncer) Announce(vip netip.Addr) error {
	if vip.Is4() || vip.Is4In6() {
		return a.garp.Announce(vip.Unmap())
	}
	if err := a.announce6(vip); err != nil {
		return fmt.Errorf("netcfg: announce %s on %s: %w", vip, a.ifi.Name, err)
	}
	return nil
}

// announce6 sends one unsolicited neighbour advertisement (RFC 4861
// section 7.2.6) for vip to all-nodes ff02::1, from the interface's
// link-local address with hop limit 255: override set, solicited and
// router clear, target link-layer address option = the interface's MAC.
// Linux neighbours update an existing entry for vip to that MAC (STALE,
// then confirmed by the next unicast exchange).
func (a *dualAnnouncer) announce6(vip netip.Addr) error {
	if !vip.Is6() || vip.Zone() != "" {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, vip)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.na == nil {
		c, _, err := ndp.Listen(a.ifi, ndp.LinkLocal)
		if err != nil {
			return fmt.Errorf("ndp socket: %w", err)
		}
		// Send only: queue no ICMPv6 traffic on this socket.
		var f ipv6.ICMPFilter
		f.SetAll(true)
		if err := c.SetICMPFilter(&f); err != nil {
			c.Close()
			return fmt.Errorf("icmp filter: %w", err)
		}
		a.na = c
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: vip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: a.ifi.HardwareAddr}},
	}
	return a.na.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes())
}

func (a *dualAnnouncer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	if a.na != nil {
		errs = append(errs, a.na.Close())
		a.na = nil
	}
	errs = append(errs, a.garp.Close())
	return errors.Join(errs...)
}

// LinkLocal returns the IPv6 link-local address of ifname, the source of
// VRRP adverts over IPv6 in multicast mode (RFC 9568 section 5.1.2.1) and
// so the address the tie-break compares. An address that failed duplicate
// address detection is skipped; one that is still tentative is returned
// only if there is no other (sending from it works once DAD completes).
func LinkLocal(ifname string) (netip.Addr, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("netcfg: link-local address of %s: %w", ifname, err)
	}
	defer h.Close()
	l, err := link(h, ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("netcfg: link-local address of %s: %w", ifname, err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("netcfg: link-local address of %s: %w", ifname, err)
	}
	var tentative netip.Addr
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !ip.IsLinkLocalUnicast() || a.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			if !tentative.IsValid() {
				tentative = ip
			}
			continue
		}
		return ip, nil
	}
	if tentative.IsValid() {
		return tentative, nil
	}
	return netip.Addr{}, fmt.Errorf("netcfg: link-local address of %s: %w: none configured", ifname, ErrInvalidConfig)
}

// ListenVRRP opens the VRRP socket described by cfg. In multicast mode it
// joins 224.0.0.18 on cfg.Interface only and turns multicast loopback off,
// so the node never hears itself; in unicast mode it sends to each peer.
// Either way the socket is bound to the device (SO_BINDTODEVICE), sends
// with TTL 255 and TOS cfg.TOS, and reports the received TTL and
// destination (IP_RECVTTL, IP_PKTINFO). It needs CAP_NET_RAW.
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
	tos := cfg.TOS
	if tos == 0 {
		tos = DefaultTOS
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoInterface, err)
	}
	if cfg.ipv6() {
		return listenVRRP6(cfg, ifi, tos, dsts)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// Receive only on, and send only from, this interface.
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, cfg.Interface); serr != nil {
				serr = fmt.Errorf("SO_BINDTODEVICE: %w", serr)
				return
			}
			// Only the groups this socket joined, not every group some
			// other process joined on the host.
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); serr != nil {
				serr = fmt.Errorf("IP_MULTICAST_ALL: %w", serr)
				return
			}
			// DF clear, as keepalived sends.
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT); serr != nil {
				serr = fmt.Errorf("IP_MTU_DISCOVER: %w", serr)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	// Not bound to an address: a raw socket bound to a unicast address
	// would no longer receive packets sent to the group.
	pc, err := lc.ListenPacket(context.Background(), fmt.Sprintf("ip4:%d", vrrpProto), "0.0.0.0")
	if err != nil {
		return nil, err
	}
	p := ipv4.NewPacketConn(pc)
	setup := []setupStep{
		{"control messages", func() error {
			return p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true)
		}},
		{"tos", func() error { return p.SetTOS(tos) }},
		{"ttl", func() error { return p.SetTTL(VRRPTTL) }},
		{"multicast ttl", func() error { return p.SetMulticastTTL(VRRPTTL) }},
		{"multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
		{"multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
	}
	if !cfg.Unicast {
		setup = append(setup, setupStep{"join 224.0.0.18", func() error {
			return p.JoinGroup(ifi, &net.IPAddr{IP: VRRPGroup().AsSlice()})
		}})
	}
	if err := runSetup(setup, p); err != nil {
		return nil, err
	}
	wcm := &ipv4.ControlMessage{IfIndex: ifi.Index}
	if cfg.Source.IsValid() {
		wcm.Src = cfg.Source.AsSlice()
	}
	return &VRRPConn{ifname: cfg.Interface, ifi: ifi, p: p, wcm: wcm, dsts: dsts}, nil
}

// listenVRRP6 opens the raw IPv6 socket for protocol 112: bound to the
// device, ff02::12 joined on that interface only (multicast mode), hop
// limit 255 for unicast and multicast, multicast loopback off, traffic
// class tos, and the received hop limit and destination reported
// (IPV6_RECVHOPLIMIT, IPV6_RECVPKTINFO).
//
// IPV6_CHECKSUM is deliberately not set: the runner puts the checksum
// (IPv6 pseudo-header included, vrrp.Checksum) in every advert and
// verifies received ones itself. With IPV6_CHECKSUM the kernel would
// overwrite the first and silently drop the second when bad, hiding them
// from the drop counters.
func listenVRRP6(cfg VRRPConfig, ifi *net.Interface, tos int, dsts []net.Addr) (*VRRPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, cfg.Interface); serr != nil {
				serr = fmt.Errorf("SO_BINDTODEVICE: %w", serr)
				return
			}
			// Only the groups this socket joined.
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0); serr != nil {
				serr = fmt.Errorf("IPV6_MULTICAST_ALL: %w", serr)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), fmt.Sprintf("ip6:%d", vrrpProto), "::")
	if err != nil {
		return nil, err
	}
	p := ipv6.NewPacketConn(pc)
	setup := []setupStep{
		{"control messages", func() error {
			return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
		}},
		{"traffic class", func() error { return p.SetTrafficClass(tos) }},
		{"hop limit", func() error { return p.SetHopLimit(VRRPTTL) }},
		{"multicast hop limit", func() error { return p.SetMulticastHopLimit(VRRPTTL) }},
		{"multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
		{"multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
	}
	if !cfg.Unicast {
		setup = append(setup, setupStep{"join ff02::12", func() error {
			return p.JoinGroup(ifi, &net.IPAddr{IP: VRRPGroup6().AsSlice()})
		}})
	}
	if err := runSetup(setup, p); err != nil {
		return nil, err
	}
	wcm := &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: VRRPTTL}
	if cfg.Source.IsValid() {
		wcm.Src = cfg.Source.WithZone("").AsSlice()
	}
	return &VRRPConn{ifname: cfg.Interface, ifi: ifi, p6: p, wcm6: wcm, dsts: dsts}, nil
}

// setupStep is one socket option applied to a new VRRP socket.
type setupStep struct {
	name string
	fn   func() error
}

// runSetup applies steps in order; on the first failure it closes c and
// names the step.
func runSetup(steps []setupStep, c io.Closer) error {
	for _, s := range steps {
		if err := s.fn(); err != nil {
			c.Close()
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}
