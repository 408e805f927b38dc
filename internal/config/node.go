package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// SelectNode finds the [[node]] this host is: the one named explicit (the
// --node flag) when that is set, else the one whose name is hostname (or
// its first label: "lb1.example.com" matches "lb1"), else the one whose
// address is among local (the host's configured addresses). The error lists
// the nodes when none matches, and names the candidates when the local
// addresses match more than one.
//
// A single-LB configuration (no [vrrp]) may have no [[node]] at all; then
// SelectNode returns a synthetic Node named explicit, else hostname, else
// "vipd", with priority 255 (the host always holds its addresses, like a
// VRRP address owner) and no address. The returned pointer points into
// c.Nodes otherwise.
func (c *Config) SelectNode(explicit, hostname string, local []netip.Addr) (*Node, error) {
	if len(c.Nodes) == 0 && c.VRRP == nil {
		name := explicit
		if name == "" {
			name = hostname
		}
		if name == "" {
			name = "vipd"
		}
		return &Node{Name: name, Priority: 255}, nil
	}
	if explicit != "" {
		for i := range c.Nodes {
			if c.Nodes[i].Name == explicit {
				return &c.Nodes[i], nil
			}
		}
		return nil, fmt.Errorf("%s: --node %q: no [[node]] has that name; nodes: %s", c.Path, explicit, c.nodeList())
	}
	if hostname != "" {
		for i := range c.Nodes {
			if strings.EqualFold(c.Nodes[i].Name, hostname) {
				return &c.Nodes[i], nil
			}
		}
		if short, _, ok := strings.Cut(hostname, "."); ok {
			for i := range c.Nodes {
				if strings.EqualFold(c.Nodes[i].Name, short) {
					return &c.Nodes[i], nil
				}
			}
		}
	}
	var matches []int
	for i, n := range c.Nodes {
		for _, a := range local {
			if n.Address.IsValid() && a.Unmap().WithZone("") == n.Address {
				matches = append(matches, i)
				break
			}
		}
	}
	switch len(matches) {
	case 1:
		return &c.Nodes[matches[0]], nil
	case 0:
		return nil, fmt.Errorf("%s: cannot tell which [[node]] this host is: no --node given, hostname %q is no node's name, and no node's address is configured here (local: %s); nodes: %s; run with --node NAME",
			c.Path, hostname, addrList(local), c.nodeList())
	default:
		var names []string
		for _, i := range matches {
			names = append(names, fmt.Sprintf("%s (%s)", c.Nodes[i].Name, c.Nodes[i].Address))
		}
		return nil, fmt.Errorf("%s: this host has the addresses of several [[node]]s: %s; run with --node NAME",
			c.Path, strings.Join(names, ", "))
	}
}

func (c *Config) nodeList() string {
	if len(c.Nodes) == 0 {
		return "none (add a [[node]] per host)"
	}
	parts := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		parts[i] = fmt.Sprintf("%s (%s)", n.Name, n.Address)
	}
	return strings.Join(parts, ", ")
}

func addrList(as []netip.Addr) string {
	if len(as) == 0 {
		return "none"
	}
	const maxShown = 8
	parts := make([]string, 0, maxShown+1)
	for i, a := range as {
		if i == maxShown {
			parts = append(parts, fmt.Sprintf("and %d more", len(as)-maxShown))
			break
		}
		parts = append(parts, a.String())
	}
	return strings.Join(parts, ", ")
}
