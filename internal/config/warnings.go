package config

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Warnings returns what is valid but probably not what the operator meant,
// for `vipd check` and the start-up log: a check timeout not shorter than
// its interval, trackers whose weights can never move the VIP, a single
// node with [vrrp], tied priorities, an unused backend, a status page that
// only loopback may read, a world-writable control socket, an https check
// without a CA. Warnings found while parsing carry file:line.
func (c *Config) Warnings() []string {
	out := append([]string(nil), c.warnings...)
	if c.VRRP == nil {
		return out
	}
	prefix := c.Path + ": "
	switch len(c.Nodes) {
	case 0:
		return out
	case 1:
		msg := fmt.Sprintf("only one [[node]] (%s): there is no peer to fail over to; add the other load balancer, or remove [vrrp] for single-LB mode", c.Nodes[0].Name)
		if c.Instances[0].Unicast {
			msg += " (with unicast = true the adverts have nobody to go to)"
		}
		return append(out, prefix+msg)
	}
	for i := range c.Instances {
		for _, w := range c.instanceWarnings(&c.Instances[i]) {
			out = append(out, prefix+w)
		}
	}
	return out
}

// instanceWarnings finds tied priorities and tracker weights that can never
// move the VIP of one instance.
func (c *Config) instanceWarnings(in *Instance) []string {
	var out []string
	of := ""
	if c.multi {
		of = fmt.Sprintf(" in [[instance]] %q", in.Name)
	}
	type np struct {
		name string
		prio int
	}
	nodes := make([]np, 0, len(c.Nodes))
	for i := range c.Nodes {
		nodes = append(nodes, np{c.Nodes[i].Name, int(in.PriorityOf(&c.Nodes[i]))})
	}
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].prio > nodes[j].prio })
	for i := 1; i < len(nodes); i++ {
		if nodes[i].prio == nodes[i-1].prio {
			out = append(out, fmt.Sprintf("[[node]] %q and %q both have priority %d%s; the higher address wins the tie (RFC 9568 section 6.4.3), so give them different priorities to choose the master",
				nodes[i-1].name, nodes[i].name, nodes[i].prio, of))
		}
	}

	var weighted []Track
	sumNeg, sumPos := 0, 0
	for _, t := range c.Tracks {
		if !t.Applies(in.Name) {
			continue
		}
		switch {
		case t.Weight < 0:
			sumNeg -= t.Weight
		case t.Weight > 0:
			sumPos += t.Weight
		default:
			continue
		}
		weighted = append(weighted, t)
	}
	if len(weighted) == 0 {
		return out
	}
	top, next := nodes[0], nodes[1]
	if top.prio == 255 {
		return append(out, fmt.Sprintf("[[node]] %q has priority 255 (address owner)%s, which trackers never adjust, so their weights cannot move the VIP off it; use 254 or less", top.name, of))
	}
	gap := top.prio - next.prio
	// Worst case for the master: every tracker fails on it (negative
	// weights subtract, positive ones are not earned) while every tracker is
	// healthy on the next node. Results are clamped to 1..254 (RFC 9568).
	worstTop := clamp(top.prio-sumNeg, 1, 254)
	bestNext := clamp(next.prio+sumPos, 1, 254)
	if worstTop >= bestNext {
		tie := ""
		if worstTop == bestNext {
			tie = " (equal priorities go to the higher address)"
		}
		return append(out, fmt.Sprintf("trackers can never move the VIP%s from %q to %q: with all of them failing %q has %d - %d = %d, and %q with all healthy has %d + %d = %d%s; the weights must add up to more than the priority gap %d",
			of, top.name, next.name, top.name, top.prio, sumNeg, worstTop, next.name, next.prio, sumPos, bestNext, tie, gap))
	}
	for _, t := range weighted {
		w := t.Weight
		if w < 0 {
			w = -w
		}
		if w <= gap {
			out = append(out, fmt.Sprintf("[[track]] %q weight %d cannot move the VIP%s on its own: the priority gap between %q (%d) and %q (%d) is %d; it only matters together with other trackers",
				t.Name, t.Weight, of, top.name, top.prio, next.name, next.prio, gap))
		}
	}
	return out
}

func clamp(v, lo, hi int) int {
	return max(lo, min(hi, v))
}

// minBcryptCost is the cost below which a stolen hash is cheap to crack.
const minBcryptCost = 10

// httpWarnings: weak password hashes, and a page open to every network
// without users.
func (d *decoder) httpWarnings(h *HTTP) {
	if h == nil {
		return
	}
	for i, u := range h.Users {
		if c, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil && c < minBcryptCost {
			d.warnAt(indexPath("http.user", i)+".password_hash", `[[http.user]] %q: bcrypt cost %d is below %d, so a copied config file gives the password away quickly; generate the hash with htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n'`,
				u.Name, c, minBcryptCost)
		}
	}
	if len(h.Users) > 0 || !listensBeyondLoopback(h.Listen) {
		return
	}
	for _, p := range h.Allow {
		if p.Bits() == 0 {
			d.warnAt("http.allow", `[http] listen = %q with allow = [%q] and no [[http.user]]: anyone who reaches this port reads the status and metrics; add an [[http.user]] or list only the operators' networks in allow`,
				h.Listen, p.String())
			return
		}
	}
}

func listensBeyondLoopback(listen string) bool {
	if strings.HasPrefix(listen, ":") {
		return true
	}
	ap, err := netip.ParseAddrPort(listen)
	return err == nil && !ap.Addr().IsLoopback()
}

// HashesReadable is in the warning about a file whose password hashes
// every local user can read (vipd doctor's files check reports the same
// thing itself and skips this warning).
const HashesReadable = "lets every local user read the [[http.user]] password hashes"

// fileWarnings: a file that holds password hashes and every local user
// can read.
func fileWarnings(c *Config, mode os.FileMode) []string {
	if mode&0o004 == 0 || c.HTTP == nil || len(c.HTTP.Users) == 0 {
		return nil
	}
	return []string{fmt.Sprintf(`%s: mode %04o %s; chmod 0640 %s and chown root:vipd (the daemon's group)`,
		c.Path, mode.Perm(), HashesReadable, c.Path)}
}
