package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/vipd/vipd/bgp"
)

// bgpDiff lists the [bgp] keys whose value differs, by their TOML names;
// "bgp" when the table was added or removed.
func bgpDiff(a, b *BGP) []string {
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil || b == nil:
		return []string{"bgp"}
	}
	var out []string
	add := func(key string, changed bool) {
		if changed {
			out = append(out, key)
		}
	}
	add("asn", a.ASN != b.ASN)
	add("router_id", a.RouterID != b.RouterID)
	add("vips", !slices.Equal(a.VIPs, b.VIPs))
	add("hold_time", a.HoldTime != b.HoldTime)
	add("drain_time", a.DrainTime != b.DrainTime)
	add("med", !reflect.DeepEqual(a.MED, b.MED))
	add("local_pref", !reflect.DeepEqual(a.LocalPref, b.LocalPref))
	add("communities", !slices.Equal(a.Communities, b.Communities))
	add("peer", !reflect.DeepEqual(a.Peers, b.Peers))
	add("node", !reflect.DeepEqual(a.Nodes, b.Nodes))
	sort.Strings(out)
	return out
}

// bgpRestart lists what node's running BGP speaker cannot take without a
// restart: [bgp] added or removed, the announced VIPs, and anything that
// shapes this node's sessions (its ASN, router id, its peers and their
// settings). A frontend that moves onto or off a [bgp] VIP needs one too.
// The path attributes (med, local_pref, communities) and drain_time apply
// live; so do peers and overrides of other nodes. A restart in BGP mode is
// a planned withdrawal: the node drains, withdraws and ends its sessions,
// then announces again once its checks pass.
func (ch Changes) bgpRestart(node string) []string {
	if len(ch.BGP) == 0 && ch.Frontends.Empty() {
		return nil
	}
	o, c := ch.old, ch.cur
	if o == nil || c == nil {
		return nil
	}
	var out []string
	switch {
	case slices.Contains(ch.BGP, "bgp") && c.BGP == nil:
		return []string{"[bgp] removed"}
	case slices.Contains(ch.BGP, "bgp"):
		return []string{"[bgp] added"}
	}
	if slices.Contains(ch.BGP, "vips") {
		out = append(out, "[bgp] vips")
	}
	if o.BGP != nil && c.BGP != nil {
		oc, _, _ := o.BGP.Speaker(node, nodeAddr(o, node))
		cc, _, _ := c.BGP.Speaker(node, nodeAddr(c, node))
		out = append(out, speakerDiff(oc, cc)...)
	}
	for _, f := range c.Frontends {
		of := o.frontend(f.Name)
		if of == nil {
			continue // a new frontend on a [bgp] VIP is bound live
		}
		ov, _ := o.BGPVIPOf(*of)
		cv, _ := c.BGPVIPOf(f)
		if ov != cv {
			out = append(out, fmt.Sprintf("[[frontend]] %q vip (onto or off a [bgp] VIP)", f.Name))
		}
	}
	return out
}

// speakerDiff names the differences between two resolved speaker
// configurations of one node.
func speakerDiff(a, b bgp.Config) []string {
	var out []string
	if a.ASN != b.ASN {
		out = append(out, "[bgp] asn (this node's)")
	}
	if a.RouterID != b.RouterID {
		out = append(out, "[bgp] router_id (this node's)")
	}
	peers := func(c bgp.Config) map[netip.Addr]bgp.Peer {
		m := map[netip.Addr]bgp.Peer{}
		for _, p := range c.Peers {
			m[p.Address] = p
		}
		return m
	}
	pa, pb := peers(a), peers(b)
	var addrs []netip.Addr
	for addr := range pa {
		addrs = append(addrs, addr)
	}
	for addr := range pb {
		if _, ok := pa[addr]; !ok {
			addrs = append(addrs, addr)
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, addr := range addrs {
		x, inA := pa[addr]
		y, inB := pb[addr]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("[[bgp.peer]] %q added", addr))
		case !inB:
			out = append(out, fmt.Sprintf("[[bgp.peer]] %q removed", addr))
		case !reflect.DeepEqual(x, y):
			out = append(out, fmt.Sprintf("[[bgp.peer]] %q (%s)", addr, strings.Join(peerKeys(x, y), ", ")))
		}
	}
	return out
}

// peerKeys names the changed keys of one peer, as the file spells them.
func peerKeys(a, b bgp.Peer) []string {
	var out []string
	add := func(key string, changed bool) {
		if changed {
			out = append(out, key)
		}
	}
	add("asn", a.ASN != b.ASN)
	add("password", a.Password != b.Password)
	add("hold_time", a.HoldTime != b.HoldTime)
	add("multihop", a.Multihop != b.Multihop)
	add("passive", a.Passive != b.Passive)
	add("bfd", !reflect.DeepEqual(a.BFD, b.BFD))
	return out
}

func nodeAddr(c *Config, name string) netip.Addr {
	if n := c.node(name); n != nil {
		return n.Address
	}
	return netip.Addr{}
}

func (c *Config) frontend(name string) *Frontend {
	for i := range c.Frontends {
		if c.Frontends[i].Name == name {
			return &c.Frontends[i]
		}
	}
	return nil
}
