package doctor

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseIptablesSave reads the filter table of `iptables-save` output (the
// legacy iptables, whose rules nftables does not show) into a ruleset.
func parseIptablesSave(text, source string) *ruleset {
	rs := &ruleset{source: source}
	family := "ip"
	if strings.HasPrefix(source, "ip6") {
		family = "ip6"
	}
	hooks := map[string]string{"INPUT": "input", "OUTPUT": "output"}
	table := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case table != "filter":
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				continue
			}
			policy := strings.ToLower(f[1])
			if policy == "-" {
				policy = ""
			}
			rs.chains = append(rs.chains, &fwChain{family: family, table: "filter", name: f[0], hook: hooks[f[0]], policy: policy})
		case strings.HasPrefix(line, "-A "):
			args := shellFields(line)
			if len(args) < 2 {
				continue
			}
			c := rs.chain(family, "filter", args[1])
			if c == nil {
				continue
			}
			c.rules = append(c.rules, iptablesRule(line, args[2:]))
		}
	}
	return rs
}

// iptablesRule turns the options of one -A line into a rule.
func iptablesRule(line string, args []string) fwRule {
	r := fwRule{where: fmt.Sprintf("%q", line)}
	unknown := func(flow) tri { return maybe }
	for i := 0; i < len(args); i++ {
		neg := false
		if args[i] == "!" {
			neg = true
			i++
			if i >= len(args) {
				break
			}
		}
		opt := args[i]
		val := ""
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			val = args[i+1]
		}
		if val == "!" && i+2 < len(args) { // old style: -p ! vrrp
			neg, val = true, args[i+2]
			i++
		}
		var m match
		switch opt {
		case "-p", "--protocol":
			m = func(f flow) tri { return protoIs(val, f.proto) }
		case "-s", "--source":
			m = addrMatch(val, func(f flow) netip.Addr { return f.src })
		case "-d", "--destination":
			m = addrMatch(val, func(f flow) netip.Addr { return f.dst })
		case "-i", "--in-interface":
			m = func(f flow) tri { return triOf(!f.out && ifMatch(val, f.ifname)) }
		case "-o", "--out-interface":
			m = func(f flow) tri { return triOf(f.out && ifMatch(val, f.ifname)) }
		case "--dport", "--destination-port", "--dports":
			m = func(f flow) tri { return triOf(f.proto == 17 && portIn(val, f.dport)) }
		case "--state", "--ctstate":
			m = func(f flow) tri {
				for _, s := range strings.Split(strings.ToLower(val), ",") {
					if s == "new" || s == "established" && f.established {
						return yes
					}
				}
				return no
			}
		case "--pkt-type":
			m = func(f flow) tri { return triOf((val == "multicast") == f.dst.IsMulticast()) }
		case "-j", "--jump", "-g", "--goto":
			switch val {
			case "ACCEPT":
				r.verdict = "accept"
			case "DROP", "REJECT":
				r.verdict = "drop"
			case "RETURN":
				r.verdict = "return"
			case "LOG", "NFLOG", "":
			default:
				r.verdict, r.target = "jump", val
				if opt == "-g" || opt == "--goto" {
					r.verdict = "goto"
				}
			}
			i++
			continue
		case "-m", "--match":
			// the module's own options follow and are read on their own
			if val != "udp" && val != "state" && val != "conntrack" && val != "multiport" && val != "pkttype" && val != "comment" {
				r.matches = append(r.matches, unknown)
			}
			i++
			continue
		case "--comment", "--reject-with", "--log-prefix":
			i++
			continue
		default:
			r.matches = append(r.matches, unknown)
			if val != "" {
				i++
			}
			continue
		}
		if val != "" {
			i++
		}
		if neg {
			inner := m
			m = func(f flow) tri {
				switch inner(f) {
				case yes:
					return no
				case no:
					return yes
				}
				return maybe
			}
		}
		r.matches = append(r.matches, m)
	}
	return r
}

func protoIs(val string, p uint8) tri {
	val = strings.ToLower(val)
	if val == "all" || val == "0" {
		return yes
	}
	if n, ok := protoNames[val]; ok {
		return triOf(n == p)
	}
	n, err := strconv.Atoi(val)
	if err != nil {
		return maybe
	}
	return triOf(n == int(p))
}

func addrMatch(val string, get func(flow) netip.Addr) match {
	var pfx netip.Prefix
	var err error
	if strings.Contains(val, "/") {
		pfx, err = netip.ParsePrefix(val)
		if err != nil { // a dotted mask (10.0.0.0/255.255.255.0): cannot tell
			return func(flow) tri { return maybe }
		}
	} else {
		a, err := netip.ParseAddr(val)
		if err != nil {
			return func(flow) tri { return maybe } // a host name
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	return func(f flow) tri { return triOf(pfx.Contains(get(f))) }
}

func ifMatch(pattern, name string) bool {
	if strings.HasSuffix(pattern, "+") {
		return strings.HasPrefix(name, strings.TrimSuffix(pattern, "+"))
	}
	return pattern == name
}

// portIn reads "9601", "9600:9610" or a multiport list "80,9601".
func portIn(val string, p uint16) bool {
	for _, part := range strings.Split(val, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		if a <= int(p) && int(p) <= b {
			return true
		}
	}
	return false
}

// shellFields splits an iptables-save line, keeping quoted strings
// (comments) whole.
func shellFields(s string) []string {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
			in = true
		case c == '\\' && quoted && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case (c == ' ' || c == '\t') && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}
