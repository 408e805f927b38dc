package netcfg

import (
	"fmt"
	"net"
	"net/netip"
)

// Addresses adds, removes and queries VIPs on an interface. Operations are
// idempotent: adding a VIP that is already there, or removing one that is
// not, succeeds.
type Addresses interface {
	// AddVIP adds p to ifname as an address that is never chosen as the
	// node's source address: a /32 (or /128) as given, or, for a shorter
	// prefix, with IFA_F_NOPREFIXROUTE so the subnet route is not
	// duplicated. On an interface that is up it returns once the kernel
	// delivers packets for p locally (for IPv6 that happens shortly after
	// the address is added; AddVIP waits for it, up to a second).
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

// LocalAddrs returns every address configured on the host, so the daemon
// can pick which configured node it is by address.
func LocalAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("netcfg: local addresses: %w", err)
	}
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
	return out, nil
}
