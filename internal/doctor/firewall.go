package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/vipd/vipd/vrrp"
)

// The firewall check asks, for every packet vipd nodes exchange, what the
// host's rules do with it: VRRP adverts (IP protocol 112, to 224.0.0.18 or
// ff02::12, or unicast to the node) in and out, and the status beacons
// (UDP status_port) in and out. Rules are read from `nft -j list ruleset`
// and, when the iptables in use is the legacy one (whose rules nft does not
// show), from `iptables-save`. Only common matches are understood
// (protocol, addresses, ports, interface names, conntrack state, packet
// type); a rule with another match is not assumed to match, so doctor may
// miss a drop but does not invent one, and an accept it cannot judge makes
// a later drop a warning ("may drop") instead of an error.

// flow is one kind of packet vipd needs through.
type flow struct {
	what     string // "VRRP adverts from lb2 (10.0.0.12) to 224.0.0.18"
	out      bool   // leaving this host (output hook)
	v6       bool
	proto    uint8
	src, dst netip.Addr
	dport    uint16
	ifname   string // iif for incoming, oif for outgoing
	// established: conntrack sees both directions (unicast VRRP and the
	// beacons, which go both ways between the same addresses), so a
	// "ct state established accept" rule lets it through once both
	// nodes talk; multicast adverts are always "new".
	established bool
	severity    string
	fix         string
}

// tri is a match result: no, yes, or cannot tell.
type tri int

const (
	no tri = iota
	yes
	maybe
)

func triOf(b bool) tri {
	if b {
		return yes
	}
	return no
}

// match is one condition of a rule.
type match func(f flow) tri

// fwRule is a rule: all matches, then a verdict.
type fwRule struct {
	where   string // "nft table inet filter chain input (handle 4)", or the iptables-save line
	matches []match
	verdict string // accept, drop, jump, goto, return, or "" (no verdict: counter, log)
	target  string // the chain of jump / goto
}

// fwChain is a chain; a base chain has a hook.
type fwChain struct {
	family string // ip, ip6, inet
	table  string
	name   string
	hook   string // input, output, prerouting, postrouting; "" for a regular chain
	prio   int
	policy string
	rules  []fwRule
}

// ruleset is one firewall's chains.
type ruleset struct {
	source string // "nftables", "iptables-legacy"
	chains []*fwChain
}

func (rs *ruleset) chain(family, table, name string) *fwChain {
	for _, c := range rs.chains {
		if c.family == family && c.table == table && c.name == name {
			return c
		}
	}
	return nil
}

// outcome is what a firewall does with a flow.
type outcome struct {
	dropped bool
	sure    bool   // false: an accept or drop doctor could not judge is on the way
	by      string // the rule or policy that drops
}

// evaluate runs f through the base chains of its path in priority order:
// in nftables a packet must pass every base chain on its hook (an accept
// ends one chain), and a drop anywhere is final.
func (rs *ruleset) evaluate(f flow) outcome {
	hooks := map[string]bool{"prerouting": !f.out, "input": !f.out, "output": f.out, "postrouting": f.out}
	var bases []*fwChain
	for _, c := range rs.chains {
		if c.hook != "" && hooks[c.hook] && familySees(c.family, f.v6) {
			bases = append(bases, c)
		}
	}
	sort.SliceStable(bases, func(i, j int) bool {
		// prerouting before input, output before postrouting.
		oi, oj := hookOrder(bases[i].hook), hookOrder(bases[j].hook)
		if oi != oj {
			return oi < oj
		}
		return bases[i].prio < bases[j].prio
	})
	unsure := false
	for _, c := range bases {
		v, by, sure := rs.walk(c, f, 0)
		unsure = unsure || !sure
		if v == "" {
			v, by = c.policy, fmt.Sprintf("the policy of %s", c.where())
		}
		if v == "drop" {
			return outcome{dropped: true, sure: !unsure, by: by}
		}
	}
	return outcome{}
}

func hookOrder(h string) int {
	if h == "prerouting" || h == "output" {
		return 0
	}
	return 1
}

func familySees(family string, v6 bool) bool {
	switch family {
	case "inet":
		return true
	case "ip":
		return !v6
	case "ip6":
		return v6
	}
	return false
}

func (c *fwChain) where() string {
	return fmt.Sprintf("chain %s in table %s %s", c.name, c.family, c.table)
}

// walk returns the verdict of chain c for f ("" when the chain ends
// without one), the rule that gave it, and whether every rule on the way
// could be judged.
func (rs *ruleset) walk(c *fwChain, f flow, depth int) (verdict, by string, sure bool) {
	sure = true
	if depth > 16 {
		return "", "", false
	}
	for _, r := range c.rules {
		m := yes
		for _, x := range r.matches {
			switch x(f) {
			case no:
				m = no
			case maybe:
				if m == yes {
					m = maybe
				}
			}
			if m == no {
				break
			}
		}
		if m == no || r.verdict == "" {
			continue
		}
		if m == maybe {
			// Cannot tell: assume it does not match, and say so.
			if r.verdict == "accept" || r.verdict == "drop" || r.verdict == "jump" || r.verdict == "goto" {
				sure = false
			}
			continue
		}
		switch r.verdict {
		case "accept", "drop":
			return r.verdict, r.where, sure
		case "return":
			return "", "", sure
		case "jump", "goto":
			t := rs.chain(c.family, c.table, r.target)
			if t == nil {
				sure = false
				continue
			}
			v, by, s := rs.walk(t, f, depth+1)
			sure = sure && s
			if v != "" || r.verdict == "goto" {
				return v, by, sure
			}
		}
	}
	return "", "", sure
}

// firewallFlows lists what vipd exchanges with the other nodes for the
// instance: adverts in and out, and (once per node, with the first
// instance) the status beacons.
func firewallFlows(node Node, peers []Node, in Instance, statusPort uint16, routeIf func(netip.Addr) (string, error), beacons bool) []flow {
	v6 := in.IPv6()
	group := vrrp.IPv4Group
	if v6 {
		group = vrrp.IPv6Group
	}
	vrrpFix := "let IP protocol 112 (vrrp) through between the nodes, e.g. nft add rule inet filter input meta l4proto vrrp accept (before the drop), or with iptables: iptables -I INPUT -p vrrp -j ACCEPT"
	var out []flow
	if in.Receive.Unicast {
		for _, p := range peers {
			out = append(out,
				flow{what: fmt.Sprintf("VRRP adverts from %s (%s)", p.Name, p.Addr), v6: v6, proto: vrrp.ProtocolNumber,
					src: p.Addr, dst: node.Addr, ifname: in.Interface, established: true, severity: SevError, fix: vrrpFix},
				flow{what: fmt.Sprintf("VRRP adverts to %s (%s)", p.Name, p.Addr), out: true, v6: v6, proto: vrrp.ProtocolNumber,
					src: node.Addr, dst: p.Addr, ifname: in.Interface, established: true, severity: SevError,
					fix: strings.Replace(vrrpFix, "input", "output", 1)})
		}
	} else {
		src := func(p Node) netip.Addr {
			if v6 {
				return netip.MustParseAddr("fe80::1") // over IPv6 the source is a link-local address
			}
			return p.Addr
		}
		for _, p := range peers {
			out = append(out, flow{what: fmt.Sprintf("VRRP adverts from %s (%s) to %s", p.Name, p.Addr, group), v6: v6, proto: vrrp.ProtocolNumber,
				src: src(p), dst: group, ifname: in.Interface, severity: SevError, fix: vrrpFix})
		}
		own := node.Addr
		if v6 {
			own = netip.MustParseAddr("fe80::2")
		}
		out = append(out, flow{what: fmt.Sprintf("this node's VRRP adverts to %s", group), out: true, v6: v6, proto: vrrp.ProtocolNumber,
			src: own, dst: group, ifname: in.Interface, severity: SevError, fix: strings.Replace(vrrpFix, "input", "output", 1)})
	}
	if !beacons || statusPort == 0 {
		return out
	}
	for _, p := range peers {
		via, err := routeIf(p.Addr)
		if err != nil {
			via = in.Interface
		}
		fix := fmt.Sprintf("let UDP %d through between the node addresses (the status beacons: status page, drill safety; they never move the VIP)", statusPort)
		out = append(out,
			flow{what: fmt.Sprintf("status beacons from %s (%s, UDP %d)", p.Name, p.Addr, statusPort), v6: p.Addr.Is6(), proto: 17,
				src: p.Addr, dst: node.Addr, dport: statusPort, ifname: via, established: true, severity: SevWarning, fix: fix},
			flow{what: fmt.Sprintf("status beacons to %s (%s, UDP %d)", p.Name, p.Addr, statusPort), out: true, v6: p.Addr.Is6(), proto: 17,
				src: node.Addr, dst: p.Addr, dport: statusPort, ifname: via, established: true, severity: SevWarning, fix: fix})
	}
	return out
}

// readFirewall reads the rulesets in force: nftables, and iptables when it
// is the legacy variant (iptables-nft rules are in nft's output already).
func readFirewall(ctx context.Context, run func(ctx context.Context, name string, args ...string) ([]byte, error), v6 bool) ([]*ruleset, []error) {
	var sets []*ruleset
	var errs []error
	nftOut, nftErr := run(ctx, "nft", "-j", "list", "ruleset")
	if nftErr == nil {
		rs, err := parseNft(nftOut)
		if err != nil {
			errs = append(errs, fmt.Errorf("nft -j list ruleset: %w", err))
		} else {
			sets = append(sets, rs)
		}
	} else if !errors.Is(nftErr, ErrNotInstalled) {
		errs = append(errs, fmt.Errorf("nft -j list ruleset: %w", nftErr))
	}
	save := "iptables-save"
	if v6 {
		save = "ip6tables-save"
	}
	ver, err := run(ctx, save, "--version")
	if err != nil {
		if !errors.Is(err, ErrNotInstalled) {
			errs = append(errs, fmt.Errorf("%s --version: %w", save, err))
		}
		return sets, errs
	}
	if strings.Contains(string(ver), "nf_tables") && nftErr == nil {
		return sets, errs // the same rules, already read through nft
	}
	out, err := run(ctx, save)
	if err != nil {
		return sets, append(errs, fmt.Errorf("%s: %w", save, err))
	}
	sets = append(sets, parseIptablesSave(string(out), save))
	return sets, errs
}

// firewallFindings judges every flow against every ruleset.
func firewallFindings(sets []*ruleset, flows []flow, instance string) []Finding {
	var out []Finding
	for _, rs := range sets {
		for _, f := range flows {
			o := rs.evaluate(f)
			if !o.dropped {
				continue
			}
			sev, how := f.severity, "drops"
			if !o.sure {
				sev, how = SevWarning, "may drop (a rule before it has a match doctor does not evaluate)"
			}
			out = append(out, finding(CheckFirewall, sev, instance,
				fmt.Sprintf("%s %s %s: %s", rs.source, how, f.what, o.by), f.fix))
		}
	}
	return out
}
