package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"github.com/vipd/vipd/bgp"
)

// A two-rack BGP config: lb1 and lb2 on their own subnets, each peering
// with its rack's router, the VIP announced by both.
const bgpOK = `[bgp]
asn = 64512
vips = ["192.168.40.10"]
communities = ["64512:100"]

[[bgp.peer]]
address = "10.1.0.1"
asn = 64500
nodes = ["lb1"]
password = "rack-a"
bfd = true

[[bgp.peer]]
address = "10.2.0.1"
asn = 64500
nodes = ["lb2"]
hold_time = "3s"
passive = true

[[bgp.node]]
name = "lb2"
asn = 64513
med = 100
`

const bgpNodes = "[[node]]\nname = \"lb1\"\naddress = \"10.1.0.21\"\n[[node]]\nname = \"lb2\"\naddress = \"10.2.0.22\"\n"

func u32p(v uint32) *uint32 { return &v }

func TestParseBGP(t *testing.T) {
	c, err := Parse("bgp.toml", []byte(bgpOK+bgpNodes+"[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\naddress = \"192.168.40.10\"\n"+beOK))
	if err != nil {
		t.Fatal(err)
	}
	want := &BGP{
		ASN: 64512, VIPs: []netip.Prefix{netip.MustParsePrefix("192.168.40.10/32")},
		HoldTime: 9 * time.Second, DrainTime: 5 * time.Second,
		Communities: []bgp.Community{64512<<16 | 100},
		Peers: []BGPPeer{
			{Address: netip.MustParseAddr("10.1.0.1"), ASN: 64500, Password: "rack-a", BFD: true,
				BFDInterval: 300 * time.Millisecond, BFDMultiplier: 3, Nodes: []string{"lb1"}},
			{Address: netip.MustParseAddr("10.2.0.1"), ASN: 64500, HoldTime: 3 * time.Second, Passive: true,
				BFDInterval: 300 * time.Millisecond, BFDMultiplier: 3, Nodes: []string{"lb2"}},
		},
		Nodes: []BGPNode{{Name: "lb2", ASN: 64513, MED: u32p(100)}},
	}
	if diff := cmp.Diff(want, c.BGP, cmpOpts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// lb1: [bgp] values, its own address as router id, its rack's router.
	cfg, attrs, ok := c.BGP.Speaker("lb1", netip.MustParseAddr("10.1.0.21"))
	wantCfg := bgp.Config{ASN: 64512, RouterID: netip.MustParseAddr("10.1.0.21"), Peers: []bgp.Peer{{
		Address: netip.MustParseAddr("10.1.0.1"), ASN: 64500, Password: "rack-a", HoldTime: 9 * time.Second,
		BFD: &bgp.BFD{MinRx: 300 * time.Millisecond, MinTx: 300 * time.Millisecond, Multiplier: 3},
	}}}
	if diff := cmp.Diff(wantCfg, cfg, cmpOpts); !ok || diff != "" {
		t.Errorf("lb1 speaker (ok=%v) (-want +got):\n%s", ok, diff)
	}
	if diff := cmp.Diff(bgp.Attrs{Communities: []bgp.Community{64512<<16 | 100}}, attrs); diff != "" {
		t.Errorf("lb1 attrs (-want +got):\n%s", diff)
	}
	// lb2: its override ASN and MED, the [bgp] communities, its router.
	cfg, attrs, ok = c.BGP.Speaker("lb2", netip.MustParseAddr("10.2.0.22"))
	if !ok || cfg.ASN != 64513 || cfg.RouterID != netip.MustParseAddr("10.2.0.22") || len(cfg.Peers) != 1 ||
		cfg.Peers[0].Address != netip.MustParseAddr("10.2.0.1") || cfg.Peers[0].HoldTime != 3*time.Second || !cfg.Peers[0].Passive {
		t.Errorf("lb2 speaker %+v ok=%v", cfg, ok)
	}
	if attrs.MED == nil || *attrs.MED != 100 || len(attrs.Communities) != 1 {
		t.Errorf("lb2 attrs %+v", attrs)
	}
	// A node no peer applies to announces nothing.
	if _, _, ok := c.BGP.Speaker("lb9", netip.MustParseAddr("10.9.0.9")); ok {
		t.Error("a node without peers got a speaker")
	}
	// The result is a valid bgp.Config.
	if _, err := bgp.New(cfg, testZerolog()); err != nil {
		t.Errorf("bgp.New refuses the resolved config: %v", err)
	}
}

func TestParseBGPBesideVRRP(t *testing.T) {
	// Both modes in one file, for different VIPs.
	in := vrrpOK + nodesOK + "[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\n[[bgp.peer]]\naddress = \"192.168.30.1\"\nasn = 64500\n" + feOK + beOK
	c, err := Parse("both.toml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.VRRP == nil || c.BGP == nil || len(c.BGP.Peers) != 1 {
		t.Fatalf("VRRP %v BGP %v", c.VRRP, c.BGP)
	}
	if cfg, _, ok := c.BGP.Speaker("lb2", netip.MustParseAddr("192.168.30.22")); !ok || cfg.RouterID != netip.MustParseAddr("192.168.30.22") {
		t.Errorf("lb2: %+v ok=%v (a peer without nodes applies to every node)", cfg, ok)
	}
}

func TestParseBGPErrors(t *testing.T) {
	fe := "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\naddress = \"192.168.40.10\"\n" + beOK
	peer := "[[bgp.peer]]\naddress = \"10.1.0.1\"\nasn = 64500\n"
	bgpHead := "[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\n"
	tests := []struct {
		name     string
		input    string
		contains []string
	}{
		{"asn missing", "[bgp] #!\nvips = [\"192.168.40.10\"]\n" + peer + bgpNodes + fe,
			[]string{`[bgp]: missing asn; add asn = 64512`}},
		{"asn 0", "[bgp]\nasn = 0 #!\nvips = [\"192.168.40.10\"]\n" + peer + bgpNodes + fe,
			[]string{`[bgp] asn = 0: must be between 1 and 4294967295; AS numbers are 1..4294967295; private ones are 64512..65534`}},
		{"asn as string", "[bgp]\nasn = \"64512\" #!\nvips = [\"192.168.40.10\"]\n" + peer + bgpNodes + fe,
			[]string{`must be an integer, not a string; write asn = 64512`}},
		{"no peer", "[bgp] #!\nasn = 64512\nvips = [\"192.168.40.10\"]\n" + bgpNodes + fe,
			[]string{`no [[bgp.peer]]; add one per router`}},
		{"vip with a prefix", "[bgp]\nasn = 64512\nvips = [\"192.168.40.10/24\"] #!\n" + peer + bgpNodes + fe,
			[]string{`announced VIPs are host routes (a /24 would draw the whole subnet to the LBs); write "192.168.40.10"`}},
		{"vip also in vrrp", vrrpOK + nodesOK + "[bgp]\nasn = 64512\nvips = [\"192.168.30.30\"] #!\n" + peer + feOK + beOK,
			[]string{`also a VIP of VRRP instance "vrid-51"; a VIP is either elected (VRRP, one holder) or announced (BGP, every healthy node)`}},
		{"peer address missing", bgpHead + "[[bgp.peer]] #!\nasn = 64500\n" + bgpNodes + fe,
			[]string{`[[bgp.peer]] #1: missing address; add the router's address`}},
		{"peer address with port", bgpHead + "[[bgp.peer]]\naddress = \"10.1.0.1:179\" #!\nasn = 64500\n" + bgpNodes + fe,
			[]string{`an address without a port is expected here; write "10.1.0.1"`}},
		{"peer asn missing", bgpHead + "[[bgp.peer]] #!\naddress = \"10.1.0.1\"\n" + bgpNodes + fe,
			[]string{`missing asn; add the router's AS number`}},
		{"remote_as habit", bgpHead + peer + "remote_as = 64500 #!\n" + bgpNodes + fe,
			[]string{`unknown key "bgp.peer.remote_as"; write asn = ... (the router's AS number)`}},
		{"neighbor habit", bgpHead + "neighbor = \"10.1.0.1\" #!\n" + peer + bgpNodes + fe,
			[]string{`unknown key "bgp.neighbor"; write one [[bgp.peer]] table per router`}},
		{"typo did you mean", bgpHead + peer + "pasive = true #!\n" + bgpNodes + fe,
			[]string{`unknown key "bgp.peer.pasive"; did you mean "passive"?`}},
		{"hold time too short", bgpHead + peer + "hold_time = \"1s\" #!\n" + bgpNodes + fe,
			[]string{`hold_time = "1s": must be between 3s and 18h12m15s`}},
		{"hold time fraction", bgpHead + "hold_time = \"4500ms\" #!\n" + peer + bgpNodes + fe,
			[]string{`whole seconds; try "5s"`}},
		{"password too long", bgpHead + peer + "password = \"" + strings.Repeat("x", 81) + "\" #!\n" + bgpNodes + fe,
			[]string{`at most 80 bytes`}},
		{"unknown node", bgpHead + peer + "nodes = [\"lb3\"] #!\n" + bgpNodes + fe,
			[]string{`nodes[0] = "lb3": no [[node]] has this name; did you mean "lb1"?`}},
		{"bad community", "[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\ncommunities = [\"64512\"] #!\n" + peer + bgpNodes + fe,
			[]string{`communities[0] = "64512": a community is "ASN:value"`}},
		{"graceful shutdown configured", "[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\ncommunities = [\"65535:0\"] #!\n" + peer + bgpNodes + fe,
			[]string{`vipd adds graceful-shutdown itself during a planned withdrawal`}},
		{"bad router id", "[bgp]\nasn = 64512\nrouter_id = \"fd00::1\" #!\nvips = [\"192.168.40.10\"]\n" + peer + bgpNodes + fe,
			[]string{`router_id = "fd00::1": must be an IPv4 address (RFC 6286`}},
		{"no router id without nodes", "[bgp] #!\nasn = 64512\nvips = [\"192.168.40.10\"]\n" + peer + fe,
			[]string{`[bgp]: missing router_id; add router_id = "10.0.0.21"`}},
		{"IPv6 node needs a router id", bgpHead + peer + "[[node]]\nname = \"lb1\"\naddress = \"fd00::21\" #!\n" + fe,
			[]string{`its address is IPv6, so BGP needs a router id`}},
		{"duplicate peer", bgpHead + peer + "[[bgp.peer]]\naddress = \"10.1.0.1\" #!\nasn = 64501\n" + bgpNodes + fe,
			[]string{`[[bgp.peer]] "10.1.0.1": already listed on line 4 for the same nodes`}},
		{"bgp.node unknown", bgpHead + peer + "[[bgp.node]]\nname = \"lb7\" #!\n" + bgpNodes + fe,
			[]string{`name = "lb7": no [[node]] has this name`}},
		{"bgp.node twice", bgpHead + peer + "[[bgp.node]]\nname = \"lb1\"\n[[bgp.node]]\nname = \"lb1\" #!\n" + bgpNodes + fe,
			[]string{`[[bgp.node]] "lb1": already overridden on line 7`}},
		{"peer as a single table", bgpHead + "[bgp.peer] #!\naddress = \"10.1.0.1\"\nasn = 64500\n" + bgpNodes + fe,
			[]string{`[bgp.peer]: must be a list of tables; write [[bgp.peer]] (double brackets)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("vipd.toml", []byte(tc.input))
			errs := errorsOf(t, err)
			if len(errs) == 0 {
				t.Fatalf("no error; want %q", tc.contains)
			}
			lines := markedLines(tc.input)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			all := strings.Join(got, "\n")
			for _, want := range tc.contains {
				if !strings.Contains(all, want) {
					t.Errorf("errors:\n%s\nwant one containing %q", all, want)
				}
			}
			for _, l := range lines {
				found := false
				for _, e := range errs {
					if e.Line == l {
						found = true
					}
				}
				if !found {
					t.Errorf("errors:\n%s\nwant one on line %d", all, l)
				}
			}
		})
	}
}

func TestParseBGPWarnings(t *testing.T) {
	c, err := Parse("vipd.toml", []byte("[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\n[[bgp.peer]]\naddress = \"10.1.0.1\"\nasn = 64500\nbfd_interval = \"100ms\"\n"+bgpNodes+
		"[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\naddress = \"192.168.40.10\"\n"+beOK))
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, `vipd.toml:7: [[bgp.peer]] "10.1.0.1" bfd_interval = "100ms": has no effect without bfd = true`) {
		t.Errorf("warnings:\n%s", w)
	}
}

func testZerolog() zerolog.Logger { return zerolog.Nop() }
