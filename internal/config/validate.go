package config

import (
	"fmt"
	"net/netip"
)

// validate checks what spans tables: references, uniqueness, address
// families. Values that already failed to decode are zero and skipped here,
// so one mistake gives one message.
func (d *decoder) validate(c *Config) {
	d.validateNodes(c)
	d.validateInstances(c)
	d.validateFrontends(c)
	d.validateBGPVIPs(c)
	d.validateBackends(c)
	d.validateTracks(c)
}

func (d *decoder) lineOf(path string) string {
	if l := d.pos.line(path); l > 0 {
		return fmt.Sprintf(" on line %d", l)
	}
	return ""
}

func nodeLabel(n Node, i int) string {
	if n.Name != "" {
		return fmt.Sprintf("[[node]] %q", n.Name)
	}
	return fmt.Sprintf("[[node]] #%d", i+1)
}

func (d *decoder) validateNodes(c *Config) {
	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	for i, n := range c.Nodes {
		p := indexPath("node", i)
		if n.Name != "" {
			if j, dup := names[n.Name]; dup {
				d.errAt(p+".name", "%s name = %q: already used by the [[node]]%s; node names must be unique (they are matched against --node and the hostname)",
					nodeLabel(n, i), n.Name, d.lineOf(indexPath("node", j)))
			} else {
				names[n.Name] = i
			}
		}
		if n.Address.IsValid() {
			if j, dup := addrs[n.Address]; dup {
				d.errAt(p+".address", "%s address = %q: already the address of %s%s; every node needs its own address",
					nodeLabel(n, i), n.Address, nodeLabel(c.Nodes[j], j), d.lineOf(indexPath("node", j)))
			} else {
				addrs[n.Address] = i
			}
		}
	}
}

func (d *decoder) validateFrontends(c *Config) {
	backends := map[string]bool{}
	var backendNames []string
	for _, b := range c.Backends {
		if b.Name != "" && !backends[b.Name] {
			backends[b.Name] = true
			backendNames = append(backendNames, b.Name)
		}
	}
	names := map[string]int{}
	type bind struct {
		addrs []netip.Addr // nil: the VIPs
		i     int
	}
	byPort := map[uint16][]bind{}
	for i, f := range c.Frontends {
		p := indexPath("frontend", i)
		label := elemLabelName("frontend", f.Name, i)
		if f.Name != "" {
			if j, dup := names[f.Name]; dup {
				d.errAt(p+".name", "%s name = %q: already used by the [[frontend]]%s; frontend names must be unique",
					label, f.Name, d.lineOf(indexPath("frontend", j)))
			} else {
				names[f.Name] = i
			}
		}
		if f.Backend != "" && !backends[f.Backend] {
			d.errAt(p+".backend", "%s backend = %q: no [[backend]] has that name; %s", label, f.Backend, pickFrom("backend", f.Backend, backendNames))
		}
		_, bgpVIP := c.BGPVIPOf(f)
		if _, written := d.pos[p+".address"]; c.VRRP == nil && !d.vrrpInvalid && !f.Address.IsValid() && !written {
			switch {
			case c.BGP != nil && len(c.BGP.VIPs) > 0 && !f.VIP.IsValid():
				d.errAt(p, `%s: missing vip or address; add vip = one of %s to serve an announced [bgp] VIP, or address = "10.0.0.5" (this host's address) to always listen there`, label, quoteList(bgpVIPs(c)))
			case c.BGP == nil:
				d.errAt(p, `%s: missing address; without [vrrp] (single LB, no failover) there is no VIP to bind, so add address = "10.0.0.5" (this host's address), or add [vrrp]`, label)
			}
		}
		if f.Port == 0 {
			continue
		}
		if f.Address.IsValid() && c.BGP != nil && c.BGP.Has(f.Address) {
			d.warnAt(p+".address", "%s address = %q: a [bgp] VIP as a fixed address listens even while the VIP is withdrawn; write vip = %q so the frontend follows the announcement",
				label, f.Address, f.Address)
		}
		switch {
		case bgpVIP:
			// Follows [bgp]: listens while its VIP is announced.
		case f.VIP.IsValid() && c.BGP != nil && c.VRRP == nil:
			if !d.bgpInvalid {
				d.errAt(p+".vip", "%s vip = %q: not one of the [bgp] vips; use one of %s, or write address = %q for a fixed address", label, f.VIP, quoteList(bgpVIPs(c)), f.VIP)
			}
			continue
		case f.VIP.IsValid() && c.VRRP == nil && !d.vrrpInvalid:
			d.errAt(p+".vip", "%s vip = %q: there is no VRRP instance whose VIP it could be; add [vrrp], or write address = %q for a fixed address", label, f.VIP, f.VIP)
			continue
		case f.VIP.IsValid() && c.VRRP != nil && c.InstanceOf(f) == nil:
			if c.BGP == nil {
				d.errAt(p+".vip", "%s vip = %q: no VRRP instance has this VIP; use one of %s", label, f.VIP, quoteList(allVIPs(c)))
			} else if !d.bgpInvalid {
				d.errAt(p+".vip", "%s vip = %q: neither a VRRP instance nor [bgp] has this VIP; use one of %s", label, f.VIP, quoteList(append(allVIPs(c), bgpVIPs(c)...)))
			}
			continue
		case !f.VIP.IsValid() && !f.Address.IsValid() && len(c.Instances) > 1:
			d.errAt(p, "%s: there are several VRRP instances, so say which VIP this frontend binds; add vip = one of %s", label, quoteList(allVIPs(c)))
			continue
		}
		b := bind{i: i}
		for _, ap := range c.Binds(f) {
			b.addrs = append(b.addrs, ap.Addr())
		}
		if len(b.addrs) == 0 {
			continue
		}
		for _, o := range byPort[f.Port] {
			if overlap(b.addrs, o.addrs) {
				d.errAt(p+".port", "%s port = %d: [[frontend]] %q%s already listens on port %d on the same address; give one of them another port (or another address)",
					label, f.Port, c.Frontends[o.i].Name, d.lineOf(indexPath("frontend", o.i)), f.Port)
				break
			}
		}
		byPort[f.Port] = append(byPort[f.Port], b)
	}
}

// validateBGPVIPs warns about a [bgp] VIP no frontend binds: it is never
// announced (the routers would send clients to a port nobody listens on).
func (d *decoder) validateBGPVIPs(c *Config) {
	if c.BGP == nil {
		return
	}
	for i, p := range c.BGP.VIPs {
		bound := false
		for _, f := range c.Frontends {
			v, ok := c.BGPVIPOf(f)
			bound = bound || ok && v == p.Addr()
		}
		if !bound {
			d.warnAt(indexPath("bgp.vips", i), "[bgp] vips[%d] = %q: no [[frontend]] has vip = %q, so it is never announced; add vip = %q to the frontends that serve it",
				i, p.Addr(), p.Addr(), p.Addr())
		}
	}
}

// overlap reports whether two bind sets share an address; an unspecified
// address (0.0.0.0, ::) binds them all.
func overlap(a, b []netip.Addr) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y || x.IsUnspecified() || y.IsUnspecified() {
				return true
			}
		}
	}
	return false
}

func elemLabelName(kind, name string, i int) string {
	if name != "" {
		return fmt.Sprintf("[[%s]] %q", kind, name)
	}
	return fmt.Sprintf("[[%s]] #%d", kind, i+1)
}

// pickFrom completes a "no such name" message with a suggestion or the list.
func pickFrom(kind, name string, names []string) string {
	if s := suggest(name, names); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	if len(names) == 0 {
		return fmt.Sprintf("add a [[%s]] with name = %q", kind, name)
	}
	return fmt.Sprintf("use one of %s", quoteList(names))
}

func (d *decoder) validateBackends(c *Config) {
	names := map[string]int{}
	used := map[string]bool{}
	for _, f := range c.Frontends {
		used[f.Backend] = true
	}
	for i, b := range c.Backends {
		p := indexPath("backend", i)
		if b.Name == "" {
			continue
		}
		if j, dup := names[b.Name]; dup {
			d.errAt(p+".name", "[[backend]] %q name: already used by the [[backend]]%s; backend names must be unique",
				b.Name, d.lineOf(indexPath("backend", j)))
			continue
		}
		names[b.Name] = i
		if !used[b.Name] {
			d.warnAt(p, "[[backend]] %q: no [[frontend]] uses it; add backend = %q to a frontend or remove it", b.Name, b.Name)
		}
	}
}

func (d *decoder) validateTracks(c *Config) {
	frontends := map[string]int{}
	var frontendNames []string
	for i, f := range c.Frontends {
		if _, ok := frontends[f.Name]; !ok && f.Name != "" {
			frontends[f.Name] = i
			frontendNames = append(frontendNames, f.Name)
		}
	}
	backends := map[string]Backend{}
	for _, b := range c.Backends {
		if _, ok := backends[b.Name]; !ok {
			backends[b.Name] = b
		}
	}
	var instNames []string
	for _, in := range c.Instances {
		instNames = append(instNames, in.Name)
	}
	names := map[string]int{}
	for i, t := range c.Tracks {
		p := indexPath("track", i)
		label := elemLabelName("track", t.Name, i)
		for j, name := range t.Instances {
			if c.Instance(name) == nil {
				d.errAt(indexPath(p+".instances", j), "%s instances[%d] = %q: no VRRP instance has that name; %s", label, j, name, pickFrom("instance", name, instNames))
			}
		}
		if t.Name != "" {
			if j, dup := names[t.Name]; dup {
				d.errAt(p+".name", "%s name = %q: already used by the [[track]]%s; tracker names must be unique (logs and status name them)",
					label, t.Name, d.lineOf(indexPath("track", j)))
			} else {
				names[t.Name] = i
			}
		}
		if t.Type == TrackBackends && t.Frontend != "" {
			fi, ok := frontends[t.Frontend]
			if !ok {
				d.errAt(p+".frontend", "%s frontend = %q: no [[frontend]] has that name; %s", label, t.Frontend, pickFrom("frontend", t.Frontend, frontendNames))
			} else if b, ok := backends[c.Frontends[fi].Backend]; ok && len(b.Servers) > 0 && t.MinHealthy > len(b.Servers) {
				d.errAt(p+".min_healthy", "%s min_healthy = %d: backend %q has only %d servers, so the tracker could never pass; use min_healthy = %d or less",
					label, t.MinHealthy, b.Name, len(b.Servers), len(b.Servers))
			}
		}
	}
	if c.VRRP == nil && c.BGP == nil && len(c.Tracks) > 0 {
		d.warnAt("track[0]", "[[track]]: trackers adjust the VRRP priority, and there is no [vrrp]; they run but change nothing")
	}
	if c.VRRP == nil && c.BGP != nil {
		for i, t := range c.Tracks {
			if !c.gatesBGP(t) {
				d.warnAt(indexPath("track", i), "%s: without [vrrp] only a backends tracker on a frontend with a [bgp] vip does something (it gates the announcement with its min_healthy); this one runs but changes nothing",
					elemLabelName("track", t.Name, i))
			}
		}
	}
	if c.Global.MaxConn > 0 {
		for i, f := range c.Frontends {
			if f.MaxConn > c.Global.MaxConn {
				d.warnAt(indexPath("frontend", i)+".maxconn", "%s maxconn = %d: above [global] maxconn = %d, which caps it first",
					elemLabelName("frontend", f.Name, i), f.MaxConn, c.Global.MaxConn)
			}
		}
	}
}

// gatesBGP reports whether tracker t holds back a [bgp] VIP: a backends
// tracker on a frontend that follows BGP.
func (c *Config) gatesBGP(t Track) bool {
	if t.Type != TrackBackends {
		return false
	}
	for _, f := range c.Frontends {
		if f.Name == t.Frontend {
			_, ok := c.BGPVIPOf(f)
			return ok
		}
	}
	return false
}

// bgpVIPs lists the [bgp] VIP addresses, for messages.
func bgpVIPs(c *Config) []string {
	var out []string
	if c.BGP != nil {
		for _, p := range c.BGP.VIPs {
			out = append(out, p.Addr().String())
		}
	}
	return out
}

// allVIPs lists every instance's VIP addresses, for messages.
func allVIPs(c *Config) []string {
	var out []string
	for _, in := range c.Instances {
		for _, p := range in.VIPs {
			out = append(out, p.Addr().String())
		}
	}
	return out
}
