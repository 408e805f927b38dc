package doctor

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The sysctls a takeover depends on. For rp_filter, arp_ignore,
// arp_announce and accept_dad the kernel uses the larger of the "all" value
// and the interface's (IN_DEV_MAXCONF; ipv6 accept_dad likewise), so that
// is what is judged, and a fix names the key that is too high.

// sysctlName is the name to give sysctl(8): dotted, or the path form when
// the interface name has a dot (eth0.100).
func sysctlName(family, ifname, key string) string {
	if strings.Contains(ifname, ".") {
		return "net/" + family + "/conf/" + ifname + "/" + key
	}
	return "net." + family + ".conf." + ifname + "." + key
}

// confValue reads key for "all" and ifname and returns the larger, and the
// names of the keys holding it.
func confValue(get func(string) (string, error), family, ifname, key string) (int, []string, error) {
	val, names := -1, []string(nil)
	for _, scope := range []string{"all", ifname} {
		s, err := get("net/" + family + "/conf/" + scope + "/" + key)
		if err != nil {
			return 0, nil, err
		}
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %q is not a number", key, s)
		}
		switch {
		case v > val:
			val, names = v, []string{sysctlName(family, scope, key)}
		case v == val:
			names = append(names, sysctlName(family, scope, key))
		}
	}
	return val, names, nil
}

// persist is the tail of every sysctl fix.
const persist = " (and the same in a file under /etc/sysctl.d/ so it survives a reboot)"

// sysctlHost is what the sysctl checks read.
type sysctlHost struct {
	get     func(string) (string, error)
	routeIf func(netip.Addr) (string, error)
	links   []Link
	// quiet leaves out what could not be read (status's live subset).
	quiet bool
}

// checkSysctls judges the interface's sysctls for the instance.
func checkSysctls(h sysctlHost, node Node, peers []Node, in Instance) []Finding {
	var out []Finding
	add := func(fs []Finding, err error, what string) {
		if err != nil {
			if !h.quiet {
				out = append(out, couldNot(CheckSysctl, in.Name, "read "+what+" of "+in.Interface, err))
			}
			return
		}
		out = append(out, fs...)
	}
	if in.IPv6() {
		fs, err := ipv6Sysctls(h, in)
		add(fs, err, "the IPv6 sysctls")
		return out
	}
	fs, err := rpFilter(h, peers, in)
	add(fs, err, "rp_filter")
	fs, err = arpIgnore(h, in)
	add(fs, err, "arp_ignore")
	fs, err = arpAnnounce(h, in)
	add(fs, err, "arp_announce")
	return out
}

// rpFilter: strict reverse-path filtering (1) drops a packet that arrives
// on an interface the route back to its source does not leave by.
func rpFilter(h sysctlHost, peers []Node, in Instance) ([]Finding, error) {
	v, names, err := confValue(h.get, "ipv4", in.Interface, "rp_filter")
	if err != nil || v != 1 {
		return nil, err
	}
	fix := fmt.Sprintf("sysctl -w %s=2 (loose: the source only has to be routable, by any interface)%s", sysctlName("ipv4", in.Interface, "rp_filter"), persist)
	var out []Finding
	for _, p := range peers {
		via, err := h.routeIf(p.Addr)
		if err != nil || via == in.Interface {
			continue
		}
		out = append(out, finding(CheckSysctl, SevError, in.Name,
			fmt.Sprintf("%s = 1 (strict) and the route to %s (%s) leaves by %s, not %s: the kernel drops %s's adverts arriving on %s before vipd sees them, and both nodes become MASTER",
				strings.Join(names, ", "), p.Name, p.Addr, via, in.Interface, p.Name, in.Interface), fix))
	}
	if len(out) > 0 {
		return out, nil
	}
	return []Finding{finding(CheckSysctl, SevWarning, in.Name,
		fmt.Sprintf("%s = 1 (strict): a packet is dropped unless the route back to its source leaves by %s; on one flat segment that holds, but an advert or a client connection arriving by an asymmetric path (a second NIC, a routed peer, policy routing) is dropped silently, and a lost advert means a split brain",
			strings.Join(names, ", "), in.Interface), fix)}, nil
}

// arpIgnore: whether the node answers ARP requests for the VIP at all.
// vipd puts the VIP on the VRRP interface, where the requests arrive, so
// 1 and 3 answer; 2 also wants the asker in a subnet of that interface;
// 8 never answers.
func arpIgnore(h sysctlHost, in Instance) ([]Finding, error) {
	v, names, err := confValue(h.get, "ipv4", in.Interface, "arp_ignore")
	if err != nil {
		return nil, err
	}
	fix := fmt.Sprintf("set %s to 0 or 1 (1 answers for addresses on the interface asked, which the VIP is)%s", strings.Join(names, " and "), persist)
	switch v {
	case 8:
		return []Finding{finding(CheckSysctl, SevError, in.Name,
			fmt.Sprintf("%s = 8: this host answers no ARP request at all, so once the gratuitous ARP of a takeover has aged out of their caches, clients and routers cannot find the VIP on it", strings.Join(names, ", ")), fix)}, nil
	case 2:
		l, _ := findLink(h.links, in.Interface)
		for _, vip := range in.VIPs {
			covered := false
			for _, a := range l.Addrs {
				if a.Prefix.Bits() < a.Prefix.Addr().BitLen() && a.Prefix.Masked().Contains(vip.Addr()) {
					covered = true
				}
			}
			if !covered {
				return []Finding{finding(CheckSysctl, SevError, in.Name,
					fmt.Sprintf("%s = 2: ARP for %s is answered only when asker and VIP share a subnet configured on %s, and no subnet there holds the VIP: nobody gets an answer for it", strings.Join(names, ", "), vip.Addr(), in.Interface), fix)}, nil
			}
		}
		return []Finding{finding(CheckSysctl, SevWarning, in.Name,
			fmt.Sprintf("%s = 2: ARP for the VIP is answered only to hosts inside a subnet configured on %s; a client or router on the segment with an address outside it cannot find the VIP", strings.Join(names, ", "), in.Interface), fix)}, nil
	}
	return nil, nil
}

// arpAnnounce: with 0 or 1 a packet sent from the VIP makes the kernel ask
// ARP with the VIP as sender, and every host that hears it points its cache
// for the VIP at this node. During a handover the old master still has the
// VIP and still answers clients for a moment: a routine ARP refresh then
// pulls the segment back to the node that is letting go. 2 asks with the
// node's own address.
func arpAnnounce(h sysctlHost, in Instance) ([]Finding, error) {
	v, names, err := confValue(h.get, "ipv4", in.Interface, "arp_announce")
	if err != nil || v == 2 {
		return nil, err
	}
	return []Finding{finding(CheckSysctl, SevInfo, in.Name,
		fmt.Sprintf("%s = %d: ARP requests this host sends for packets from the VIP carry the VIP as sender; one sent by the old master during a handover points the segment's caches back at it until the next gratuitous ARP (garp_refresh)", strings.Join(names, ", "), v),
		fmt.Sprintf("vipd run sets it to 2 when it starts; to have it before, sysctl -w %s=2 (ask with the node's own address)%s", sysctlName("ipv4", in.Interface, "arp_announce"), persist))}, nil
}

// ipv6Sysctls: IPv6 must be on, and duplicate address detection must
// neither be off (over multicast the link-local address is the advert
// source and the node's identity) nor disable IPv6 on a duplicate. vipd
// adds IPv6 VIPs with nodad, so DAD never delays a takeover itself.
func ipv6Sysctls(h sysctlHost, in Instance) ([]Finding, error) {
	var out []Finding
	for _, scope := range []string{"all", in.Interface} {
		s, err := h.get("net/ipv6/conf/" + scope + "/disable_ipv6")
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(s) == "1" {
			out = append(out, finding(CheckSysctl, SevError, in.Name,
				fmt.Sprintf("%s = 1: IPv6 is off, so the IPv6 VIPs and VRRP over IPv6 cannot work", sysctlName("ipv6", scope, "disable_ipv6")),
				fmt.Sprintf("sysctl -w %s=0%s", sysctlName("ipv6", scope, "disable_ipv6"), persist)))
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	v, names, err := confValue(h.get, "ipv6", in.Interface, "accept_dad")
	if err != nil {
		return nil, err
	}
	fix := fmt.Sprintf("sysctl -w %s=1%s", sysctlName("ipv6", in.Interface, "accept_dad"), persist)
	switch {
	case v >= 2:
		out = append(out, finding(CheckSysctl, SevWarning, in.Name,
			fmt.Sprintf("%s = %d: a duplicate of the MAC-based link-local address (a cloned VM) disables IPv6 on %s altogether, the VIPs and VRRP with it", strings.Join(names, ", "), v, in.Interface), fix))
	case v == 0 && !in.Receive.Unicast:
		out = append(out, finding(CheckSysctl, SevWarning, in.Name,
			fmt.Sprintf("%s = 0: duplicate address detection is off, so two nodes with the same link-local address (cloned VMs) go unnoticed; over IPv6 multicast the adverts come from it, each node drops the other's as its own, and both become MASTER", strings.Join(names, ", ")), fix))
	}
	return out, nil
}
