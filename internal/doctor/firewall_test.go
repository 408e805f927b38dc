package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	lb1 = Node{Name: "lb1", Addr: netip.MustParseAddr("10.0.0.11")}
	lb2 = Node{Name: "lb2", Addr: netip.MustParseAddr("10.0.0.12")}
	lb3 = Node{Name: "lb3", Addr: netip.MustParseAddr("10.0.0.13")}
	far = Node{Name: "far", Addr: netip.MustParseAddr("10.1.0.5")}
)

func viaEth0(netip.Addr) (string, error) { return "eth0", nil }

func instance(unicast bool) Instance {
	in := Instance{Name: "api", VRID: 51, Interface: "eth0", VIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.100/32")}}
	in.Receive.Unicast = unicast
	return in
}

// verdicts runs every flow through the rules and returns, per flow, what
// happens: "pass", or "drop by ..." / "may drop by ...".
func verdicts(t *testing.T, rs *ruleset, flows []flow) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range flows {
		o := rs.evaluate(f)
		switch {
		case !o.dropped:
			out[f.what] = "pass"
		case o.sure:
			out[f.what] = "drop by " + o.by
		default:
			out[f.what] = "may drop by " + o.by
		}
	}
	return out
}

// A default-drop nftables input chain that lets the beacons through but
// not VRRP, and a prerouting chain that drops VRRP from all but lb2: the
// verdicts name the rule or policy that drops. The file is `nft -j list
// ruleset` of nftables 1.0.6 (Debian 12) after loading:
//
//	table inet filter {
//	  chain input { type filter hook input priority 0; policy drop;
//	    ct state established,related accept
//	    iifname "lo" accept
//	    tcp dport 22 accept
//	    ip saddr 10.0.0.0/24 udp dport { 9601, 9602 } accept }
//	  chain output { type filter hook output priority 0; policy accept; } }
//	table ip extra {
//	  chain pre { type filter hook prerouting priority -300; policy accept;
//	    ip daddr 224.0.0.18 counter jump vrrpchain }
//	  chain vrrpchain { ip saddr 10.0.0.12 return; meta l4proto 112 drop } }
func TestFirewallNft(t *testing.T) {
	b, err := os.ReadFile("testdata/nft-default-drop.json")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := parseNft(b)
	if err != nil {
		t.Fatal(err)
	}
	got := verdicts(t, rs, firewallFlows(lb1, []Node{lb2, lb3}, instance(false), 9601, viaEth0, true))
	want := map[string]string{
		"VRRP adverts from lb2 (10.0.0.12) to 224.0.0.18": "drop by the policy of chain input in table inet filter",
		"VRRP adverts from lb3 (10.0.0.13) to 224.0.0.18": "drop by rule 5 of chain vrrpchain in table ip extra",
		"this node's VRRP adverts to 224.0.0.18":          "pass",
		"status beacons from lb2 (10.0.0.12, UDP 9601)":   "pass",
		"status beacons to lb2 (10.0.0.12, UDP 9601)":     "pass",
		"status beacons from lb3 (10.0.0.13, UDP 9601)":   "pass",
		"status beacons to lb3 (10.0.0.13, UDP 9601)":     "pass",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("multicast (-want +got):\n%s", diff)
	}
	// Unicast adverts go both ways between the nodes: conntrack sees
	// them established, and the established rule lets them in.
	got = verdicts(t, rs, firewallFlows(lb1, []Node{lb2}, instance(true), 0, viaEth0, false))
	want = map[string]string{"VRRP adverts from lb2 (10.0.0.12)": "pass", "VRRP adverts to lb2 (10.0.0.12)": "pass"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unicast (-want +got):\n%s", diff)
	}
	fs := firewallFindings([]*ruleset{rs}, firewallFlows(lb1, []Node{lb2}, instance(false), 9601, viaEth0, true), "api")
	if len(fs) != 1 || fs[0].Severity != SevError || fs[0].Check != CheckFirewall ||
		fs[0].Seen != "nftables drops VRRP adverts from lb2 (10.0.0.12) to 224.0.0.18: the policy of chain input in table inet filter" ||
		!strings.Contains(fs[0].Fix, "IP protocol 112") {
		t.Errorf("findings %+v", fs)
	}
}

// An accept doctor cannot judge (a named set) before a drop makes the drop
// a warning, not an error: doctor does not invent a drop.
func TestFirewallNftUnsure(t *testing.T) {
	rs, err := parseNft([]byte(`{"nftables": [
	{"chain": {"family": "inet", "table": "f", "name": "in", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
	{"rule": {"family": "inet", "table": "f", "chain": "in", "handle": 2, "expr": [
		{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@allowed"}}, {"accept": null}]}},
	{"rule": {"family": "inet", "table": "f", "chain": "in", "handle": 3, "expr": [
		{"match": {"op": "==", "left": {"meta": {"key": "pkttype"}}, "right": "multicast"}},
		{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"range": ["10.0.0.1", "10.0.0.20"]}}},
		{"drop": null}]}}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	fs := firewallFindings([]*ruleset{rs}, firewallFlows(lb1, []Node{lb2, far}, instance(false), 0, viaEth0, false), "api")
	var got []string
	for _, f := range fs {
		got = append(got, f.Severity+": "+f.Seen)
	}
	want := []string{
		"warning: nftables may drop (a rule before it has a match doctor does not evaluate) VRRP adverts from lb2 (10.0.0.12) to 224.0.0.18: the policy of chain in in table inet f",
		"warning: nftables may drop (a rule before it has a match doctor does not evaluate) VRRP adverts from far (10.1.0.5) to 224.0.0.18: rule 3 of chain in in table inet f",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// iptables-save of the legacy iptables: stateful accept, VRRP from the
// subnet, beacons, and a REJECT of our own adverts on the way out.
func TestFirewallIptablesSave(t *testing.T) {
	b, err := os.ReadFile("testdata/iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	rs := parseIptablesSave(string(b), "iptables-legacy")
	got := verdicts(t, rs, firewallFlows(lb1, []Node{lb2, far}, instance(false), 9601, viaEth0, true))
	want := map[string]string{
		"VRRP adverts from lb2 (10.0.0.12) to 224.0.0.18": "pass",
		"VRRP adverts from far (10.1.0.5) to 224.0.0.18":  "drop by the policy of chain INPUT in table ip filter",
		"this node's VRRP adverts to 224.0.0.18":          `drop by "-A OUTPUT -d 224.0.0.18/32 -j REJECT --reject-with icmp-port-unreachable"`,
		"status beacons from lb2 (10.0.0.12, UDP 9601)":   "pass",
		"status beacons to lb2 (10.0.0.12, UDP 9601)":     "pass",
		"status beacons from far (10.1.0.5, UDP 9601)":    "pass",
		"status beacons to far (10.1.0.5, UDP 9601)":      "pass",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Which rulesets are read: nftables always; iptables-save only when the
// iptables in use is the legacy one (iptables-nft's rules are nft's).
func TestReadFirewall(t *testing.T) {
	nft, _ := os.ReadFile("testdata/nft-default-drop.json")
	ipt, _ := os.ReadFile("testdata/iptables-save.txt")
	for _, tt := range []struct {
		variant string
		want    []string
	}{
		{"iptables-save v1.8.9 (nf_tables)", []string{"nftables"}},
		{"iptables-save v1.8.9 (legacy)", []string{"nftables", "iptables-save"}},
	} {
		run := func(_ context.Context, name string, args ...string) ([]byte, error) {
			switch {
			case name == "nft":
				return nft, nil
			case name == "iptables-save" && len(args) == 1:
				return []byte(tt.variant), nil
			case name == "iptables-save":
				return ipt, nil
			}
			return nil, fmt.Errorf("%s: %w", name, ErrNotInstalled)
		}
		sets, errs := readFirewall(context.Background(), run, false)
		var got []string
		for _, s := range sets {
			got = append(got, s.source)
		}
		if len(errs) != 0 || !cmp.Equal(got, tt.want) {
			t.Errorf("%s: read %v (errors %v), want %v", tt.variant, got, errs, tt.want)
		}
	}
}
