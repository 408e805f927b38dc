package doctor

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// vrrpFindings judges the routers heard on the instance's VRID: a foreign
// router, and a peer whose adverts the running instance drops or that
// differs in interval, checksum form or addressing. The words are the
// runner's (vrrp.Checker's problems, vrrp.ForeignProblem) where it has
// them.
func vrrpFindings(plan Plan, in Instance, senders []*heard) []Finding {
	names := map[netip.Addr]string{}
	for _, n := range plan.Nodes {
		names[n.Addr] = n.Name
	}
	sort.Slice(senders, func(i, j int) bool { return senders[i].addr.Less(senders[j].addr) })
	var out []Finding
	for _, h := range senders {
		name, known := names[h.addr]
		if p := vrrp.ForeignProblem(h.addr, in.VRID, known); p.Seen != "" {
			out = append(out, finding(CheckVRRP, SevError, in.Name,
				p.Seen+fmt.Sprintf(" (VRRPv%d, priority %d, %s): each router takes the other's adverts for its own election", h.last.Advert.Version, h.last.Advert.Priority, addrs(h.last.Advert.Addresses)),
				p.Fix+fmt.Sprintf(" (vrid = %d here, virtual_router_id on a keepalived)", in.VRID)))
			continue
		}
		who := h.addr.String()
		if name != "" {
			who = fmt.Sprintf("%s (%s)", name, h.addr)
		}
		out = append(out, peerAdvertFindings(in, who, h)...)
	}
	return out
}

func addrs(as []netip.Addr) string {
	if len(as) == 0 {
		return "no addresses"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return "VIPs " + strings.Join(s, " ")
}

// peerAdvertFindings judges one peer's adverts.
func peerAdvertFindings(in Instance, who string, h *heard) []Finding {
	v := h.last
	var out []Finding
	switch {
	case v.Reason == vrrp.DropTTL:
		out = append(out, finding(CheckVRRP, SevError, in.Name,
			fmt.Sprintf("adverts from %s arrive with TTL %d, not 255: it is a routed hop away (or something on the path rewrites the TTL), and VRRP over multicast drops them (RFC 9568 section 7.1), so both nodes become MASTER", who, h.ttl),
			"put the nodes on one segment, or set unicast = true on every node (unicast adverts may cross a router)"))
		return out
	case v.Reason != "" && v.Problem.Seen != "":
		out = append(out, finding(CheckVRRP, SevError, in.Name,
			v.Problem.Seen+": this node drops its adverts, so both nodes become MASTER", v.Problem.Fix))
		return out
	case v.Reason != "":
		out = append(out, finding(CheckVRRP, SevError, in.Name,
			fmt.Sprintf("adverts from %s are dropped (%s): this node would not hear it, and both nodes become MASTER", who, v.Reason),
			"make the peer's [vrrp] settings match this node's"))
		return out
	case v.Problem.Seen != "":
		out = append(out, finding(CheckVRRP, SevWarning, in.Name, v.Problem.Seen, v.Problem.Fix))
	}
	ours := in.Receive.Machine.AdvertInterval
	if v.Advert.Version == 3 && ours != 0 && v.Advert.MaxAdvertInterval != ours {
		out = append(out, finding(CheckVRRP, SevWarning, in.Name,
			fmt.Sprintf("%s advertises every %v, this node every %v: backups adopt the master's interval (RFC 9568), so the election works, but a failover takes about three times the master's interval, not what this node's advert_interval promises", who, v.Advert.MaxAdvertInterval, ours),
			"set the same advert_interval on every node"))
	}
	mode := in.Receive.Checksum
	if mode == 0 {
		mode = vrrp.ChecksumPseudoHeader
	}
	if v.Advert.Version == 3 && !in.IPv6() && v.Checksum != 0 && v.Checksum != mode {
		out = append(out, finding(CheckVRRP, SevWarning, in.Name,
			fmt.Sprintf("%s sends the %s checksum form, this node %s: vipd accepts both, but a peer that is not vipd may drop this node's adverts (keepalived 2.2.7 accepts only pseudo-header)", who, v.Checksum, mode),
			"set checksum the same on every node (\"pseudo-header\", the default, is what keepalived sends)"))
	}
	switch {
	case in.Receive.Unicast && h.multicast && !h.unicast:
		out = append(out, finding(CheckVRRP, SevError, in.Name,
			fmt.Sprintf("%s sends its adverts to the multicast group, and this node has unicast = true: the running vipd does not join the group and never hears it", who),
			"set unicast the same on every node"))
	case !in.Receive.Unicast && h.unicast && !h.multicast:
		out = append(out, finding(CheckVRRP, SevError, in.Name,
			fmt.Sprintf("%s sends unicast adverts (unicast = true there), this node multicast: it does not hear this node's adverts", who),
			"set unicast the same on every node"))
	}
	return out
}

// peerFindings: every other node must be heard within the window, by an
// advert on some instance or a status beacon (a BACKUP sends no adverts,
// but every vipd sends a beacon each second); a node whose beacon says it
// is MASTER must be heard advertising. With multicast, the usual cause of
// silence is a network that drops multicast: the hint is unicast = true.
//
// listened names the instances whose adverts were listened for; beaconed
// says the status port was.
func peerFindings(plan Plan, tables map[string]*heardTable, beacons map[netip.Addr]Beacon, window time.Duration, listened map[string]bool, beaconed bool) []Finding {
	if len(listened) == 0 && !beaconed {
		return nil // nothing could be heard: the checks that failed say why
	}
	multicast := false
	for _, in := range plan.Instances {
		multicast = multicast || !in.Receive.Unicast
	}
	fresh := map[string]bool{}
	if plan.Running != nil {
		for _, p := range plan.Running.Peers {
			if p.Fresh {
				fresh[p.Name] = true
			}
		}
	}
	var out []Finding
	for _, n := range plan.Nodes {
		if n.Name == plan.Node.Name {
			continue
		}
		advertised := map[string]bool{}
		anyAdvert := false
		for _, in := range plan.Instances {
			if h := tables[in.Name].get(n.Addr); h != nil {
				advertised[in.Name] = true
				anyAdvert = true
			}
			if in.IPv6() && !in.Receive.Unicast {
				// Over IPv6 multicast adverts come from link-local
				// addresses, which name no node: any link-local
				// sender stands for the peers.
				for _, h := range tables[in.Name].list() {
					if h.addr.IsLinkLocalUnicast() {
						advertised[in.Name], anyAdvert = true, true
					}
				}
			}
		}
		b, hasBeacon := beacons[n.Addr]
		if !anyAdvert && !hasBeacon && !fresh[n.Name] {
			seen := fmt.Sprintf("nothing heard from %s (%s) in %v: no VRRP advert", n.Name, n.Addr, window)
			if plan.StatusPort != 0 {
				seen += fmt.Sprintf(", no status beacon (UDP %d)", plan.StatusPort)
			}
			fix := fmt.Sprintf("start vipd on %s; if it runs, the path between %s and %s drops IP protocol 112", n.Name, plan.Node.Addr, n.Addr)
			if plan.StatusPort != 0 {
				fix += fmt.Sprintf(" and UDP %d", plan.StatusPort)
			}
			if multicast {
				fix = fmt.Sprintf("if %s runs vipd, multicast does not get through between the nodes (cloud networks and many switches drop it): set unicast = true on every node; else start vipd on %s", n.Name, n.Name)
			}
			out = append(out, finding(CheckPeers, SevWarning, "", seen, fix))
			continue
		}
		for _, in := range plan.Instances {
			if !listened[in.Name] || !slices.Contains(b.Masters, in.VRID) || advertised[in.Name] {
				continue
			}
			fix := fmt.Sprintf("the path from %s drops IP protocol 112: let it through", n.Name)
			if !in.Receive.Unicast {
				fix = fmt.Sprintf("multicast (%s) or IP protocol 112 is dropped between the nodes: set unicast = true on every node, or let it through", group(in))
			}
			out = append(out, finding(CheckPeers, SevError, in.Name,
				fmt.Sprintf("%s says in its status beacon that it is MASTER of vrid %d, but none of its adverts reached this node in %v: this node would take the VIP too (split brain)", n.Name, in.VRID, window), fix))
		}
	}
	return out
}

func group(in Instance) netip.Addr {
	if in.IPv6() {
		return vrrp.IPv6Group
	}
	return vrrp.IPv4Group
}

// conflictFindings: a VIP answered on the segment by a host that is none
// of the [[node]]s is a conflict; one answered by a node is that node's
// (its MASTER holds it), unless this host holds it too. macs maps the
// hardware addresses that answered for node addresses to node names.
func conflictFindings(plan Plan, in Instance, claims []netcfg.Claim, links []Link) []Finding {
	macs := map[string]string{}
	for _, c := range claims {
		for _, n := range plan.Nodes {
			if c.Addr == n.Addr && c.MAC != nil {
				macs[c.MAC.String()] = n.Name
			}
		}
	}
	l, _ := findLink(links, in.Interface)
	var out []Finding
	for _, vip := range in.VIPs {
		var foreign, nodes []string
		for _, c := range claims {
			if c.Addr != vip.Addr() {
				continue
			}
			mac := "an unknown MAC"
			if c.MAC != nil {
				mac = c.MAC.String()
			}
			if name, ok := macs[mac]; ok {
				nodes = append(nodes, name)
			} else if !slices.Contains(foreign, mac) {
				foreign = append(foreign, mac)
			}
		}
		here := hasAddr(l, vip.Addr())
		proto := "ARP probe, RFC 5227"
		if vip.Addr().Is6() {
			proto = "neighbour solicitation, RFC 4861"
		}
		switch {
		case len(foreign) > 0:
			out = append(out, finding(CheckConflict, SevError, in.Name,
				fmt.Sprintf("VIP %s is answered (%s) by %s, which is none of the [[node]]s: another host holds the address, and clients reach whichever answered last",
					vip.Addr(), proto, strings.Join(foreign, ", ")),
				fmt.Sprintf("remove %s from that host (a keepalived, a static address, a DHCP lease?), or choose a VIP nobody uses", vip.Addr())))
		case here && len(nodes) > 0:
			out = append(out, finding(CheckConflict, SevError, in.Name,
				fmt.Sprintf("VIP %s is on %s here and is also answered by %s: two nodes hold it (split brain)", vip.Addr(), in.Interface, strings.Join(nodes, ", ")),
				"look at `vipd status` on both nodes: they do not hear each other's adverts (see the peers and firewall checks)"))
		case here && plan.Running == nil:
			out = append(out, finding(CheckConflict, SevWarning, in.Name,
				fmt.Sprintf("VIP %s is on %s but vipd is not running here: left by a crashed run, added by hand, or held by a keepalived on this host", vip.Addr(), in.Interface),
				fmt.Sprintf("stop whatever holds it (vipd removes it when it starts as BACKUP; `ip addr del %s dev %s` by hand)", vip, in.Interface)))
		}
	}
	return out
}
