package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// What a reload may change in [bgp], per node (Changes.Restart).
func TestDiffBGP(t *testing.T) {
	base := bgpOK + bgpNodes + bgpFE + beOK
	tests := []struct {
		name       string
		new        string
		keys       []string
		restartLB1 []string
		restartLB2 []string
	}{
		{name: "same", new: base},
		{
			name: "attributes and drain time apply live",
			new:  strings.Replace(base, "communities = [\"64512:100\"]\n", "communities = [\"64512:200\"]\nmed = 10\ndrain_time = \"20s\"\n", 1),
			keys: []string{"communities", "drain_time", "med"},
		},
		{
			name:       "vips need a restart everywhere",
			new:        strings.Replace(base, `vips = ["192.168.40.10"]`, `vips = ["192.168.40.10", "192.168.40.11"]`, 1),
			keys:       []string{"vips"},
			restartLB1: []string{"[bgp] vips"}, restartLB2: []string{"[bgp] vips"},
		},
		{
			name:       "a peer's password restarts only the nodes that peer with it",
			new:        strings.Replace(base, `password = "rack-a"`, `password = "rack-b"`, 1),
			keys:       []string{"peer"},
			restartLB1: []string{`[[bgp.peer]] "10.1.0.1" (password)`},
		},
		{
			name:       "a node's ASN override",
			new:        strings.Replace(base, "asn = 64513", "asn = 64514", 1),
			keys:       []string{"node"},
			restartLB2: []string{"[bgp] asn (this node's)"},
		},
		{
			name:       "a peer added for one node",
			new:        base + "[[bgp.peer]]\naddress = \"10.1.0.2\"\nasn = 64500\nnodes = [\"lb1\"]\n",
			keys:       []string{"peer"},
			restartLB1: []string{`[[bgp.peer]] "10.1.0.2" added`},
		},
		{
			name:       "hold time and BFD",
			new:        strings.Replace(strings.Replace(base, "bfd = true\n", "", 1), "asn = 64512\n", "asn = 64512\nhold_time = \"3s\"\n", 1),
			keys:       []string{"hold_time", "peer"},
			restartLB1: []string{`[[bgp.peer]] "10.1.0.1" (hold_time, bfd)`},
		},
		{
			name:       "a frontend moves off its [bgp] VIP",
			new:        strings.Replace(base, `vip = "192.168.40.10"`, `address = "10.9.9.9"`, 1),
			restartLB1: []string{`[[frontend]] "kubernetes" vip (onto or off a [bgp] VIP)`},
			restartLB2: []string{`[[frontend]] "kubernetes" vip (onto or off a [bgp] VIP)`},
		},
		{
			name:       "[bgp] removed",
			new:        strings.Replace(bgpNodes+bgpFE+beOK, `vip = "192.168.40.10"`, `address = "192.168.40.10"`, 1),
			keys:       []string{"bgp"},
			restartLB1: []string{"[bgp] removed"}, restartLB2: []string{"[bgp] removed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldC, err := Parse("old.toml", []byte(base))
			if err != nil {
				t.Fatal(err)
			}
			newC, err := Parse("new.toml", []byte(tt.new))
			if err != nil {
				t.Fatalf("new: %v", err)
			}
			ch := newC.Diff(oldC)
			if diff := cmp.Diff(tt.keys, ch.BGP); diff != "" {
				t.Errorf("BGP keys (-want +got):\n%s", diff)
			}
			if got := ch.Empty(); got != (tt.name == "same") {
				t.Errorf("Empty() = %v", got)
			}
			if diff := cmp.Diff(tt.restartLB1, ch.Restart("lb1")); diff != "" {
				t.Errorf("Restart(lb1) (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.restartLB2, ch.Restart("lb2")); diff != "" {
				t.Errorf("Restart(lb2) (-want +got):\n%s", diff)
			}
		})
	}
	// [bgp] added to a VRRP file needs a restart.
	vrrpOnly := vrrpOK + nodesOK + feOK + beOK
	oldC, _ := Parse("old.toml", []byte(vrrpOnly))
	newC, err := Parse("new.toml", []byte(vrrpOnly+"[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\n[[bgp.peer]]\naddress = \"192.168.30.1\"\nasn = 64500\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := newC.Diff(oldC).Restart("lb1"); !cmp.Equal(got, []string{"[bgp] added"}) {
		t.Errorf("Restart after [bgp] added = %q", got)
	}
}
