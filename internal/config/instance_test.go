package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// activeActive is two instances, each LB preferring one VIP, with shared
// settings in [vrrp].
const activeActive = `[vrrp]
interface = "eth0"
advert_interval = "100ms"
status_port = 9700

[[instance]]
name = "api"
vrid = 51
vips = ["192.168.30.30/24"]
priority = { lb1 = 150, lb2 = 100 }

[[instance]]
name = "ingress"
vrid = 52
vips = ["192.168.30.40"]
interface = "eth1"
advert_interval = "1s"
priority = { lb1 = 100, lb2 = 150 }

[[node]]
name = "lb1"
address = "192.168.30.21"

[[node]]
name = "lb2"
address = "192.168.30.22"
interface = "enp3s0"

[[frontend]]
name = "kubernetes"
port = 6443
vip = "192.168.30.30"
backend = "kube-apiserver"

[[frontend]]
name = "ingress"
port = 443
vip = "192.168.30.40"
backend = "ingress"

[[backend]]
name = "kube-apiserver"
servers = ["192.168.30.31:6443"]

[[backend]]
name = "ingress"
servers = ["192.168.30.31:443"]

[[track]]
name = "ingress-pool"
type = "backends"
frontend = "ingress"
weight = -60
instances = ["ingress"]
`

func TestParseInstances(t *testing.T) {
	c, err := Parse("vipd.toml", []byte(activeActive))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&VRRP{StatusPort: 9700, LivenessPort: 9602}, c.VRRP); diff != "" {
		t.Errorf("VRRP (-want +got):\n%s", diff)
	}
	if len(c.Instances) != 2 {
		t.Fatalf("%d instances, want 2", len(c.Instances))
	}
	api, ing := c.Instance("api"), c.Instance("ingress")
	lb1, lb2 := &c.Nodes[0], &c.Nodes[1]
	for _, tt := range []struct {
		what      string
		got, want any
	}{
		{"api interval inherited from [vrrp]", api.AdvertInterval, 100 * time.Millisecond},
		{"ingress interval its own", ing.AdvertInterval, time.Second},
		{"api version default", api.Version, 3},
		{"api prio lb1", api.PriorityOf(lb1), uint8(150)},
		{"api prio lb2", api.PriorityOf(lb2), uint8(100)},
		{"ingress prio lb1", ing.PriorityOf(lb1), uint8(100)},
		{"ingress prio lb2", ing.PriorityOf(lb2), uint8(150)},
		// [vrrp] interface with a node override; a pinned instance
		// interface beats the node's.
		{"api if on lb1", api.InterfaceFor(lb1), "eth0"},
		{"api if on lb2", api.InterfaceFor(lb2), "enp3s0"},
		{"ingress if on lb2", ing.InterfaceFor(lb2), "eth1"},
		{"kubernetes follows api", c.InstanceOf(c.Frontends[0]).Name, "api"},
		{"ingress follows ingress", c.InstanceOf(c.Frontends[1]).Name, "ingress"},
		{"kubernetes binds", c.Binds(c.Frontends[0]), []netip.AddrPort{netip.MustParseAddrPort("192.168.30.30:6443")}},
		{"tracker applies to ingress", c.Tracks[0].Applies("ingress"), true},
		{"tracker not to api", c.Tracks[0].Applies("api"), false},
	} {
		if diff := cmp.Diff(tt.want, tt.got, cmpOpts); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.what, diff)
		}
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
}

func TestParseVRRPv2(t *testing.T) {
	c, err := Parse("vipd.toml", []byte(vrrpWith("version = 2\nauth_pass = \"k8sPASS\"")+nodesOK+feOK+beOK))
	if err != nil {
		t.Fatal(err)
	}
	in := c.Instances[0]
	if in.Version != 2 || in.AuthPass != "k8sPASS" || in.AdvertInterval != time.Second {
		t.Errorf("v2 instance: version %d auth %q interval %v; want 2, k8sPASS, 1s (v2's default)", in.Version, in.AuthPass, in.AdvertInterval)
	}
}

func TestParseInstanceErrors(t *testing.T) {
	two := func(a, b string) string {
		return "[[instance]]\nname = \"api\"\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n" + a +
			"[[instance]]\nname = \"ingress\"\nvrid = 52\ninterface = \"eth0\"\nvips = [\"192.168.30.40\"]\n" + b
	}
	tests := []struct {
		name     string
		input    string
		contains []string
	}{
		{"v2 sub-second", vrrpWith("version = 2\nadvert_interval = \"200ms\" #!") + nodesOK + feOK + beOK,
			[]string{`advert_interval = "200ms": must be between 1s and 4m15s (VRRPv2 carries whole seconds, 1..255 (RFC 3768 section 5.3.7)); try "1s"`}},
		{"v2 fractional", vrrpWith("version = 2\nadvert_interval = \"1500ms\" #!") + nodesOK + feOK + beOK,
			[]string{`VRRPv2 carries whole seconds (RFC 3768 section 5.3.7); try "2s", or version = 3 for sub-second adverts`}},
		{"v2 inherits a sub-second interval", "[vrrp]\nadvert_interval = \"200ms\"\n" + strings.Replace(two("", ""), "[[instance]]\nname = \"api\"", "[[instance]] #!\nname = \"api\"\nversion = 2", 1) + nodesOK +
			"[[frontend]]\nname = \"kubernetes\"\nport = 6443\nvip = \"192.168.30.30\"\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`version = 2 needs an advert interval in whole seconds, but [vrrp] advert_interval is 200ms on line 2; set advert_interval = "1s" in this instance`}},
		{"v2 checksum", vrrpWith("version = 2\nchecksum = \"rfc9568\" #!") + nodesOK + feOK + beOK,
			[]string{`applies to VRRPv3 only`}},
		{"auth_pass with v3", vrrpWith("auth_pass = \"secret\" #!") + nodesOK + feOK + beOK,
			[]string{`VRRPv3 (RFC 9568) has no authentication; remove auth_pass, or set version = 2`}},
		{"auth_pass too long", vrrpWith("version = 2\nauth_pass = \"123456789\" #!") + nodesOK + feOK + beOK,
			[]string{`is 9 bytes; VRRPv2 carries at most 8`}},
		{"v2 IPv6", "[vrrp]\nvrid = 1\nversion = 2 #!\ninterface = \"eth0\"\nvips = [\"fd00::100\"]\n[[node]]\nname = \"a\"\naddress = \"fd00::1\"\n",
			[]string{`VRRPv2 (RFC 3768) is IPv4 only`}},
		{"version 4", vrrpWith("version = 4 #!") + nodesOK + feOK + beOK,
			[]string{`version = 4: must be between 2 and 3`}},
		{"vrid in [vrrp] beside instances", "[vrrp]\nvrid = 50 #!\n" + two("", "") + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nvip = \"192.168.30.30\"\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`with [[instance]] tables, [vrrp] holds only the settings every instance shares; move vrid into each [[instance]]`}},
		{"instance without name", "[[instance]] #!\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n" + nodesOK + feOK + beOK,
			[]string{`missing name; add name = "api"`}},
		{"duplicate vrid", strings.Replace(two("", ""), "vrid = 52", "vrid = 51 #!", 1) + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nvip = \"192.168.30.30\"\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`uses the same vrid on the same link and family`}},
		{"frontend without vip", two("", "") + nodesOK + "[[frontend]] #!\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`there are several VRRP instances, so say which VIP this frontend binds; add vip = one of "192.168.30.30", "192.168.30.40"`}},
		{"frontend vip unknown", vrrpOK + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nvip = \"192.168.30.99\" #!\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`no VRRP instance has this VIP; use one of "192.168.30.30"`}},
		{"priority table unknown node", two("priority = { lb3 = 150 } #!\n", "") + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nvip = \"192.168.30.30\"\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`priority.lb3: no [[node]] has that name`}},
		{"priority table out of range", vrrpWith("priority = { lb1 = 0 } #!") + nodesOK + feOK + beOK,
			[]string{`priority.lb1 = 0: must be an integer between 1 and 255`}},
		{"track of an unknown instance", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"x\"\ntype = \"interface\"\ninterface = \"eth1\"\ninstances = [\"nope\"] #!\n",
			[]string{`instances[0] = "nope": no VRRP instance has that name`}},
		{"status_port in an instance", "[[instance]]\nname = \"api\"\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\nstatus_port = 1 #!\n" + nodesOK + feOK + beOK,
			[]string{`status_port is shared by every instance: set it in [vrrp]`}},
		{"liveness_port in an instance", "[[instance]]\nname = \"api\"\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\nliveness_port = 1 #!\n" + nodesOK + feOK + beOK,
			[]string{`liveness_port is shared by every instance: set it in [vrrp]`}},
		{"liveness_port on the status_port", vrrpWith("status_port = 9700\nliveness_port = 9700 #!") + nodesOK + feOK + beOK,
			[]string{`liveness_port = 9700: is the status_port too (both use UDP); pick another port, e.g. liveness_port = 9602`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("vipd.toml", []byte(tt.input))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors\ninput:\n%s", c, tt.input)
			}
			var gotLines []int
			for _, e := range errorsOf(t, err) {
				gotLines = append(gotLines, e.Line)
			}
			if diff := cmp.Diff(markedLines(tt.input), gotLines); diff != "" {
				t.Errorf("error lines (-want +got):\n%s\nerrors:\n%v", diff, err)
			}
			for _, want := range tt.contains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("errors do not contain %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestRestartRule(t *testing.T) {
	parse := func(s string) *Config {
		t.Helper()
		c, err := Parse("vipd.toml", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := parse(activeActive)
	tests := []struct {
		name string
		edit func(string) string
		lb1  []string
	}{
		{"a per-node priority applies live", func(s string) string {
			return strings.Replace(s, "priority = { lb1 = 150, lb2 = 100 }", "priority = { lb1 = 90, lb2 = 100 }", 1)
		}, nil},
		{"an instance's interval needs a restart", func(s string) string {
			return strings.Replace(s, "advert_interval = \"1s\"", "advert_interval = \"2s\"", 1)
		}, []string{`[[instance]] "ingress" advert_interval`}},
		{"a shared interval changes every instance that inherits it", func(s string) string {
			return strings.Replace(s, "advert_interval = \"100ms\"", "advert_interval = \"200ms\"", 1)
		}, []string{`[[instance]] "api" advert_interval`}},
		{"becoming the address owner needs a restart", func(s string) string {
			return strings.Replace(s, "priority = { lb1 = 150, lb2 = 100 }", "priority = { lb1 = 255, lb2 = 100 }", 1)
		}, []string{`[[instance]] "api" priority 255 (address owner)`}},
		{"an added instance needs a restart", func(s string) string {
			return s + "[[instance]]\nname = \"third\"\nvrid = 53\nvips = [\"192.168.30.50\"]\n"
		}, []string{`[[instance]] "third" added`}},
		{"the status port", func(s string) string {
			return strings.Replace(s, "status_port = 9700", "status_port = 9701", 1)
		}, []string{"[vrrp] status_port"}},
		{"the liveness port", func(s string) string {
			return strings.Replace(s, "status_port = 9700", "status_port = 9700\nliveness_port = 9703", 1)
		}, []string{"[vrrp] liveness_port"}},
		{"a GARP setting applies live", func(s string) string {
			return strings.Replace(s, "[vrrp]\n", "[vrrp]\ngarp_refresh = \"30s\"\n", 1)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := parse(tt.edit(activeActive))
			if diff := cmp.Diff(tt.lb1, next.Diff(base).Restart("lb1")); diff != "" {
				t.Errorf("Restart(lb1) (-want +got):\n%s", diff)
			}
		})
	}
}
