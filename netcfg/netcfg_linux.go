//go:build linux

package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
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
	return a, nil
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
	setup := []struct {
		name string
		fn   func() error
	}{
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
		setup = append(setup, struct {
			name string
			fn   func() error
		}{"join 224.0.0.18", func() error {
			return p.JoinGroup(ifi, &net.IPAddr{IP: VRRPGroup().AsSlice()})
		}})
	}
	for _, s := range setup {
		if err := s.fn(); err != nil {
			p.Close()
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	wcm := &ipv4.ControlMessage{IfIndex: ifi.Index}
	if cfg.Source.IsValid() {
		wcm.Src = cfg.Source.AsSlice()
	}
	return &VRRPConn{ifname: cfg.Interface, ifi: ifi, p: p, wcm: wcm, dsts: dsts}, nil
}
