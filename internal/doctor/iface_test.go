package doctor

import (
	"net/netip"
	"strings"
	"testing"
)

func TestInterface(t *testing.T) {
	v6 := Instance{Name: "api6", Interface: "eth0", VIPs: []netip.Prefix{netip.MustParsePrefix("fd00::100/128")}}
	addr := func(s string, tentative, failed bool) Addr {
		return Addr{Prefix: netip.MustParsePrefix(s), Tentative: tentative, DADFailed: failed}
	}
	node4 := addr("10.0.0.11/24", false, false)
	tests := []struct {
		name  string
		in    Instance
		links []Link
		want  []string
	}{
		{name: "up with the address", in: instance(false), links: []Link{{Name: "eth0", AdminUp: true, OperUp: true, Addrs: []Addr{node4}}}},
		{name: "missing", in: instance(false), links: []Link{{Name: "lo"}, {Name: "ens3", Addrs: []Addr{node4}}},
			want: []string{"error: interface eth0 does not exist (this host has lo, ens3)"}},
		{name: "no carrier", in: instance(false), links: []Link{{Name: "eth0", AdminUp: true, Addrs: []Addr{node4}}},
			want: []string{"error: interface eth0 has no carrier"}},
		{name: "ipv6 link-local ok", in: v6, links: []Link{{Name: "eth0", AdminUp: true, OperUp: true, Addrs: []Addr{node4, addr("fe80::1/64", false, false)}}}},
		{name: "ipv6 link-local tentative", in: v6, links: []Link{{Name: "eth0", AdminUp: true, OperUp: true, Addrs: []Addr{node4, addr("fe80::1/64", true, false)}}},
			want: []string{"info: is still tentative"}},
		{name: "ipv6 link-local duplicate", in: v6, links: []Link{{Name: "eth0", AdminUp: true, OperUp: true, Addrs: []Addr{node4, addr("fe80::1/64", false, true)}}},
			want: []string{"error: failed duplicate address detection"}},
		{name: "ipv6 without link-local", in: v6, links: []Link{{Name: "eth0", AdminUp: true, OperUp: true, Addrs: []Addr{node4}}},
			want: []string{"error: eth0 has no IPv6 link-local address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := checkInterface(tt.links, lb1, tt.in)
			if len(fs) != len(tt.want) {
				t.Fatalf("findings %+v, want %q", fs, tt.want)
			}
			for i, w := range tt.want {
				sev, seen, _ := strings.Cut(w, ": ")
				if fs[i].Severity != sev || !strings.Contains(fs[i].Seen, seen) || fs[i].Fix == "" {
					t.Errorf("finding %+v, want %s", fs[i], w)
				}
			}
		})
	}
}
