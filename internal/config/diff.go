package config

import (
	"net/netip"
	"reflect"
	"slices"
)

// Changes says which parts of the configuration differ between two
// versions, so that a reload applies only those.
type Changes struct {
	// VRRP lists the [vrrp] keys whose value changed, by their TOML names;
	// it is ["vrrp"] when the table was added or removed.
	VRRP []string
	// Peers is set when unicast is on and the set of node addresses changed.
	Peers bool
	// Nodes, Tracks, Frontends and Backends list entries by name.
	Nodes, Tracks, Frontends, Backends Named
	// HTTP, Control, Notify, Log and Global report any change in the table.
	HTTP, Control, Notify, Log, Global bool
}

// Named lists the names of added, removed and changed entries.
type Named struct {
	Added, Removed, Changed []string
}

// Empty reports whether nothing was added, removed or changed.
func (n Named) Empty() bool {
	return len(n.Added) == 0 && len(n.Removed) == 0 && len(n.Changed) == 0
}

// Has reports whether the entry name was added, removed or changed.
func (n Named) Has(name string) bool {
	return slices.Contains(n.Added, name) || slices.Contains(n.Removed, name) || slices.Contains(n.Changed, name)
}

// Empty reports whether the two configurations are the same.
func (ch Changes) Empty() bool {
	return len(ch.VRRP) == 0 && !ch.Peers && ch.Nodes.Empty() && ch.Tracks.Empty() &&
		ch.Frontends.Empty() && ch.Backends.Empty() &&
		!ch.HTTP && !ch.Control && !ch.Notify && !ch.Log && !ch.Global
}

// electionKeys are the [vrrp] keys that change what the instance advertises
// or how it decides; changing them restarts the instance.
var electionKeys = []string{"vrrp", "vrid", "interface", "vips", "advert_interval", "preempt", "preempt_delay", "checksum", "unicast"}

// Election reports whether the VRRP instance of the named node must be
// restarted: an election key of [vrrp] changed, that node's priority,
// address or interface changed, or (unicast) its peers changed. GARP
// settings and startup_hold apply without a restart.
func (ch Changes) Election(node string) bool {
	for _, k := range ch.VRRP {
		if slices.Contains(electionKeys, k) {
			return true
		}
	}
	return ch.Nodes.Has(node) || ch.Peers
}

// Diff returns what changed from old to c. A nil old counts as empty.
func (c *Config) Diff(old *Config) Changes {
	if old == nil {
		old = &Config{}
	}
	var ch Changes
	switch {
	case (c.VRRP == nil) != (old.VRRP == nil):
		ch.VRRP = []string{"vrrp"}
	case c.VRRP != nil:
		ch.VRRP = vrrpDiff(old.VRRP, c.VRRP)
	}
	if c.VRRP != nil && c.VRRP.Unicast {
		ch.Peers = !slices.Equal(nodeAddrs(c.Nodes), nodeAddrs(old.Nodes))
	}
	ch.Nodes = diffNamed(old.Nodes, c.Nodes, func(n Node) string { return n.Name })
	ch.Tracks = diffNamed(old.Tracks, c.Tracks, func(t Track) string { return t.Name })
	ch.Frontends = diffNamed(old.Frontends, c.Frontends, func(f Frontend) string { return f.Name })
	ch.Backends = diffNamed(old.Backends, c.Backends, func(b Backend) string { return b.Name })
	ch.HTTP = !reflect.DeepEqual(old.HTTP, c.HTTP)
	ch.Control = old.Control != c.Control
	ch.Notify = !reflect.DeepEqual(old.Notify, c.Notify)
	ch.Log = old.Log != c.Log
	ch.Global = old.Global != c.Global
	return ch
}

func vrrpDiff(a, b *VRRP) []string {
	var out []string
	add := func(key string, changed bool) {
		if changed {
			out = append(out, key)
		}
	}
	add("vrid", a.VRID != b.VRID)
	add("interface", a.Interface != b.Interface)
	add("vips", !slices.Equal(a.VIPs, b.VIPs))
	add("advert_interval", a.AdvertInterval != b.AdvertInterval)
	add("preempt", a.Preempt != b.Preempt)
	add("preempt_delay", a.PreemptDelay != b.PreemptDelay)
	add("checksum", a.Checksum != b.Checksum)
	add("unicast", a.Unicast != b.Unicast)
	add("garp_repeat", a.GARPRepeat != b.GARPRepeat)
	add("garp_interval", a.GARPInterval != b.GARPInterval)
	add("garp_refresh", a.GARPRefresh != b.GARPRefresh)
	add("startup_hold", a.StartupHold != b.StartupHold)
	add("status_port", a.StatusPort != b.StatusPort)
	add("startup_interval", a.StartupInterval != b.StartupInterval)
	add("preset", a.Preset != b.Preset)
	return out
}

func nodeAddrs(ns []Node) []netip.Addr {
	out := make([]netip.Addr, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.Address)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func diffNamed[T any](old, cur []T, name func(T) string) Named {
	var n Named
	before := map[string]T{}
	for _, o := range old {
		before[name(o)] = o
	}
	now := map[string]bool{}
	for _, x := range cur {
		k := name(x)
		now[k] = true
		o, ok := before[k]
		switch {
		case !ok:
			n.Added = append(n.Added, k)
		case !reflect.DeepEqual(o, x):
			n.Changed = append(n.Changed, k)
		}
	}
	for _, o := range old {
		if !now[name(o)] {
			n.Removed = append(n.Removed, name(o))
		}
	}
	return n
}
