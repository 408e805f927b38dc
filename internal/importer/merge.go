package importer

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// instGroup is one VRRP instance as every node's keepalived.conf declares it, matched by virtual_router_id (and interface
// when one file uses a VRID on two interfaces).
type instGroup struct {
	key    string
	byNode map[string]*kaInstance
	first  *kaInstance
	out    *outInstance
}

// merger builds the VRRP side of the vipd file from every node's file.
type merger struct {
	r     *report
	files []*kaFile
	addrs map[string]netip.Addr // --address NAME=IP
	out   *outConfig
	// alias maps every node's instance name to the output's.
	alias map[string]string
}

// group matches the nodes' instances.
func (m *merger) group() []*instGroup {
	dupVRID := map[int]bool{}
	for _, f := range m.files {
		seen := map[int]bool{}
		for _, in := range f.instances {
			if in.VRID.Set && seen[in.VRID.V] {
				dupVRID[in.VRID.V] = true
			}
			seen[in.VRID.V] = true
		}
	}
	var groups []*instGroup
	byKey := map[string]*instGroup{}
	for _, f := range m.files {
		for _, in := range f.instances {
			if !in.VRID.Set {
				if !in.vridWritten {
					m.r.errorf(in.Pos, "vrrp_instance %s has no virtual_router_id; add it (the same on every node)", in.Name)
				}
				continue
			}
			key := fmt.Sprint(in.VRID.V)
			if dupVRID[in.VRID.V] {
				key += "/" + in.Interface.V
			}
			g := byKey[key]
			if g == nil {
				g = &instGroup{key: key, byNode: map[string]*kaInstance{}, first: in}
				byKey[key] = g
				groups = append(groups, g)
			}
			if prev := g.byNode[f.node]; prev != nil {
				m.r.errorf(in.Pos, "vrrp_instance %s: virtual_router_id %d on %s is already vrrp_instance %s (line %d); each instance needs its own VRID per interface", in.Name, in.VRID.V, in.Interface.V, prev.Name, prev.Pos.Line)
				continue
			}
			g.byNode[f.node] = in
		}
	}
	for _, g := range groups {
		for _, f := range m.files {
			if g.byNode[f.node] == nil {
				m.r.errorf(g.first.Pos, "vrrp_instance %s (virtual_router_id %d) is on %s but not in %s's %s; vipd runs every instance on every node: add it there (a low priority keeps that node a backup), or import without %s",
					g.first.Name, g.first.VRID.V, g.first.file.node, f.node, f.path, f.node)
			}
		}
	}
	return groups
}

// nodes makes the [[node]] tables: the address from unicast_src_ip (or
// mcast_src_ip), else --address; the priority from the first instance.
func (m *merger) nodes(groups []*instGroup) {
	for _, f := range m.files {
		n := &outNode{Name: f.node}
		var src val[netip.Addr]
		for _, in := range f.instances {
			for _, a := range []val[netip.Addr]{in.UnicastSrc, in.McastSrc} {
				if !a.Set {
					continue
				}
				if src.Set && src.V != a.V {
					m.r.errorf(a.Pos, "%s: %s differs from %s (%s); a vipd node has one address: use the same on every instance", in.Name, a.V, src.V, src.Pos)
				}
				if !src.Set {
					src = a
				}
				break
			}
		}
		flag, hasFlag := m.addrs[f.node]
		switch {
		case src.Set && hasFlag && flag != src.V:
			m.r.errorf(src.Pos, "node %s: --address %s=%s differs from %s here; keepalived peers expect adverts from %s: drop the flag or fix the file", f.node, f.node, flag, src.V, src.V)
		case src.Set:
			n.Address = src.V
		case hasFlag:
			n.Address = flag
		default:
			m.r.errorf(Pos{File: f.path}, "node %s: no address: its keepalived.conf has no unicast_src_ip (or mcast_src_ip); give it with --address %s=IP (its address on the VRRP link)", f.node, f.node)
		}
		if in := groups[0].byNode[f.node]; in != nil {
			n.Priority = kaPriority(in)
		}
		m.out.Nodes = append(m.out.Nodes, n)
	}
	seen := map[netip.Addr]string{}
	for _, n := range m.out.Nodes {
		if !n.Address.IsValid() {
			continue
		}
		if other, dup := seen[n.Address]; dup {
			m.r.errorf(Pos{File: "--address"}, "nodes %s and %s both have address %s; every node needs its own", other, n.Name, n.Address)
		}
		seen[n.Address] = n.Name
	}
}

func (m *merger) node(name string) *outNode {
	for _, n := range m.out.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// instance merges one instance's settings over the nodes.
func (m *merger) instance(g *instGroup) {
	first := g.first
	o := &outInstance{Name: first.Name, VRID: first.VRID.V, Version: kaVersion(first), Advert: kaAdvert(first)}
	g.out = o
	target := "instance:" + o.Name
	m.out.Instances = append(m.out.Instances, o)

	ordered := m.ordered(g)
	for _, in := range ordered {
		m.alias[in.Name] = o.Name
		if in.Name != o.Name {
			m.r.chose(in.Pos, target, "vrrp_instance %s on %s is %s on %s (same virtual_router_id %d): named %q", in.Name, in.file.node, first.Name, first.file.node, o.VRID, o.Name)
		}
		if in.State.Set {
			m.r.notCarried(in.State.Pos, target, "state %s: vipd has no initial state; it elects, and the highest priority wins (here %s)", in.State.V, m.winner(ordered))
		}
	}
	m.interfaces(g, ordered, o)
	m.vips(ordered, o)
	m.agreeTiming(ordered, o, target)
	m.auth(ordered, o, target)
	m.preempt(ordered, o, target)
	m.unicast(ordered, o, target)
	m.garp(ordered, o, target)
	for _, in := range ordered {
		p := kaPriority(in)
		if n := m.node(in.file.node); n != nil && n.Priority != p {
			o.Priority = append(o.Priority, nodePrio{Node: n.Name, Priority: p})
		}
	}
}

// ordered returns the group's instances in node order.
func (m *merger) ordered(g *instGroup) []*kaInstance {
	var out []*kaInstance
	for _, f := range m.files {
		if in := g.byNode[f.node]; in != nil {
			out = append(out, in)
		}
	}
	return out
}

func (m *merger) winner(ins []*kaInstance) string {
	best := ins[0]
	for _, in := range ins[1:] {
		if kaPriority(in) > kaPriority(best) {
			best = in
		}
	}
	return fmt.Sprintf("%s with priority %d", best.file.node, kaPriority(best))
}

func (m *merger) interfaces(g *instGroup, ins []*kaInstance, o *outInstance) {
	count := map[string]int{}
	for _, in := range ins {
		if !in.Interface.Set {
			m.r.errorf(in.Pos, "vrrp_instance %s has no interface; add interface eth0 (the link that carries the VIP)", in.Name)
			continue
		}
		count[in.Interface.V]++
	}
	best := ""
	for _, in := range ins {
		if c := count[in.Interface.V]; in.Interface.Set && (best == "" || c > count[best]) {
			best = in.Interface.V
		}
	}
	o.Interface = best
	for _, in := range ins {
		if !in.Interface.Set || in.Interface.V == best {
			continue
		}
		n := m.node(in.file.node)
		switch {
		case n.Interface == "" || n.Interface == in.Interface.V:
			n.Interface, n.ifacePos = in.Interface.V, in.Interface.Pos
			m.r.chose(in.Interface.Pos, "node:"+n.Name, "vrrp_instance %s uses %s on %s and %s elsewhere: [[node]] %s interface = %q", in.Name, in.Interface.V, n.Name, best, n.Name, in.Interface.V)
		default:
			m.r.errorf(in.Interface.Pos, "vrrp_instance %s: node %s uses %s here and %s for another instance; vipd overrides the interface per node, not per node and instance", in.Name, n.Name, in.Interface.V, n.Interface)
		}
	}
}

func (m *merger) vips(ins []*kaInstance, o *outInstance) {
	o.bare = map[netip.Prefix]bool{}
	want := vipSet(ins[0])
	for _, v := range ins[0].VIPs {
		if v.Excluded {
			m.r.chose(v.Pos, "instance:"+o.Name, "virtual_ipaddress_excluded %s: added to vips; vipd lists every VIP in its adverts, so keepalived peers that exclude it see a different address list while both run (keepalived logs it and, without vrrp_strict, accepts the advert)", v.Prefix)
		}
		o.VIPs = append(o.VIPs, v.Prefix)
		o.bare[v.Prefix] = v.Bare
	}
	if len(o.VIPs) == 0 {
		m.r.errorf(ins[0].Pos, "vrrp_instance %s has no virtual_ipaddress; add the VIP", ins[0].Name)
	}
	for _, in := range ins[1:] {
		if got := vipSet(in); got != want {
			m.r.errorf(in.Pos, "vrrp_instance %s: the VIPs on %s (%s) differ from those on %s (%s); every node of an instance must list the same addresses", in.Name, in.file.node, got, ins[0].file.node, want)
		}
	}
}

func vipSet(in *kaInstance) string {
	var s []string
	for _, v := range in.VIPs {
		s = append(s, v.Prefix.String())
	}
	sort.Strings(s)
	return strings.Join(slices.Compact(s), ", ")
}

// agreeTiming: version and advert interval must be the same on every node.
func (m *merger) agreeTiming(ins []*kaInstance, o *outInstance, target string) {
	for _, in := range ins[1:] {
		if v := kaVersion(in); v != o.Version {
			m.r.errorf(in.Pos, "vrrp_instance %s: VRRP version %d on %s but %d on %s; they would not hear each other: make them the same", in.Name, v, in.file.node, o.Version, ins[0].file.node)
		}
		if a := kaAdvert(in); a != o.Advert {
			m.r.errorf(in.Pos, "vrrp_instance %s: advert_int %s on %s but %s on %s; make them the same (a VRRPv2 backup drops adverts with another interval)", in.Name, fmtDur(a), in.file.node, fmtDur(o.Advert), ins[0].file.node)
		}
	}
	if o.Version == 2 && o.Advert%time.Second != 0 {
		r := (o.Advert + time.Second/2).Truncate(time.Second)
		if r == 0 {
			r = time.Second
		}
		pos := ins[0].Advert.Pos
		m.r.chose(pos, target, "advert_int %s with VRRPv2: v2 carries whole seconds and keepalived rounds it to %s, so advert_interval = %q", fmtDur(o.Advert), fmtDur(r), fmtDur(r))
		o.Advert = r
	}
	if o.Version == 3 && o.Advert%(10*time.Millisecond) != 0 {
		o.Advert = o.Advert.Round(10 * time.Millisecond)
		if o.Advert == 0 {
			o.Advert = 10 * time.Millisecond
		}
		m.r.chose(ins[0].Advert.Pos, target, "advert_int: VRRPv3 carries centiseconds: advert_interval = %q", fmtDur(o.Advert))
	}
	if !ins[0].Advert.Set {
		m.r.chose(ins[0].Pos, target, "no advert_int: keepalived's default is 1s, so advert_interval = \"1s\" (vipd's own default is 200ms)")
	}
}

func (m *merger) auth(ins []*kaInstance, o *outInstance, target string) {
	pass := func(in *kaInstance) string {
		if in.AuthType.V == "PASS" && in.AuthPass.Set && kaVersion(in) == 2 {
			return in.AuthPass.V
		}
		return ""
	}
	for _, in := range ins {
		switch {
		case (in.AuthType.Set || in.AuthPass.Set) && kaVersion(in) == 3:
			p := in.AuthType.Pos
			if !in.AuthType.Set {
				p = in.AuthPass.Pos
			}
			m.r.notCarried(p, target, "authentication: keepalived ignores it with VRRPv3 (RFC 9568 has none), and so does vipd")
		case in.AuthType.Set && !in.AuthPass.Set:
			m.r.notCarried(in.AuthType.Pos, target, "auth_type %s without auth_pass: keepalived ignores it, and so does vipd", in.AuthType.V)
		case !in.AuthType.Set && in.AuthPass.Set:
			m.r.notCarried(in.AuthPass.Pos, target, "auth_pass without auth_type: keepalived sends no authentication, and neither does vipd")
		}
	}
	o.AuthPass = pass(ins[0])
	for _, in := range ins[1:] {
		if p := pass(in); p != o.AuthPass {
			m.r.errorf(in.Pos, "vrrp_instance %s: the authentication on %s differs from %s's; keepalived drops adverts with another password: make them the same", in.Name, in.file.node, ins[0].file.node)
		}
	}
	if o.AuthPass != "" {
		m.r.chose(ins[0].AuthPass.Pos, target, "auth_type PASS: auth_pass = %q; it is sent in clear text in every advert and is no security (RFC 3768 says so), only a way to join the keepalived nodes while migrating", o.AuthPass)
	}
}

// preempt: vipd has one setting per instance; the node that would preempt
// is the one with the highest priority, so its setting decides.
func (m *merger) preempt(ins []*kaInstance, o *outInstance, target string) {
	top := ins[0]
	for _, in := range ins[1:] {
		if kaPriority(in) > kaPriority(top) {
			top = in
		}
	}
	o.Preempt, o.PreemptDelay = kaPreempt(top)
	for _, in := range ins {
		p, d := kaPreempt(in)
		if in.Nopreempt.V && p {
			m.r.notCarried(in.Nopreempt.Pos, target, "nopreempt: keepalived ignores it with state MASTER or priority 255, and so does this translation")
		}
		if in.PreemptDelay.Set && d == 0 && in.PreemptDelay.V > 0 {
			m.r.notCarried(in.PreemptDelay.Pos, target, "preempt_delay: keepalived ignores it with state MASTER or nopreempt, and so does this translation")
		}
		if p != o.Preempt || d != o.PreemptDelay {
			m.r.chose(in.Pos, target, "vrrp_instance %s: preemption differs between nodes; vipd sets it per instance: took %s's (the highest priority, %d, the node that would preempt): preempt = %t, preempt_delay = %q",
				in.Name, top.file.node, kaPriority(top), o.Preempt, fmtDur(o.PreemptDelay))
		}
	}
}

func (m *merger) unicast(ins []*kaInstance, o *outInstance, target string) {
	addrs := map[netip.Addr]string{}
	for _, n := range m.out.Nodes {
		if n.Address.IsValid() {
			addrs[n.Address] = n.Name
		}
	}
	uni := 0
	for _, in := range ins {
		if len(in.Peers) > 0 {
			uni++
		}
	}
	if uni == 0 {
		return
	}
	if uni != len(ins) {
		for _, in := range ins {
			if len(in.Peers) == 0 {
				m.r.errorf(in.Pos, "vrrp_instance %s: %s sends multicast adverts while other nodes send unicast; they cannot hear each other: give every node unicast_peer, or none", in.Name, in.file.node)
			}
		}
		return
	}
	o.Unicast = true
	for _, in := range ins {
		listed := map[string]bool{}
		for _, p := range in.Peers {
			name, ok := addrs[p.V]
			if !ok {
				m.r.errorf(p.Pos, "unicast_peer %s: no node given has this address; add --keepalived NAME=FILE for that host (vipd sends unicast adverts to the [[node]] addresses only)", p.V)
				continue
			}
			listed[name] = true
		}
		for _, n := range m.out.Nodes {
			if n.Name != in.file.node && !listed[n.Name] && n.Address.IsValid() {
				m.r.chose(in.Pos, target, "vrrp_instance %s on %s does not list %s (%s) in unicast_peer; vipd sends to every other node", in.Name, in.file.node, n.Name, n.Address)
			}
		}
	}
}

func (m *merger) garp(ins []*kaInstance, o *outInstance, target string) {
	either := func(inst, glob val[int]) val[int] {
		if inst.Set {
			return inst
		}
		return glob
	}
	eitherDur := func(inst, glob val[time.Duration]) val[time.Duration] {
		if inst.Set {
			return inst
		}
		return glob
	}
	if v := agreeNodes(m.r, ins, "garp_repeat", target, func(in *kaInstance) val[int] { return either(in.GARPRepeat, in.file.garpRepeat) }); v.Set {
		o.GARPRepeat = v.V
	}
	o.GARPRefresh = agreeNodes(m.r, ins, "garp_refresh", target, func(in *kaInstance) val[time.Duration] {
		return eitherDur(in.GARPRefresh, in.file.garpRefresh)
	})
	if r := o.GARPRefresh; r.Set && r.V > 0 && r.V < time.Second {
		o.GARPRefresh.V = time.Second
		m.r.chose(r.Pos, target, "garp refresh %s: vipd refreshes at most every second: garp_refresh = \"1s\"", fmtDur(r.V))
	}
	o.LowerRepeat = agreeNodes(m.r, ins, "garp_lower_prio_repeat", target, func(in *kaInstance) val[int] { return either(in.LowerRepeat, in.file.lowerRepeat) })
	o.LowerDelay = agreeNodes(m.r, ins, "garp_lower_prio_delay", target, func(in *kaInstance) val[time.Duration] {
		return eitherDur(in.LowerDelay, in.file.lowerDelay)
	})
	iv := agreeNodes(m.r, ins, "garp_interval", target, func(in *kaInstance) val[time.Duration] {
		v := in.file.garpInterval
		if v.Set && v.V < 10*time.Millisecond {
			m.r.notCarried(v.Pos, target, "vrrp_garp_interval %s: keepalived sends its gratuitous ARPs (nearly) back to back; vipd spaces its burst by garp_interval (100ms, at least 10ms) so that it lasts past a handover", fmtDur(v.V))
			return val[time.Duration]{}
		}
		return v
	})
	if iv.Set {
		o.GARPInterval = iv.V
	}
}

// agreeNodes returns the first node's setting; a node that sets another
// value is told which one vipd took (the instance has one value).
func agreeNodes[T comparable](r *report, ins []*kaInstance, key, target string, get func(*kaInstance) val[T]) val[T] {
	first := get(ins[0])
	for _, in := range ins[1:] {
		if v := get(in); v.Set && (!first.Set || v.V != first.V) {
			r.chose(v.Pos, target, "%s on %s differs from %s's; vipd sets %s per instance: took %s's", key, in.file.node, ins[0].file.node, key, ins[0].file.node)
		}
	}
	return first
}

// shared moves what every instance has in common into [vrrp] when there
// are several instances.
func (m *merger) shared() {
	if len(m.out.Instances) < 2 {
		return
	}
	s := &outShared{Interface: m.out.Instances[0].Interface, Unicast: true}
	for _, o := range m.out.Instances {
		if o.Interface != s.Interface {
			s.Interface = ""
		}
		if !o.Unicast {
			s.Unicast = false
		}
	}
	if s.Interface == "" {
		// Each [[instance]] names its interface, and a [[node]] interface
		// does not override an instance's own.
		for _, n := range m.out.Nodes {
			if n.Interface != "" {
				m.r.errorf(n.ifacePos, "node %s uses interface %s where the other nodes use another, and the instances use different interfaces; vipd overrides an interface per node only for instances that share [vrrp] interface: use the same interface names on every node", n.Name, n.Interface)
			}
		}
	}
	for _, o := range m.out.Instances {
		if s.Interface != "" {
			o.Interface = ""
		}
		if s.Unicast {
			o.Unicast = false
		}
	}
	m.out.Shared = s
}
