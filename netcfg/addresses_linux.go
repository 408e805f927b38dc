//go:build linux

package netcfg

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
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
	if p.Addr().Is6() && linkUp(l.Attrs()) {
		awaitLocal(a.h, p.Addr(), localRouteWait)
	}
	return nil
}

// localRouteWait bounds how long AddVIP waits for the kernel to deliver an
// IPv6 VIP locally. It takes well under a millisecond on an idle host and
// was seen to take over 600 ms on a loaded one (two cores, tests under
// -race).
const localRouteWait = time.Second

// awaitLocal waits, at most for d, until the kernel routes addr locally.
// For IPv6 the kernel installs the local route of a new address from a
// workqueue (addrconf_dad_work, even with IFA_F_NODAD), after RTM_NEWADDR
// has returned. Until then the VIP takes no packets: an incoming SYN
// matches the on-link route and is dropped, and a local connection to it
// leaves through the interface and is stuck on a neighbour that never
// answers. IPv4 installs its local route before RTM_NEWADDR returns.
// An interface that is down has no local route until it comes up, so the
// caller waits only on one that is up; when d runs out the address is
// still added and the kernel finishes on its own.
func awaitLocal(h *netlink.Handle, addr netip.Addr, d time.Duration) {
	deadline := time.Now().Add(d)
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 20*time.Millisecond) {
		rs, err := h.RouteGet(addr.AsSlice())
		if err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			return
		}
		if time.Now().Add(pause).After(deadline) {
			return
		}
		time.Sleep(pause)
	}
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
