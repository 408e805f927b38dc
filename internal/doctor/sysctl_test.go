package doctor

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func sysctlsOf(m map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		if v, ok := m[name]; ok {
			return v, nil
		}
		if strings.HasSuffix(name, "/arp_announce") {
			return "2", nil
		}
		if name == "net/ipv6/conf/eth0/accept_dad" { // the kernel's default for a new interface
			return "1", nil
		}
		return "0", nil
	}
}

// Each sysctl value that breaks or weakens a takeover is named with its
// effect and fix; the kernel's max(all, interface) is what is judged.
func TestSysctls(t *testing.T) {
	v6 := Instance{Name: "api6", VRID: 52, Interface: "eth0", VIPs: []netip.Prefix{netip.MustParsePrefix("fd00::100/128")}}
	eth0 := []Link{{Name: "eth0", AdminUp: true, OperUp: true, Addrs: []Addr{{Prefix: netip.MustParsePrefix("10.0.0.11/24")}}}}
	tests := []struct {
		name    string
		in      Instance
		sysctls map[string]string
		route   string // the interface routes to the peers leave by
		links   []Link
		want    []string // "severity: words in Seen | words in Fix"
	}{
		{name: "defaults", in: instance(false)},
		{name: "rp_filter strict on a flat segment", in: instance(false), sysctls: map[string]string{"net/ipv4/conf/eth0/rp_filter": "1"},
			want: []string{"warning: net.ipv4.conf.eth0.rp_filter = 1 (strict) | sysctl -w net.ipv4.conf.eth0.rp_filter=2"}},
		{name: "rp_filter strict from all, peer routed elsewhere", in: instance(false), sysctls: map[string]string{"net/ipv4/conf/all/rp_filter": "1"}, route: "eth1",
			want: []string{"error: net.ipv4.conf.all.rp_filter = 1 (strict) and the route to lb2 (10.0.0.12) leaves by eth1, not eth0 | net.ipv4.conf.eth0.rp_filter=2"}},
		{name: "rp_filter loose", in: instance(false), sysctls: map[string]string{"net/ipv4/conf/all/rp_filter": "1", "net/ipv4/conf/eth0/rp_filter": "2"}},
		{name: "arp_ignore 1 answers for the VIP on the interface", in: instance(false), sysctls: map[string]string{"net/ipv4/conf/eth0/arp_ignore": "1"}},
		{name: "arp_ignore 8", in: instance(false), sysctls: map[string]string{"net/ipv4/conf/all/arp_ignore": "8"},
			want: []string{"error: net.ipv4.conf.all.arp_ignore = 8: this host answers no ARP request | set net.ipv4.conf.all.arp_ignore to 0 or 1"}},
		{name: "arp_ignore 2, VIP in the node's subnet", in: instance(false), links: eth0, sysctls: map[string]string{"net/ipv4/conf/eth0/arp_ignore": "2"},
			want: []string{"warning: = 2: ARP for the VIP is answered only to hosts inside a subnet configured on eth0 | to 0 or 1"}},
		{name: "arp_ignore 2, VIP in no subnet there", in: Instance{Name: "x", Interface: "eth0", VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}},
			links: eth0, sysctls: map[string]string{"net/ipv4/conf/eth0/arp_ignore": "2"},
			want: []string{"error: no subnet there holds the VIP: nobody gets an answer for it | to 0 or 1"}},
		{name: "arp_announce 0", in: instance(false), sysctls: map[string]string{"net/ipv4/conf/all/arp_announce": "0", "net/ipv4/conf/eth0/arp_announce": "0"},
			want: []string{"info: net.ipv4.conf.all.arp_announce, net.ipv4.conf.eth0.arp_announce = 0: ARP requests | sysctl -w net.ipv4.conf.eth0.arp_announce=2"}},
		{name: "ipv6 defaults", in: v6},
		{name: "ipv6 off", in: v6, sysctls: map[string]string{"net/ipv6/conf/eth0/disable_ipv6": "1"},
			want: []string{"error: net.ipv6.conf.eth0.disable_ipv6 = 1: IPv6 is off | sysctl -w net.ipv6.conf.eth0.disable_ipv6=0"}},
		{name: "ipv6 DAD off with multicast", in: v6, sysctls: map[string]string{"net/ipv6/conf/eth0/accept_dad": "0"},
			want: []string{"warning: accept_dad = 0: duplicate address detection is off | accept_dad=1"}},
		{name: "ipv6 DAD disables IPv6", in: v6, sysctls: map[string]string{"net/ipv6/conf/all/accept_dad": "2"},
			want: []string{"warning: net.ipv6.conf.all.accept_dad = 2: a duplicate of the MAC-based link-local address | accept_dad=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route := tt.route
			if route == "" {
				route = "eth0"
			}
			h := sysctlHost{get: sysctlsOf(tt.sysctls), routeIf: func(netip.Addr) (string, error) { return route, nil }, links: tt.links}
			fs := checkSysctls(h, lb1, []Node{lb2}, tt.in)
			if len(fs) != len(tt.want) {
				t.Fatalf("findings %+v, want %d", fs, len(tt.want))
			}
			for i, w := range tt.want {
				sev, rest, _ := strings.Cut(w, ": ")
				seen, fix, _ := strings.Cut(rest, " | ")
				if f := fs[i]; f.Check != CheckSysctl || f.Severity != sev || !strings.Contains(f.Seen, seen) || !strings.Contains(f.Fix, fix) {
					t.Errorf("finding %+v, want %s", f, w)
				}
			}
		})
	}
	// What cannot be read is said (doctor) or left out (status).
	broken := sysctlHost{get: func(string) (string, error) { return "", errors.New("no /proc/sys") }, routeIf: viaEth0}
	if fs := checkSysctls(broken, lb1, nil, instance(false)); len(fs) != 3 || !strings.Contains(fs[0].Seen, "could not read rp_filter of eth0") {
		t.Errorf("unreadable: %+v", fs)
	}
	broken.quiet = true
	if fs := checkSysctls(broken, lb1, nil, instance(false)); len(fs) != 0 {
		t.Errorf("unreadable, quiet: %+v", fs)
	}
}
