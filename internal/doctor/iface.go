package doctor

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// checkInterface: the instance's interface exists and is up, the node
// address is on it, and over IPv6 multicast a usable link-local address
// (the source of the adverts, RFC 9568 section 5.1.2.1) is too.
func checkInterface(links []Link, node Node, in Instance) []Finding {
	l, ok := findLink(links, in.Interface)
	if !ok {
		var names []string
		for _, l := range links {
			names = append(names, l.Name)
		}
		return []Finding{finding(CheckInterface, SevError, in.Name,
			fmt.Sprintf("interface %s does not exist (this host has %s)", in.Interface, strings.Join(names, ", ")),
			"set interface in [vrrp] (or this instance, or this [[node]]) to the interface on the VIP's segment")}
	}
	var out []Finding
	switch {
	case !l.AdminUp:
		out = append(out, finding(CheckInterface, SevError, in.Name,
			fmt.Sprintf("interface %s is down: vipd would stay in FAULT and never take the VIP", l.Name),
			fmt.Sprintf("ip link set %s up (and make it come up at boot)", l.Name)))
	case !l.OperUp:
		out = append(out, finding(CheckInterface, SevError, in.Name,
			fmt.Sprintf("interface %s has no carrier (link down): vipd would stay in FAULT and never take the VIP", l.Name),
			"plug the cable / attach the virtual NIC; `ip link show "+l.Name+"` must say LOWER_UP"))
	}
	if node.Addr.IsValid() && !hasAddr(l, node.Addr) {
		where := "on no interface of this host"
		for _, o := range links {
			if hasAddr(o, node.Addr) {
				where = "on " + o.Name + ", not on " + l.Name
			}
		}
		out = append(out, finding(CheckInterface, SevError, in.Name,
			fmt.Sprintf("node address %s ([[node]] %q) is %s: adverts and status beacons leave from it, and peers match it", node.Addr, node.Name, where),
			fmt.Sprintf("configure %s on %s, or correct [[node]] %q address (or run with --node NAME if this host is another node)", node.Addr, l.Name, node.Name)))
	}
	if in.IPv6() && !in.Receive.Unicast {
		out = append(out, linkLocal(l, in)...)
	}
	return out
}

// linkLocal: VRRP over IPv6 multicast sends from the link-local address.
func linkLocal(l Link, in Instance) []Finding {
	var tentative, failed bool
	for _, a := range l.Addrs {
		if !a.Prefix.Addr().IsLinkLocalUnicast() {
			continue
		}
		switch {
		case a.DADFailed:
			failed = true
		case a.Tentative:
			tentative = true
		default:
			return nil
		}
	}
	switch {
	case failed:
		return []Finding{finding(CheckInterface, SevError, in.Name,
			fmt.Sprintf("the IPv6 link-local address of %s failed duplicate address detection: another host on the segment has the same one (a cloned VM's MAC?), and VRRP over IPv6 sends from it", l.Name),
			"give this host's interface its own MAC (or link-local address), then bring the interface down and up")}
	case tentative:
		return []Finding{finding(CheckInterface, SevInfo, in.Name,
			fmt.Sprintf("the IPv6 link-local address of %s is still tentative (duplicate address detection runs for about a second after the link comes up)", l.Name),
			"run doctor again in a moment")}
	}
	return []Finding{finding(CheckInterface, SevError, in.Name,
		fmt.Sprintf("%s has no IPv6 link-local address: VRRP over IPv6 multicast sends its adverts from it (RFC 9568 section 5.1.2.1)", l.Name),
		fmt.Sprintf("enable IPv6 on %s (net.ipv6.conf.%s.disable_ipv6 = 0, addr_gen_mode not none), or set unicast = true", l.Name, l.Name))}
}

func findLink(links []Link, name string) (Link, bool) {
	i := slices.IndexFunc(links, func(l Link) bool { return l.Name == name })
	if i < 0 {
		return Link{}, false
	}
	return links[i], true
}

func hasAddr(l Link, a netip.Addr) bool {
	return slices.ContainsFunc(l.Addrs, func(x Addr) bool { return x.Prefix.Addr().WithZone("") == a.WithZone("") })
}
