package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// VRRP defaults beyond those in build.go.
const (
	DefaultVersion             = VRRPv3
	DefaultGARPLowerPrioRepeat = 1
	DefaultGARPLowerPrioDelay  = time.Second
	maxAuthPass                = 8 // RFC 3768 section 5.3.10: 8 octets of authentication data
	maxV2Interval              = 255 * time.Second
)

// instanceDefaults is what an [[instance]] inherits from [vrrp]: every key
// the [vrrp] table sets, plus whether it set advert_interval (a VRRPv2
// instance picks 1s when nobody did).
type instanceDefaults struct {
	Instance
	intervalSet bool
	intervalAt  string // the path of [vrrp] advert_interval, for messages
}

// vrrpTables reads [vrrp] and [[instance]]: either a [vrrp] table with a
// vrid (one instance), or [[instance]] tables that take their defaults from
// an optional [vrrp] table of shared settings.
func (d *decoder) vrrpTables(root *table, c *Config) {
	vt := root.sub("vrrp", "[vrrp]")
	if vt == nil && root.has("vrrp") {
		d.vrrpInvalid = true
	}
	insts, _ := root.list("instance")
	if root.has("instance") && len(insts) == 0 {
		d.vrrpInvalid = true
	}
	if vt == nil && len(insts) == 0 {
		return
	}
	c.VRRP = &VRRP{StatusPort: DefaultStatusPort, LivenessPort: DefaultLivenessPort}
	if vt != nil {
		vt.hints = vrrpHints
		c.VRRP.StatusPort = uint16(vt.integer("status_port", DefaultStatusPort, 0, 65535, "the default is 9601; 0 turns the beacons off"))
		c.VRRP.LivenessPort = uint16(vt.integer("liveness_port", DefaultLivenessPort, 0, 65535, "the default is 9602 (TCP and UDP); 0 turns crash detection between vipd nodes off"))
		if p := c.VRRP.LivenessPort; p != 0 && p == c.VRRP.StatusPort {
			v, _ := vt.get("liveness_port")
			vt.bad("liveness_port", v, "is the status_port too (both use UDP); pick another port, e.g. liveness_port = %d", DefaultLivenessPort)
		}
	}
	if len(insts) == 0 {
		in := d.instance(vt, instanceDefaults{}, false)
		if in.Name == "" {
			in.Name = fmt.Sprintf("vrid-%d", in.VRID)
		}
		c.Instances = []Instance{in}
		vt.finish()
		return
	}
	c.multi = true
	var def instanceDefaults
	if vt != nil {
		for _, k := range []string{"vrid", "vips", "name", "priority"} {
			if vt.has(k) {
				v, _ := vt.get(k)
				vt.bad(k, v, "with [[instance]] tables, [vrrp] holds only the settings every instance shares; move %s into each [[instance]]", k)
			}
		}
		def = d.template(vt)
		vt.finish()
	}
	for i, m := range insts {
		t := d.table(m, indexPath("instance", i), "instance", elemLabel("instance", m, i))
		t.hints = instanceHints
		if !t.has("name") {
			t.badTable(`missing name; add name = "api" (status, logs and notify hooks name the instance)`)
		}
		c.Instances = append(c.Instances, d.instance(t, def, true))
		t.finish()
	}
}

var instanceHints = func() map[string]string {
	h := map[string]string{
		"status_port":   "status_port is shared by every instance: set it in [vrrp]",
		"liveness_port": "liveness_port is shared by every instance: set it in [vrrp]",
	}
	for k, v := range vrrpHints {
		h[k] = v
	}
	return h
}()

// template reads the shared settings of a [vrrp] table that sits beside
// [[instance]] tables.
func (d *decoder) template(t *table) instanceDefaults {
	in := d.instanceKeys(t, instanceDefaults{}, false)
	return instanceDefaults{Instance: in, intervalSet: t.has("advert_interval"), intervalAt: t.keyPath("advert_interval")}
}

// instance reads one instance: the [vrrp] table (pinned false) or an
// [[instance]] (pinned: its own interface is not overridden per node).
func (d *decoder) instance(t *table, def instanceDefaults, isInstance bool) Instance {
	if !t.has("vrid") {
		t.badTable("missing vrid; add vrid = 51 (1..255, the same on every node and unique on this L2 segment)")
	}
	if !t.has("vips") {
		t.badTable(`missing vips; add vips = ["192.168.30.30"] (the address clients use; /32 unless a prefix is given)`)
	}
	in := d.instanceKeys(t, def, true)
	in.PinnedInterface = isInstance && t.has("interface")
	return in
}

// instanceKeys reads the keys an instance and the shared [vrrp] table have
// in common; full is false for the shared table (no vrid, vips, name).
func (d *decoder) instanceKeys(t *table, def instanceDefaults, full bool) Instance {
	t.hints = vrrpHints
	if full {
		t.hints = instanceHints
	}
	in := def.Instance
	in.Priorities = nil
	in.PinnedInterface = false
	if full {
		in.Name = t.str("name", "")
		if t.has("name") && in.Name == "" {
			t.bad("name", "", `must not be empty; write name = "api"`)
		}
		in.VRID = uint8(t.integer("vrid", 0, 1, 255, "pick one per VIP group, the same on every node and unique on this L2 segment, e.g. vrid = 51"))
		in.VIPs = d.vips(t)
		in.Priorities = d.priorities(t)
	}
	in.Preset = t.oneOf("preset", def.Preset, PresetKeepalived)
	defVersion := def.Version
	if defVersion == 0 {
		defVersion = DefaultVersion
	}
	in.Version = int(t.integer("version", int64(defVersion), VRRPv2, VRRPv3, "3 is VRRPv3 (RFC 9568, the default); 2 is VRRPv2 (RFC 3768) for running beside a keepalived with vrrp_version 2"))
	in.AuthPass = t.str("auth_pass", def.AuthPass)
	if t.has("auth_pass") && isString(t.m["auth_pass"]) {
		switch n := len(in.AuthPass); {
		case n == 0:
			t.bad("auth_pass", t.m["auth_pass"], "must not be empty; remove it for no authentication")
		case n > maxAuthPass:
			t.bad("auth_pass", t.m["auth_pass"], "is %d bytes; VRRPv2 carries at most %d (keepalived cuts longer passwords to 8 too): write %q", n, maxAuthPass, in.AuthPass[:maxAuthPass])
			in.AuthPass = in.AuthPass[:maxAuthPass]
		}
	}
	in.Interface = t.str("interface", def.Interface)

	in.AdvertInterval = d.advertInterval(t, def, in.Version, in.Preset)
	in.Preempt = t.boolean("preempt", boolDefault(def, def.Preempt, true))
	in.PreemptDelay = t.duration("preempt_delay", def.PreemptDelay, 0, 1000*time.Second, "30s", "keepalived's range")
	in.Checksum = t.oneOf("checksum", strDefault(def.Checksum, DefaultChecksum), ChecksumPseudoHeader, ChecksumRFC9568)
	if in.Version == VRRPv2 && t.has("checksum") {
		t.bad("checksum", t.m["checksum"], "applies to VRRPv3 only: a VRRPv2 checksum always covers the VRRP message alone (RFC 3768 section 5.3.8); remove it")
	}
	in.Unicast = t.boolean("unicast", def.Unicast)
	in.GARPRepeat = int(t.integer("garp_repeat", int64(intDefault(def, def.GARPRepeat, DefaultGARPRepeat)), 1, 100, "the default is 5"))
	in.GARPInterval = t.duration("garp_interval", durDefault(def, def.GARPInterval, DefaultGARPInterval), 10*time.Millisecond, 10*time.Second, "100ms")
	in.GARPRefresh = t.duration("garp_refresh", durDefault(def, def.GARPRefresh, DefaultGARPRefresh), 0, 24*time.Hour, "60s")
	if in.GARPRefresh > 0 && in.GARPRefresh < time.Second {
		t.bad("garp_refresh", t.m["garp_refresh"], `must be "0s" (off) or at least 1s; try "60s"`)
		in.GARPRefresh = DefaultGARPRefresh
	}
	in.GARPLowerPrioRepeat = int(t.integer("garp_lower_prio_repeat", int64(intDefault(def, def.GARPLowerPrioRepeat, DefaultGARPLowerPrioRepeat)), 0, 100,
		"rounds of gratuitous ARP a MASTER sends when it hears a lower priority advert (keepalived's vrrp_garp_lower_prio_repeat); 0 sends none"))
	in.GARPLowerPrioDelay = t.duration("garp_lower_prio_delay", durDefault(def, def.GARPLowerPrioDelay, DefaultGARPLowerPrioDelay), 0, time.Hour, "1s",
		"at most one such burst per this period (keepalived's vrrp_garp_lower_prio_delay)")
	in.StartupHold = t.boolean("startup_hold", boolDefault(def, def.StartupHold, true))
	in.StartupInterval = t.duration("startup_interval", durDefault(def, def.StartupInterval, DefaultStartupInterval), 0, maxAdvertInterval, "1s", "the advert interval a starting node assumes until it hears one")
	return in
}

// The shared [vrrp] table of a file with [[instance]] tables is read into
// an Instance too; a zero def means there was none, and the built-in
// defaults apply. def.GARPRepeat is never 0 once read, so it tells which.
func defined(def instanceDefaults) bool { return def.GARPRepeat != 0 }

func boolDefault(def instanceDefaults, v, builtin bool) bool {
	if defined(def) {
		return v
	}
	return builtin
}

func durDefault(def instanceDefaults, v, builtin time.Duration) time.Duration {
	if defined(def) {
		return v
	}
	return builtin
}

func intDefault(def instanceDefaults, v, builtin int) int {
	if defined(def) {
		return v
	}
	return builtin
}

func strDefault(v, builtin string) string {
	if v != "" {
		return v
	}
	return builtin
}

// advertInterval reads advert_interval: 10 ms steps for VRRPv3, whole
// seconds 1..255 for VRRPv2 (whose advert carries one byte of seconds).
func (d *decoder) advertInterval(t *table, def instanceDefaults, version int, preset string) time.Duration {
	builtin := DefaultAdvertInterval
	if preset == PresetKeepalived || version == VRRPv2 {
		builtin = KeepalivedAdvertInterval
	}
	if def.intervalSet {
		builtin = def.AdvertInterval
	}
	if version == VRRPv2 {
		if !t.has("advert_interval") && def.intervalSet && (builtin < time.Second || builtin%time.Second != 0) {
			t.badTable("version = 2 needs an advert interval in whole seconds, but [vrrp] advert_interval is %s%s; set advert_interval = \"1s\" in this instance",
				fmtDur(builtin), d.lineOf(def.intervalAt))
			return time.Second
		}
		iv := t.duration("advert_interval", builtin, time.Second, maxV2Interval, "1s", "VRRPv2 carries whole seconds, 1..255 (RFC 3768 section 5.3.7)")
		if iv%time.Second != 0 {
			t.bad("advert_interval", t.m["advert_interval"], "VRRPv2 carries whole seconds (RFC 3768 section 5.3.7); try %q, or version = 3 for sub-second adverts", fmtDur(iv.Round(time.Second)))
			iv = iv.Round(time.Second)
		}
		return iv
	}
	iv := t.duration("advert_interval", builtin, advertIntervalGranularity, maxAdvertInterval, "200ms", "RFC 9568 12-bit centiseconds")
	if iv%advertIntervalGranularity != 0 {
		r := max(iv.Round(advertIntervalGranularity), advertIntervalGranularity)
		t.bad("advert_interval", t.m["advert_interval"], "must be a multiple of 10ms (the advert carries centiseconds, RFC 9568 section 5.2.7); try %q", fmtDur(r))
		iv = builtin
	}
	return iv
}

func (d *decoder) vips(t *table) []netip.Prefix {
	vips, ok := t.strings("vips")
	if ok && len(vips) == 0 {
		t.bad("vips", []any{}, `must list at least one address; e.g. vips = ["192.168.30.30/24"]`)
	}
	var out []netip.Prefix
	seen := map[netip.Addr]int{}
	for i, s := range vips {
		p := indexPath(t.keyPath("vips"), i)
		pfx, err := parseVIP(s)
		if err != nil {
			d.errAt(p, "%s vips[%d] = %q: %v", t.label, i, s, err)
			continue
		}
		if j, dup := seen[pfx.Addr()]; dup {
			d.errAt(p, "%s vips[%d] = %q: the same address as vips[%d]; list each VIP once", t.label, i, s, j)
			continue
		}
		seen[pfx.Addr()] = i
		if len(out) > 0 && out[0].Addr().Is4() != pfx.Addr().Is4() {
			d.errAt(p, "%s vips[%d] = %q: %s, but vips[0] is %s; one VRRP instance carries one address family (RFC 9568 section 5), so declare the other family as a second [[instance]]",
				t.label, i, s, family(pfx.Addr()), family(out[0].Addr()))
			continue
		}
		out = append(out, pfx)
	}
	return out
}

// priorities reads `priority = { lb1 = 150, lb2 = 100 }`; node names are
// checked in validateInstances.
func (d *decoder) priorities(t *table) map[string]uint8 {
	v, ok := t.get("priority")
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.bad("priority", v, "must be a table of node priorities; write priority = { lb1 = 150, lb2 = 100 } (a node without an entry uses its [[node]] priority)")
		return nil
	}
	out := make(map[string]uint8, len(m))
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		n, ok := m[name].(int64)
		if !ok || n < 1 || n > 255 {
			d.errAt(t.keyPath("priority"), "%s priority.%s = %s: must be an integer between 1 and 255; use 1..254, higher wins (255 marks the address owner)",
				t.label, name, render(m[name]))
			continue
		}
		out[name] = uint8(n)
	}
	return out
}

// instancePath is where an instance is written: "vrrp" or "instance[i]".
func instancePath(c *Config, i int) string {
	if !c.multi {
		return "vrrp"
	}
	return indexPath("instance", i)
}

func instanceLabel(c *Config, i int) string {
	if instancePath(c, i) == "vrrp" {
		return "[vrrp]"
	}
	return fmt.Sprintf("[[instance]] %q", c.Instances[i].Name)
}

// validateInstances checks what spans an instance and the nodes, and the
// instances against each other.
func (d *decoder) validateInstances(c *Config) {
	if c.VRRP == nil {
		return
	}
	if len(c.Nodes) == 0 {
		where := "vrrp"
		if c.multi {
			where = "instance[0]"
		}
		d.errAt(where, `no [[node]] tables; add one per load-balancer host: [[node]] name = "lb1" address = "192.168.30.21" priority = 150 (or remove the VRRP tables for a single LB without failover)`)
	}
	nodeNames := map[string]bool{}
	for _, n := range c.Nodes {
		nodeNames[n.Name] = true
	}
	names := map[string]int{}
	type vridKey struct {
		vrid  uint8
		v4    bool
		iface string
	}
	vrids := map[vridKey]int{}
	vipOwner := map[netip.Addr]int{}
	for i := range c.Instances {
		in := &c.Instances[i]
		p, label := instancePath(c, i), instanceLabel(c, i)
		if in.Name != "" {
			if j, dup := names[in.Name]; dup {
				d.errAt(p+".name", "%s name = %q: already used by the [[instance]]%s; instance names must be unique", label, in.Name, d.lineOf(instancePath(c, j)))
			} else {
				names[in.Name] = i
			}
		}
		d.validateInstanceNodes(c, in, p, label)
		for _, name := range sortedKeys(in.Priorities) {
			if !nodeNames[name] {
				var all []string
				for _, n := range c.Nodes {
					all = append(all, n.Name)
				}
				d.errAt(p+".priority", "%s priority.%s: no [[node]] has that name; %s", label, name, pickFrom("node", name, all))
			}
		}
		if in.Version == VRRPv2 && len(in.VIPs) > 0 && in.VIPs[0].Addr().Is6() {
			d.errAt(p+".version", "%s version = 2: VRRPv2 (RFC 3768) is IPv4 only; use version = 3 for IPv6 VIPs", label)
		}
		if in.AuthPass != "" && in.Version != VRRPv2 {
			d.errAt(p+".auth_pass", "%s auth_pass: VRRPv3 (RFC 9568) has no authentication; remove auth_pass, or set version = 2 to run beside a keepalived with auth_type PASS", label)
		}
		if len(in.VIPs) > 0 && in.VRID != 0 {
			k := vridKey{vrid: in.VRID, v4: in.VIPs[0].Addr().Is4(), iface: in.Interface}
			if j, dup := vrids[k]; dup {
				d.errAt(p+".vrid", "%s vrid = %d: %s uses the same vrid on the same link and family; give each instance its own vrid", label, in.VRID, instanceLabel(c, j))
			} else {
				vrids[k] = i
			}
		}
		for j, v := range in.VIPs {
			if o, dup := vipOwner[v.Addr()]; dup && o != i {
				d.errAt(indexPath(p+".vips", j), "%s vips[%d] = %q: already a VIP of %s; each VIP belongs to one instance", label, j, v, instanceLabel(c, o))
				continue
			}
			vipOwner[v.Addr()] = i
		}
	}
}

func (d *decoder) validateInstanceNodes(c *Config, in *Instance, p, label string) {
	var missing []string
	owner := -1
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if in.InterfaceFor(n) == "" {
			missing = append(missing, nodeLabel(*n, i))
		}
		if in.PriorityOf(n) == 255 {
			if owner >= 0 {
				d.errAt(indexPath("node", i)+".priority", "%s: %s and %s both have priority 255 (address owner); only one node may own the VIP: use 1..254 for the other",
					label, nodeLabel(c.Nodes[owner], owner), nodeLabel(*n, i))
			} else {
				owner = i
			}
		}
	}
	if len(missing) > 0 {
		d.errAt(p, `%s: missing interface; add interface = "eth0" (the link that carries the VIP), or set interface in every [[node]] (missing in %s)`,
			label, strings.Join(missing, ", "))
	}
	if len(in.VIPs) == 0 {
		return
	}
	vipFam := in.VIPs[0].Addr().Is4()
	var same, other []int
	for i, n := range c.Nodes {
		if !n.Address.IsValid() {
			continue
		}
		if n.Address.Is4() == vipFam {
			same = append(same, i)
		} else {
			other = append(other, i)
		}
	}
	switch {
	case len(other) > 0 && len(same) == 0:
		d.errAt(p+".vips", "%s vips: %s VIPs, but every [[node]] address is %s; one VRRP instance carries one address family (RFC 9568 section 5): use %s VIPs, or give the nodes %s addresses",
			label, family(in.VIPs[0].Addr()), family(c.Nodes[other[0]].Address), family(c.Nodes[other[0]].Address), family(in.VIPs[0].Addr()))
	case len(other) > 0:
		for _, i := range other {
			n := c.Nodes[i]
			d.errAt(indexPath("node", i)+".address", "%s address = %q: %s, but the VIPs of %s are %s; the adverts carry one address family, so give this node its %s address",
				nodeLabel(n, i), n.Address, family(n.Address), label, family(in.VIPs[0].Addr()), family(in.VIPs[0].Addr()))
		}
	}
	for j, vip := range in.VIPs {
		for i := range c.Nodes {
			n := &c.Nodes[i]
			if n.Address == vip.Addr() && in.PriorityOf(n) != 255 {
				d.errAt(indexPath(p+".vips", j), "%s vips[%d] = %q: this is %s's own address, so it would never move; use a free address for the VIP (or make %s its owner with priority 255)",
					label, j, vip, nodeLabel(*n, i), n.Name)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
