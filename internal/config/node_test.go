package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSelectNode(t *testing.T) {
	c := mustLoad(t, "testdata/design.toml")
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	tests := []struct {
		name     string
		explicit string
		hostname string
		local    []netip.Addr
		want     string   // node name; "" for an error
		errParts []string // pieces of the error
	}{
		{name: "by --node", explicit: "lb2", hostname: "lb1", local: addrs("192.168.30.21"), want: "lb2"},
		{name: "by hostname", hostname: "lb2", local: addrs("192.168.30.21"), want: "lb2"},
		{name: "by short hostname", hostname: "lb1.example.com", want: "lb1"},
		{name: "by hostname, other case", hostname: "LB1", want: "lb1"},
		{name: "by local address", hostname: "talos-abc", local: addrs("127.0.0.1", "::1", "192.168.30.22"), want: "lb2"},
		{name: "by mapped local address", hostname: "x", local: addrs("::ffff:192.168.30.21"), want: "lb1"},
		{
			name: "unknown --node", explicit: "lb3", hostname: "lb1",
			errParts: []string{`testdata/design.toml: --node "lb3": no [[node]] has that name; nodes: lb1 (192.168.30.21), lb2 (192.168.30.22)`},
		},
		{
			name: "none matches", hostname: "worker1", local: addrs("10.9.9.9"),
			errParts: []string{
				`cannot tell which [[node]] this host is`,
				`hostname "worker1"`,
				`(local: 10.9.9.9)`,
				`nodes: lb1 (192.168.30.21), lb2 (192.168.30.22); run with --node NAME`,
			},
		},
		{
			name: "several addresses match", hostname: "both", local: addrs("192.168.30.21", "192.168.30.22"),
			errParts: []string{`several [[node]]s: lb1 (192.168.30.21), lb2 (192.168.30.22); run with --node NAME`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := c.SelectNode(tt.explicit, tt.hostname, tt.local)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("SelectNode = %+v, want an error", n)
				}
				for _, p := range tt.errParts {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("error %q does not contain %q", err, p)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("SelectNode: %v", err)
			}
			if diff := cmp.Diff(tt.want, n.Name); diff != "" {
				t.Errorf("node (-want +got):\n%s", diff)
			}
			if n != &c.Nodes[0] && n != &c.Nodes[1] {
				t.Errorf("SelectNode returned a copy, want a pointer into Nodes")
			}
		})
	}
}

func TestSelectNodeSingleLB(t *testing.T) {
	c := mustLoad(t, "testdata/single.toml")
	for _, tt := range []struct {
		explicit, hostname, want string
	}{
		{"", "lbhost", "lbhost"},
		{"edge", "lbhost", "edge"},
		{"", "", "vipd"},
	} {
		n, err := c.SelectNode(tt.explicit, tt.hostname, nil)
		if err != nil {
			t.Fatalf("SelectNode(%q, %q): %v", tt.explicit, tt.hostname, err)
		}
		if diff := cmp.Diff(&Node{Name: tt.want, Priority: 255}, n, cmpOpts); diff != "" {
			t.Errorf("SelectNode(%q, %q) (-want +got):\n%s", tt.explicit, tt.hostname, diff)
		}
	}
}
