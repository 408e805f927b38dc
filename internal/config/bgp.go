package config

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/vipd/vipd/bgp"
)

// BGP is the [bgp] table: the VIPs this cluster announces to its routers
// instead of (or beside) electing them with VRRP. Every node whose
// [[bgp.peer]] list is not empty announces them while it can serve them.
type BGP struct {
	// ASN is the local AS number; a [[bgp.node]] may override it (one ASN
	// per rack is common in eBGP fabrics).
	ASN uint32
	// RouterID is the BGP identifier; when not valid, the [[bgp.node]]
	// router_id, else the node's IPv4 address.
	RouterID netip.Addr
	// VIPs are the announced addresses, host routes (/32, /128).
	VIPs []netip.Prefix
	// HoldTime is the default hold time of the peers. Default 9s.
	HoldTime time.Duration
	// DrainTime is how long a planned withdrawal announces the VIP with
	// GRACEFUL_SHUTDOWN before it withdraws it. Default 5s.
	DrainTime time.Duration
	// MED, LocalPref and Communities are the path attributes of every
	// node; a [[bgp.node]] may override each.
	MED, LocalPref *uint32
	Communities    []bgp.Community
	Peers          []BGPPeer
	Nodes          []BGPNode
}

// BGPPeer is one [[bgp.peer]]: a router.
type BGPPeer struct {
	Address  netip.Addr
	ASN      uint32
	Password string
	// HoldTime is 0 for [bgp] hold_time.
	HoldTime time.Duration
	// Multihop is the eBGP TTL; 0 means directly connected.
	Multihop uint8
	Passive  bool
	// BFD turns on BFD with BFDInterval (default 300ms) and
	// BFDMultiplier (default 3).
	BFD           bool
	BFDInterval   time.Duration
	BFDMultiplier uint8
	// Nodes lists the [[node]] names that peer with this router; empty
	// means every node.
	Nodes []string
}

// BGPNode is one [[bgp.node]]: per-node overrides. Nil pointers and a nil
// Communities keep the [bgp] value.
type BGPNode struct {
	Name           string
	ASN            uint32
	RouterID       netip.Addr
	MED, LocalPref *uint32
	Communities    []bgp.Community
}

// Defaults of [bgp].
const (
	DefaultBGPHoldTime  = bgp.DefaultHoldTime
	DefaultBGPDrainTime = 5 * time.Second
)

var bgpHints = map[string]string{
	"neighbor":         "write one [[bgp.peer]] table per router",
	"neighbors":        "write one [[bgp.peer]] table per router",
	"peers":            "write one [[bgp.peer]] table per router",
	"local_as":         "write asn = ... (this node's AS number)",
	"local_asn":        "write asn = ... (this node's AS number)",
	"as":               "write asn = ...",
	"prefixes":         `write vips = ["192.168.40.10"] (the announced addresses)`,
	"networks":         `write vips = ["192.168.40.10"] (the announced addresses)`,
	"announce":         `write vips = ["192.168.40.10"] (the announced addresses)`,
	"nodes":            "write one [[bgp.node]] table per node override",
	"routerid":         `write router_id = "10.0.0.21"`,
	"graceful":         `planned withdrawal always announces GRACEFUL_SHUTDOWN first; set its length with drain_time = "5s"`,
	"keepalive":        "the keepalive is hold_time / 3 (RFC 4271 section 10); set hold_time",
	"metric":           "write med = ...",
	"local_preference": "write local_pref = ...",
}

var bgpPeerHints = map[string]string{
	"remote_as":     "write asn = ... (the router's AS number)",
	"peer_as":       "write asn = ... (the router's AS number)",
	"peer_asn":      "write asn = ... (the router's AS number)",
	"remote_asn":    "write asn = ... (the router's AS number)",
	"neighbor":      `write address = "10.0.0.1"`,
	"ip":            `write address = "10.0.0.1"`,
	"md5":           `write password = "..." (TCP MD5, RFC 2385)`,
	"auth_password": `write password = "..." (TCP MD5, RFC 2385)`,
	"ebgp_multihop": "write multihop = 2 (the TTL)",
	"node":          `write nodes = ["lb1"]`,
	"keepalive":     "the keepalive is hold_time / 3 (RFC 4271 section 10); set hold_time",
	"port":          "routers listen on 179; a different port is not supported",
}

// bgpTable reads [bgp] when present; it runs after [vrrp] and [[node]] so
// it can check names and addresses against them.
func (d *decoder) bgpTable(root *table, c *Config) *BGP {
	t := root.sub("bgp", "[bgp]")
	if t == nil {
		d.bgpInvalid = root.has("bgp")
		return nil
	}
	errs := len(d.errs)
	defer func() { d.bgpInvalid = len(d.errs) > errs }()
	t.hints = bgpHints
	b := &BGP{}
	if !t.has("asn") {
		t.badTable("missing asn; add asn = 64512 (this cluster's AS number; private ASNs are 64512..65534 and 4200000000..4294967294)")
	}
	b.ASN = d.asn(t, "asn")
	b.RouterID = d.routerID(t)
	b.VIPs = d.bgpVIPs(t, c)
	b.HoldTime = d.holdTime(t, DefaultBGPHoldTime)
	b.DrainTime = t.duration("drain_time", DefaultBGPDrainTime, 0, 10*time.Minute, "5s",
		"how long a planned withdrawal announces GRACEFUL_SHUTDOWN before it withdraws")
	b.MED = d.optU32(t, "med", "lower is preferred between paths from the same AS; e.g. med = 0")
	b.LocalPref = d.optU32(t, "local_pref", "higher is preferred, iBGP sessions only; e.g. local_pref = 100")
	b.Communities = d.communities(t)

	peers, _ := t.list("peer")
	for i, m := range peers {
		pt := d.table(m, indexPath(t.keyPath("peer"), i), "bgp.peer", bgpPeerLabel(m, i))
		b.Peers = append(b.Peers, d.bgpPeer(pt, c))
	}
	if !t.has("peer") {
		t.badTable(`no [[bgp.peer]]; add one per router: [[bgp.peer]] address = "10.0.0.1" asn = 64500`)
	}
	nodes, _ := t.list("node")
	for i, m := range nodes {
		nt := d.table(m, indexPath(t.keyPath("node"), i), "bgp.node", elemLabel("bgp.node", m, i))
		b.Nodes = append(b.Nodes, d.bgpNode(nt, c))
	}
	t.finish()
	d.validateBGP(b, c)
	return b
}

func bgpPeerLabel(m map[string]any, i int) string {
	if a, ok := m["address"].(string); ok && a != "" {
		return fmt.Sprintf("[[bgp.peer]] %q", a)
	}
	return fmt.Sprintf("[[bgp.peer]] #%d", i+1)
}

func (d *decoder) asn(t *table, key string) uint32 {
	return uint32(t.integer(key, 0, 1, math.MaxUint32,
		"AS numbers are 1..4294967295; private ones are 64512..65534 and 4200000000..4294967294"))
}

func (d *decoder) routerID(t *table) netip.Addr {
	s := t.str("router_id", "")
	if !isString(t.m["router_id"]) {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.IsUnspecified() {
		t.bad("router_id", s, `must be an IPv4 address (RFC 6286: the BGP identifier), unique among the routers' peers; e.g. router_id = "10.0.0.21"`)
		return netip.Addr{}
	}
	return a
}

func (d *decoder) holdTime(t *table, def time.Duration) time.Duration {
	h := t.duration("hold_time", def, bgp.MinHoldTime, 65535*time.Second, "9s",
		"RFC 4271 section 4.2; the session uses the smaller of both sides'")
	if h%time.Second != 0 {
		t.bad("hold_time", t.m["hold_time"], "BGP carries the hold time in whole seconds; try %q", fmtDur(h.Round(time.Second)))
		return def
	}
	return h
}

func (d *decoder) optU32(t *table, key, hint string) *uint32 {
	if !t.has(key) {
		t.get(key)
		return nil
	}
	v := uint32(t.integer(key, 0, 0, math.MaxUint32, hint))
	return &v
}

func (d *decoder) communities(t *table) []bgp.Community {
	list, ok := t.strings("communities")
	if !ok {
		return nil
	}
	out := []bgp.Community{}
	for i, s := range list {
		c, err := bgp.ParseCommunity(s)
		if err != nil {
			d.errAt(indexPath(t.keyPath("communities"), i), "%s communities[%d] = %q: %v", t.label, i, s, bgp.ErrCommunity)
			continue
		}
		if c == bgp.GracefulShutdown {
			d.errAt(indexPath(t.keyPath("communities"), i), "%s communities[%d] = %q: vipd adds graceful-shutdown itself during a planned withdrawal (drain_time); remove it here or routers would never prefer this node",
				t.label, i, s)
			continue
		}
		out = append(out, c)
	}
	return out
}

func (d *decoder) bgpVIPs(t *table, c *Config) []netip.Prefix {
	if !t.has("vips") {
		t.badTable(`missing vips; add vips = ["192.168.40.10"] (the addresses the routers send to this cluster)`)
	}
	list, ok := t.strings("vips")
	if ok && len(list) == 0 {
		t.bad("vips", []any{}, `must list at least one address; e.g. vips = ["192.168.40.10"]`)
	}
	var out []netip.Prefix
	seen := map[netip.Addr]int{}
	for i, s := range list {
		p := indexPath(t.keyPath("vips"), i)
		pfx, err := parseVIP(s)
		if err != nil {
			d.errAt(p, "[bgp] vips[%d] = %q: %v", i, s, err)
			continue
		}
		if pfx.Bits() != pfx.Addr().BitLen() {
			d.errAt(p, "[bgp] vips[%d] = %q: announced VIPs are host routes (a /%d would draw the whole subnet to the LBs); write %q",
				i, s, pfx.Bits(), pfx.Addr().String())
			continue
		}
		if j, dup := seen[pfx.Addr()]; dup {
			d.errAt(p, "[bgp] vips[%d] = %q: the same address as vips[%d]; list each VIP once", i, s, j)
			continue
		}
		seen[pfx.Addr()] = i
		for _, in := range c.Instances {
			for _, v := range in.VIPs {
				if v.Addr() == pfx.Addr() {
					d.errAt(p, "[bgp] vips[%d] = %q: also a VIP of VRRP instance %q; a VIP is either elected (VRRP, one holder) or announced (BGP, every healthy node): list it in one table",
						i, s, in.Name)
				}
			}
		}
		out = append(out, pfx)
	}
	return out
}

func (d *decoder) bgpPeer(t *table, c *Config) BGPPeer {
	t.hints = bgpPeerHints
	var p BGPPeer
	if !t.has("address") {
		t.badTable(`missing address; add the router's address on the session, e.g. address = "10.0.0.1"`)
	}
	if s := t.str("address", ""); isString(t.m["address"]) {
		a, err := parseHostAddr(s)
		if err != nil {
			t.bad("address", s, "%v", err)
		}
		p.Address = a
	}
	if !t.has("asn") {
		t.badTable("missing asn; add the router's AS number, e.g. asn = 64500 (the same as [bgp] asn means iBGP)")
	}
	p.ASN = d.asn(t, "asn")
	p.Password = t.str("password", "")
	if len(p.Password) > 80 {
		t.bad("password", "...", "at most 80 bytes (the kernel's TCP MD5 key limit)")
	}
	if t.has("hold_time") {
		p.HoldTime = d.holdTime(t, 0)
	}
	p.Multihop = uint8(t.integer("multihop", 0, 0, 255, "the TTL to a router that is not on this node's link, e.g. multihop = 2; 0 means directly connected"))
	p.Passive = t.boolean("passive", false)
	p.BFD = t.boolean("bfd", false)
	p.BFDInterval = t.duration("bfd_interval", bgp.DefaultBFDInterval, 10*time.Millisecond, time.Minute, "300ms",
		"BFD transmit and receive interval; detection takes interval x multiplier")
	p.BFDMultiplier = uint8(t.integer("bfd_multiplier", bgp.DefaultBFDMultiplier, 1, 255, "the default is 3"))
	if !p.BFD && (t.has("bfd_interval") || t.has("bfd_multiplier")) {
		key := "bfd_interval"
		if !t.has(key) {
			key = "bfd_multiplier"
		}
		t.warnKey(key, "has no effect without bfd = true")
	}
	if names, ok := t.strings("nodes"); ok {
		if len(names) == 0 {
			t.bad("nodes", []any{}, `must name at least one [[node]]; leave nodes out for every node`)
		}
		for i, n := range names {
			if !hasNode(c, n) {
				d.errAt(indexPath(t.keyPath("nodes"), i), "%s nodes[%d] = %q: no [[node]] has this name; %s", t.label, i, n, nodeNamesHint(c, n))
			}
		}
		p.Nodes = names
	}
	t.finish()
	return p
}

func (d *decoder) bgpNode(t *table, c *Config) BGPNode {
	var n BGPNode
	if !t.has("name") {
		t.badTable(`missing name; add name = "lb1" (a [[node]] name)`)
	}
	n.Name = t.str("name", "")
	if isString(t.m["name"]) && !hasNode(c, n.Name) {
		t.bad("name", n.Name, "no [[node]] has this name; %s", nodeNamesHint(c, n.Name))
	}
	if t.has("asn") {
		n.ASN = d.asn(t, "asn")
	}
	n.RouterID = d.routerID(t)
	n.MED = d.optU32(t, "med", "lower is preferred between paths from the same AS; e.g. med = 100")
	n.LocalPref = d.optU32(t, "local_pref", "higher is preferred, iBGP sessions only; e.g. local_pref = 50")
	if t.has("communities") {
		n.Communities = d.communities(t)
	} else {
		t.get("communities")
	}
	t.finish()
	return n
}

func hasNode(c *Config, name string) bool {
	for _, n := range c.Nodes {
		if n.Name == name {
			return true
		}
	}
	return false
}

func nodeNamesHint(c *Config, name string) string {
	var names []string
	for _, n := range c.Nodes {
		names = append(names, n.Name)
	}
	if len(names) == 0 {
		return `add a [[node]] with name and address for it`
	}
	if s := suggest(name, names); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "the nodes are " + quoteList(names)
}

// validateBGP checks what spans [bgp] and the rest: one session per router
// and node, and a router id for every node.
func (d *decoder) validateBGP(b *BGP, c *Config) {
	for i, p := range b.Peers {
		for j := 0; j < i; j++ {
			q := b.Peers[j]
			if p.Address.IsValid() && p.Address == q.Address && sharesNode(p, q) {
				d.errAt(indexPath("bgp.peer", i)+".address", "[[bgp.peer]] %q: already listed%s for the same nodes; one session per router and node",
					p.Address.String(), d.lineOf(indexPath("bgp.peer", j)))
			}
		}
	}
	seen := map[string]int{}
	for i, n := range b.Nodes {
		if j, dup := seen[n.Name]; dup && n.Name != "" {
			d.errAt(indexPath("bgp.node", i)+".name", "[[bgp.node]] %q: already overridden%s; merge the two tables", n.Name, d.lineOf(indexPath("bgp.node", j)))
		}
		seen[n.Name] = i
	}
	if b.RouterID.IsValid() {
		return
	}
	if len(c.Nodes) == 0 {
		if b.ASN != 0 {
			d.errAt("bgp", `[bgp]: missing router_id; add router_id = "10.0.0.21" (an IPv4 address of this host), or [[node]] tables whose addresses are IPv4`)
		}
		return
	}
	for i, n := range c.Nodes {
		if o := b.node(n.Name); o != nil && o.RouterID.IsValid() {
			continue
		}
		if n.Address.Is4() {
			continue
		}
		if n.Address.IsValid() {
			d.errAt(indexPath("node", i)+".address", `%s: its address is IPv6, so BGP needs a router id (an IPv4 address, RFC 6286); add [[bgp.node]] name = %q router_id = "10.0.0.21"`,
				nodeLabel(n, i), n.Name)
		}
	}
}

func sharesNode(p, q BGPPeer) bool {
	if len(p.Nodes) == 0 || len(q.Nodes) == 0 {
		return true
	}
	for _, a := range p.Nodes {
		for _, b := range q.Nodes {
			if a == b {
				return true
			}
		}
	}
	return false
}

// Has reports whether addr is one of the announced VIPs.
func (b *BGP) Has(addr netip.Addr) bool {
	for _, p := range b.VIPs {
		if p.Addr() == addr {
			return true
		}
	}
	return false
}

func (b *BGP) node(name string) *BGPNode {
	for i := range b.Nodes {
		if b.Nodes[i].Name == name {
			return &b.Nodes[i]
		}
	}
	return nil
}

// Speaker resolves [bgp] for the node named name (with address addr): the
// speaker's configuration and the attributes of its paths. ok is false when
// no [[bgp.peer]] applies to the node (it announces nothing).
func (b *BGP) Speaker(name string, addr netip.Addr) (cfg bgp.Config, attrs bgp.Attrs, ok bool) {
	cfg = bgp.Config{ASN: b.ASN, RouterID: b.RouterID}
	attrs = bgp.Attrs{MED: b.MED, LocalPref: b.LocalPref, Communities: b.Communities}
	if !cfg.RouterID.IsValid() && addr.Is4() {
		cfg.RouterID = addr
	}
	if o := b.node(name); o != nil {
		if o.ASN != 0 {
			cfg.ASN = o.ASN
		}
		if o.RouterID.IsValid() {
			cfg.RouterID = o.RouterID
		}
		if o.MED != nil {
			attrs.MED = o.MED
		}
		if o.LocalPref != nil {
			attrs.LocalPref = o.LocalPref
		}
		if o.Communities != nil {
			attrs.Communities = o.Communities
		}
	}
	for _, p := range b.Peers {
		if len(p.Nodes) > 0 && !contains(p.Nodes, name) {
			continue
		}
		bp := bgp.Peer{Address: p.Address, ASN: p.ASN, Password: p.Password, HoldTime: p.HoldTime,
			Multihop: p.Multihop, Passive: p.Passive}
		if bp.HoldTime == 0 {
			bp.HoldTime = b.HoldTime
		}
		if p.BFD {
			bp.BFD = &bgp.BFD{MinRx: p.BFDInterval, MinTx: p.BFDInterval, Multiplier: p.BFDMultiplier}
		}
		cfg.Peers = append(cfg.Peers, bp)
	}
	return cfg, attrs, len(cfg.Peers) > 0
}
