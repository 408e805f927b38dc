package netcfg

import (
	"net/netip"

	"github.com/vishvananda/netlink"
)

// NeighMAC returns the link-layer address the host's neighbour table maps
// addr to on ifname ("" when there is none or it cannot be read): which
// host the kernel sends packets for addr to. The failover drill names the
// node that answered a probe with it.
func NeighMAC(ifname string, addr netip.Addr) string {
	ifi, err := netlink.LinkByName(ifname)
	if err != nil {
		return ""
	}
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := netlink.NeighList(ifi.Attrs().Index, fam)
	if err != nil {
		return ""
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == addr && len(n.HardwareAddr) > 0 {
			return n.HardwareAddr.String()
		}
	}
	return ""
}
