package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
)

// Changes says which parts of the configuration differ between two
// versions, so that a reload applies only those. Restart is the one place
// that decides which of them a running node cannot apply.
type Changes struct {
	// VRRP lists the changes to what the instances share: "vrrp" when VRRP
	// was turned on or off, "status_port" or "liveness_port" when they
	// changed.
	VRRP []string
	// Instances lists VRRP instances by name; InstanceKeys has, for each
	// changed instance, the keys whose value changed by their TOML names.
	Instances    Named
	InstanceKeys map[string][]string
	// Peers is set when an instance uses unicast and the set of node
	// addresses changed.
	Peers bool
	// Nodes, Tracks, Frontends and Backends list entries by name.
	Nodes, Tracks, Frontends, Backends Named
	// HTTP, Control, Notify, Log and Global report any change in the table.
	HTTP, Control, Notify, Log, Global bool
	// BGP lists the [bgp] keys whose value changed by their TOML names
	// ("vips", "drain_time", "peer" for the [[bgp.peer]] list, "node" for
	// the [[bgp.node]] list), or "bgp" when the table was added or
	// removed. Restart decides, per node, which of them need a restart.
	BGP []string

	old, cur *Config
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
	return len(ch.VRRP) == 0 && ch.Instances.Empty() && !ch.Peers && ch.Nodes.Empty() && ch.Tracks.Empty() &&
		ch.Frontends.Empty() && ch.Backends.Empty() &&
		!ch.HTTP && !ch.Control && !ch.Notify && !ch.Log && !ch.Global && len(ch.BGP) == 0
}

// liveKeys are the instance keys a running instance takes without a
// restart: announcement settings, and per-node priorities (which move the
// effective priority the way a tracker does).
var liveKeys = []string{"garp_repeat", "garp_interval", "garp_refresh", "garp_lower_prio_repeat", "garp_lower_prio_delay",
	"startup_hold", "startup_interval", "priority"}

// Restart lists, for the node named node, the changes its running VRRP
// instances cannot take without a restart (each as the key an operator
// would look for, e.g. `[[instance]] "api" advert_interval`); empty means
// a reload applies everything. Election settings (vrid, interface, VIPs,
// interval, preempt, checksum, version, authentication, unicast and its
// peers), instances added or removed, and the node's own address or
// interface need a restart; a hitless `vipd restart` applies them with no
// VRRP transition where the change allows. Priorities, GARP settings and
// everything outside VRRP apply at once.
func (ch Changes) Restart(node string) []string {
	var out []string
	for _, k := range ch.VRRP {
		out = append(out, "[vrrp] "+k)
	}
	for _, name := range ch.Instances.Added {
		out = append(out, fmt.Sprintf("[[instance]] %q added", name))
	}
	for _, name := range ch.Instances.Removed {
		out = append(out, fmt.Sprintf("[[instance]] %q removed", name))
	}
	for _, name := range ch.Instances.Changed {
		for _, k := range ch.InstanceKeys[name] {
			if !slices.Contains(liveKeys, k) {
				out = append(out, ch.instanceLabel(name)+" "+k)
			}
		}
	}
	if ch.Peers {
		out = append(out, "[[node]] addresses (unicast peers)")
	}
	if ch.old != nil && ch.cur != nil && ch.Nodes.Has(node) {
		o, c := ch.old.node(node), ch.cur.node(node)
		switch {
		case o == nil || c == nil:
			out = append(out, fmt.Sprintf("[[node]] %q added or removed", node))
		default:
			if o.Address != c.Address {
				out = append(out, fmt.Sprintf("[[node]] %q address", node))
			}
			if o.Interface != c.Interface {
				out = append(out, fmt.Sprintf("[[node]] %q interface", node))
			}
			if ch.cur.VRRP != nil && (o.Priority == 255) != (c.Priority == 255) {
				out = append(out, fmt.Sprintf("[[node]] %q priority 255 (address owner)", node))
			}
		}
	}
	out = append(out, ch.bgpRestart(node)...)
	if ch.old != nil && ch.cur != nil {
		// Ownership (priority 255) decides how an instance starts; moving in
		// or out of it needs a restart even through the priority table.
		for _, name := range ch.Instances.Changed {
			o, c := ch.old.Instance(name), ch.cur.Instance(name)
			on, cn := ch.old.node(node), ch.cur.node(node)
			if o != nil && c != nil && on != nil && cn != nil && (o.PriorityOf(on) == 255) != (c.PriorityOf(cn) == 255) {
				out = append(out, ch.instanceLabel(name)+" priority 255 (address owner)")
			}
		}
	}
	return slices.Compact(out)
}

func (ch Changes) instanceLabel(name string) string {
	if ch.cur != nil && !ch.cur.multi {
		return "[vrrp]"
	}
	return fmt.Sprintf("[[instance]] %q", name)
}

func (c *Config) node(name string) *Node {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i]
		}
	}
	return nil
}

// Diff returns what changed from old to c. A nil old counts as empty.
func (c *Config) Diff(old *Config) Changes {
	if old == nil {
		old = &Config{}
	}
	ch := Changes{old: old, cur: c}
	switch {
	case (c.VRRP == nil) != (old.VRRP == nil):
		ch.VRRP = []string{"vrrp"}
	case c.VRRP != nil && c.VRRP.StatusPort != old.VRRP.StatusPort:
		ch.VRRP = []string{"status_port"}
	}
	if c.VRRP != nil && old.VRRP != nil && c.VRRP.LivenessPort != old.VRRP.LivenessPort {
		ch.VRRP = append(ch.VRRP, "liveness_port")
	}
	ch.Instances = diffNamed(old.Instances, c.Instances, func(in Instance) string { return in.Name })
	for _, name := range ch.Instances.Changed {
		if ch.InstanceKeys == nil {
			ch.InstanceKeys = map[string][]string{}
		}
		ch.InstanceKeys[name] = instanceDiff(old.Instance(name), c.Instance(name))
	}
	unicast := false
	for _, in := range c.Instances {
		unicast = unicast || in.Unicast
	}
	if unicast {
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
	ch.BGP = bgpDiff(old.BGP, c.BGP)
	return ch
}

// instanceDiff lists the keys whose value differs, by their TOML names.
func instanceDiff(a, b *Instance) []string {
	var out []string
	add := func(key string, changed bool) {
		if changed {
			out = append(out, key)
		}
	}
	add("vrid", a.VRID != b.VRID)
	add("version", a.Version != b.Version)
	add("auth_pass", a.AuthPass != b.AuthPass)
	add("interface", a.Interface != b.Interface || a.PinnedInterface != b.PinnedInterface)
	add("vips", !slices.Equal(a.VIPs, b.VIPs))
	add("advert_interval", a.AdvertInterval != b.AdvertInterval)
	add("preempt", a.Preempt != b.Preempt)
	add("preempt_delay", a.PreemptDelay != b.PreemptDelay)
	add("checksum", a.Checksum != b.Checksum)
	add("unicast", a.Unicast != b.Unicast)
	add("garp_repeat", a.GARPRepeat != b.GARPRepeat)
	add("garp_interval", a.GARPInterval != b.GARPInterval)
	add("garp_refresh", a.GARPRefresh != b.GARPRefresh)
	add("garp_lower_prio_repeat", a.GARPLowerPrioRepeat != b.GARPLowerPrioRepeat)
	add("garp_lower_prio_delay", a.GARPLowerPrioDelay != b.GARPLowerPrioDelay)
	add("startup_hold", a.StartupHold != b.StartupHold)
	add("startup_interval", a.StartupInterval != b.StartupInterval)
	add("preset", a.Preset != b.Preset)
	add("priority", !reflect.DeepEqual(a.Priorities, b.Priorities))
	sort.Strings(out)
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
