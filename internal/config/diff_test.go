package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDiff(t *testing.T) {
	base := vrrpOK + nodesOK + feOK + beOK
	tests := []struct {
		name       string
		old, new   string
		want       Changes
		restartLB1 []string
		restartLB2 []string
	}{
		{name: "same", old: base, new: base},
		{
			name: "interval and garp",
			old:  base,
			new:  strings.Replace(base, "[vrrp]\n", "[vrrp]\nadvert_interval = \"1s\"\ngarp_repeat = 2\n", 1),
			want: Changes{Instances: Named{Changed: []string{"vrid-51"}}, InstanceKeys: map[string][]string{"vrid-51": {"advert_interval", "garp_repeat"}}},
			// An interval change restarts the instance everywhere; GARP
			// settings apply live.
			restartLB1: []string{"[vrrp] advert_interval"}, restartLB2: []string{"[vrrp] advert_interval"},
		},
		{
			name: "garp only",
			old:  base,
			new:  strings.Replace(base, "[vrrp]\n", "[vrrp]\ngarp_refresh = \"0s\"\n", 1),
			want: Changes{Instances: Named{Changed: []string{"vrid-51"}}, InstanceKeys: map[string][]string{"vrid-51": {"garp_refresh"}}},
		},
		{
			name: "priority of one node",
			old:  base,
			new:  strings.Replace(base, "priority = 100", "priority = 120", 1),
			// A priority applies live, as a tracker's weight does.
			want: Changes{Nodes: Named{Changed: []string{"lb2"}}},
		},
		{
			name:       "vrrp removed",
			old:        base,
			new:        strings.Replace(strings.Replace(base, vrrpOK, "", 1), "backend = \"kube-apiserver\"\n", "backend = \"kube-apiserver\"\naddress = \"10.0.0.5\"\n", 1),
			want:       Changes{VRRP: []string{"vrrp"}, Instances: Named{Removed: []string{"vrid-51"}}, Frontends: Named{Changed: []string{"kubernetes"}}},
			restartLB1: []string{"[vrrp] vrrp", `[[instance]] "vrid-51" removed`},
			restartLB2: []string{"[vrrp] vrrp", `[[instance]] "vrid-51" removed`},
		},
		{
			name: "proxy side",
			old:  base,
			new: strings.Replace(base, "servers = [\"192.168.30.31:6443\", \"192.168.30.32:6443\"]", "servers = [\"192.168.30.31:6443\"]", 1) +
				"[[frontend]]\nname = \"talos\"\nport = 50000\nbackend = \"talos\"\n[[backend]]\nname = \"talos\"\nservers = [\"192.168.30.31:50000\"]\n" +
				"[http]\n[notify]\ncommand = [\"/bin/true\"]\n[log]\nlevel = \"debug\"\n[global]\nmaxconn = 10\n[control]\ngroup = \"vipd\"\n",
			want: Changes{
				Frontends: Named{Added: []string{"talos"}},
				Backends:  Named{Added: []string{"talos"}, Changed: []string{"kube-apiserver"}},
				HTTP:      true, Control: true, Notify: true, Log: true, Global: true,
			},
		},
		{
			name: "tracks",
			old:  base + "[[track]]\nname = \"a\"\ntype = \"interface\"\ninterface = \"eth0\"\n",
			new:  base + "[[track]]\nname = \"b\"\ntype = \"interface\"\ninterface = \"eth0\"\n",
			want: Changes{Tracks: Named{Added: []string{"b"}, Removed: []string{"a"}}},
		},
		{
			name:       "unicast peer added",
			old:        strings.Replace(base, "[vrrp]\n", "[vrrp]\nunicast = true\n", 1),
			new:        strings.Replace(base, "[vrrp]\n", "[vrrp]\nunicast = true\n", 1) + "[[node]]\nname = \"lb3\"\naddress = \"192.168.30.23\"\npriority = 50\n",
			want:       Changes{Peers: true, Nodes: Named{Added: []string{"lb3"}}},
			restartLB1: []string{"[[node]] addresses (unicast peers)"},
			restartLB2: []string{"[[node]] addresses (unicast peers)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldC, err := Parse("old.toml", []byte(tt.old))
			if err != nil {
				t.Fatalf("old: %v", err)
			}
			newC, err := Parse("new.toml", []byte(tt.new))
			if err != nil {
				t.Fatalf("new: %v", err)
			}
			got := newC.Diff(oldC)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(Changes{})); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
			if got.Empty() != cmp.Equal(tt.want, Changes{}, cmpopts.IgnoreUnexported(Changes{})) {
				t.Errorf("Empty() = %v for %+v", got.Empty(), got)
			}
			if diff := cmp.Diff(tt.restartLB1, got.Restart("lb1")); diff != "" {
				t.Errorf("Restart(lb1) (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.restartLB2, got.Restart("lb2")); diff != "" {
				t.Errorf("Restart(lb2) (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffNil(t *testing.T) {
	c := mustLoad(t, "testdata/design.toml")
	got := c.Diff(nil)
	want := Changes{
		VRRP:      []string{"vrrp"},
		Instances: Named{Added: []string{"vrid-51"}},
		Nodes:     Named{Added: []string{"lb1", "lb2"}},
		Tracks:    Named{Added: []string{"apiserver-local"}},
		Frontends: Named{Added: []string{"kubernetes"}},
		Backends:  Named{Added: []string{"kube-apiserver"}},
		HTTP:      true, Control: true, Log: true,
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Changes{})); diff != "" {
		t.Errorf("Diff(nil) (-want +got):\n%s", diff)
	}
}
