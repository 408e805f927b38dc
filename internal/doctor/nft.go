package doctor

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseNft reads `nft -j list ruleset` (libnftables JSON, schema 1).
func parseNft(b []byte) (*ruleset, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	rs := &ruleset{source: "nftables"}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["chain"]; ok {
			var c struct {
				Family, Table, Name, Type, Hook, Policy string
				Prio                                    json.RawMessage
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, err
			}
			if c.Hook != "" && c.Type != "filter" {
				continue // nat and route chains do not filter
			}
			prio, _ := strconv.Atoi(string(c.Prio)) // a named priority ("raw") is a string; rare in JSON output
			policy := c.Policy
			if policy == "" {
				policy = "accept"
			}
			rs.chains = append(rs.chains, &fwChain{family: c.Family, table: c.Table, name: c.Name, hook: c.Hook, prio: prio, policy: policy})
		}
	}
	for _, obj := range doc.Nftables {
		raw, ok := obj["rule"]
		if !ok {
			continue
		}
		var r struct {
			Family, Table, Chain string
			Handle               int
			Expr                 []map[string]json.RawMessage
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		c := rs.chain(r.Family, r.Table, r.Chain)
		if c == nil {
			continue
		}
		rule := fwRule{where: fmt.Sprintf("rule %d of %s", r.Handle, c.where())}
		for _, e := range r.Expr {
			nftStatement(&rule, e)
		}
		c.rules = append(c.rules, rule)
	}
	return rs, nil
}

// nftStatement adds one expression of a rule: a match, a verdict, or a
// statement that neither matches nor decides (counter, log).
func nftStatement(r *fwRule, e map[string]json.RawMessage) {
	for k, v := range e {
		switch k {
		case "match":
			r.matches = append(r.matches, nftMatch(v))
		case "accept", "drop":
			r.verdict = k
		case "reject":
			r.verdict = "drop"
		case "return":
			r.verdict = "return"
		case "jump", "goto":
			var t struct{ Target string }
			json.Unmarshal(v, &t)
			r.verdict, r.target = k, t.Target
		case "xt":
			// iptables-nft's translation of what nft cannot show.
			var x struct{ Type, Name string }
			json.Unmarshal(v, &x)
			switch {
			case x.Type == "target" && (x.Name == "REJECT" || x.Name == "DROP"):
				r.verdict = "drop"
			case x.Type == "target" && x.Name == "ACCEPT":
				r.verdict = "accept"
			case x.Type == "match":
				r.matches = append(r.matches, func(flow) tri { return maybe })
			}
		case "counter", "log", "comment", "mangle", "notrack", "meta", "ct", "quota":
			// statements: no effect on the verdict
		default:
			// limit, queue, set updates...: cannot tell
			r.matches = append(r.matches, func(flow) tri { return maybe })
		}
	}
}

// nftMatch turns {"op", "left", "right"} into a match.
func nftMatch(raw json.RawMessage) match {
	var m struct {
		Op    string
		Left  map[string]json.RawMessage
		Right json.RawMessage
	}
	if json.Unmarshal(raw, &m) != nil {
		return func(flow) tri { return maybe }
	}
	field := func(f flow) (kind string, ok tri, val any) { return "", maybe, nil }
	if p, ok := m.Left["payload"]; ok {
		var pl struct{ Protocol, Field string }
		json.Unmarshal(p, &pl)
		field = payloadField(pl.Protocol, pl.Field)
	} else if mt, ok := m.Left["meta"]; ok {
		var k struct{ Key string }
		json.Unmarshal(mt, &k)
		field = metaField(k.Key)
	} else if ct, ok := m.Left["ct"]; ok {
		var k struct{ Key string }
		json.Unmarshal(ct, &k)
		if k.Key == "state" {
			field = func(f flow) (string, tri, any) {
				if f.established {
					return "ctstate", yes, []string{"new", "established"}
				}
				return "ctstate", yes, []string{"new"}
			}
		}
	}
	values := nftValues(m.Right)
	neg := m.Op == "!="
	if m.Op != "==" && m.Op != "!=" && m.Op != "in" {
		return func(flow) tri { return maybe }
	}
	return func(f flow) tri {
		kind, applies, v := field(f)
		if applies != yes {
			return applies // no: a match on another protocol's header fails
		}
		r := valuesContain(kind, values, v)
		if neg && r != maybe {
			return triOf(r == no)
		}
		return r
	}
}

// payloadField is the flow's value for a header field, and whether the
// packet has that header at all.
func payloadField(proto, fld string) func(flow) (string, tri, any) {
	return func(f flow) (string, tri, any) {
		switch proto + " " + fld {
		case "ip protocol":
			return "proto", triOf(!f.v6), f.proto
		case "ip6 nexthdr":
			return "proto", triOf(f.v6), f.proto
		case "ip saddr":
			return "addr", triOf(!f.v6), f.src
		case "ip daddr":
			return "addr", triOf(!f.v6), f.dst
		case "ip6 saddr":
			return "addr", triOf(f.v6), f.src
		case "ip6 daddr":
			return "addr", triOf(f.v6), f.dst
		case "udp dport", "th dport":
			return "port", triOf(f.proto == 17), f.dport
		case "tcp dport", "tcp sport":
			return "port", no, nil
		}
		return "", maybe, nil
	}
}

func metaField(key string) func(flow) (string, tri, any) {
	return func(f flow) (string, tri, any) {
		switch key {
		case "l4proto":
			return "proto", yes, f.proto
		case "nfproto":
			if f.v6 {
				return "string", yes, "ipv6"
			}
			return "string", yes, "ipv4"
		case "iifname":
			return "string", triOf(!f.out), f.ifname
		case "oifname":
			return "string", triOf(f.out), f.ifname
		case "pkttype":
			if f.dst.IsMulticast() {
				return "string", yes, "multicast"
			}
			return "string", yes, "host"
		}
		return "", maybe, nil
	}
}

// nftValue is one right-hand value: a literal, a prefix or a range.
type nftValue struct {
	s      string
	prefix netip.Prefix
	lo, hi string
	named  bool // @set: cannot tell
}

func nftValues(raw json.RawMessage) []nftValue {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if strings.HasPrefix(s, "@") {
			return []nftValue{{named: true}}
		}
		return []nftValue{{s: s}}
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return []nftValue{{s: n.String()}}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		if p, ok := obj["prefix"]; ok {
			var pf struct {
				Addr string
				Len  int
			}
			json.Unmarshal(p, &pf)
			a, err := netip.ParseAddr(pf.Addr)
			if err == nil {
				if pr, err := a.Prefix(pf.Len); err == nil {
					return []nftValue{{prefix: pr}}
				}
			}
		}
		if r, ok := obj["range"]; ok {
			var lh []json.RawMessage
			json.Unmarshal(r, &lh)
			if len(lh) == 2 {
				lo, hi := nftValues(lh[0]), nftValues(lh[1])
				if len(lo) == 1 && len(hi) == 1 {
					return []nftValue{{lo: lo[0].s, hi: hi[0].s}}
				}
			}
		}
		if st, ok := obj["set"]; ok {
			return nftValues(st)
		}
		return []nftValue{{named: true}}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var out []nftValue
		for _, e := range list {
			out = append(out, nftValues(e)...)
		}
		return out
	}
	return []nftValue{{named: true}}
}

// protoNames are the protocol names nft and iptables print.
var protoNames = map[string]uint8{"vrrp": 112, "udp": 17, "tcp": 6, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58}

// valuesContain reports whether the flow's value v is among values.
func valuesContain(kind string, values []nftValue, v any) tri {
	result := no
	for _, x := range values {
		if x.named {
			result = maybe
			continue
		}
		if valueMatches(kind, x, v) {
			return yes
		}
	}
	return result
}

func valueMatches(kind string, x nftValue, v any) bool {
	switch kind {
	case "proto":
		p := v.(uint8)
		if n, ok := protoNames[x.s]; ok {
			return n == p
		}
		n, err := strconv.Atoi(x.s)
		return err == nil && n == int(p)
	case "addr":
		a := v.(netip.Addr)
		if x.prefix.IsValid() {
			return x.prefix.Contains(a)
		}
		if x.lo != "" {
			lo, err1 := netip.ParseAddr(x.lo)
			hi, err2 := netip.ParseAddr(x.hi)
			return err1 == nil && err2 == nil && lo.Compare(a) <= 0 && a.Compare(hi) <= 0
		}
		b, err := netip.ParseAddr(x.s)
		return err == nil && b == a
	case "port":
		p := int(v.(uint16))
		if x.lo != "" {
			lo, _ := strconv.Atoi(x.lo)
			hi, _ := strconv.Atoi(x.hi)
			return lo <= p && p <= hi
		}
		n, err := strconv.Atoi(x.s)
		return err == nil && n == p
	case "ctstate":
		for _, s := range v.([]string) {
			if s == x.s {
				return true
			}
		}
		return false
	case "string":
		s := v.(string)
		if strings.HasSuffix(x.s, "*") { // iifname "eth*"
			return strings.HasPrefix(s, strings.TrimSuffix(x.s, "*"))
		}
		return s == x.s
	}
	return false
}
