package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Frontends that name a [bgp] VIP follow BGP; VRRP frontends keep
// following their instance exactly as before.

const bgpFE = "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\nvip = \"192.168.40.10\"\n"

func TestBGPFrontendFollowsBGP(t *testing.T) {
	c, err := Parse("bgp.toml", []byte(bgpOK+bgpNodes+bgpFE+beOK))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
	f := c.Frontends[0]
	if v, ok := c.BGPVIPOf(f); !ok || v != netip.MustParseAddr("192.168.40.10") {
		t.Errorf("BGPVIPOf = %v, %v; want 192.168.40.10", v, ok)
	}
	if in := c.InstanceOf(f); in != nil {
		t.Errorf("InstanceOf = %q, want nil for a BGP frontend", in.Name)
	}
	if diff := cmp.Diff([]netip.AddrPort{netip.MustParseAddrPort("192.168.40.10:6443")}, c.Binds(f), cmpOpts); diff != "" {
		t.Errorf("Binds (-want +got):\n%s", diff)
	}
}

// A node may run VRRP for one VIP and BGP for another: each frontend
// follows the side its VIP is on, and the VRRP rules are unchanged.
func TestBGPBesideVRRPFrontends(t *testing.T) {
	in := vrrpOK + nodesOK + "[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\n[[bgp.peer]]\naddress = \"192.168.30.1\"\nasn = 64500\n" +
		feOK + strings.Replace(bgpFE, `"kubernetes"`, `"kubernetes-bgp"`, 1) + beOK
	c, err := Parse("both.toml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	vrrpFE, bgpF := c.Frontends[0], c.Frontends[1]
	if in := c.InstanceOf(vrrpFE); in == nil || in.Name != "vrid-51" {
		t.Errorf("the VRRP frontend follows %v, want vrid-51", in)
	}
	if _, ok := c.BGPVIPOf(vrrpFE); ok {
		t.Error("the VRRP frontend follows BGP")
	}
	if got := c.Binds(vrrpFE); len(got) != 1 || got[0] != netip.MustParseAddrPort("192.168.30.30:6443") {
		t.Errorf("VRRP frontend binds %v", got)
	}
	if c.InstanceOf(bgpF) != nil {
		t.Error("the BGP frontend follows a VRRP instance")
	}
	if _, ok := c.BGPVIPOf(bgpF); !ok {
		t.Error("the BGP frontend does not follow BGP")
	}
	// A frontend with a fixed address follows neither.
	fixed := Frontend{Name: "x", Port: 1, Address: netip.MustParseAddr("192.168.40.10")}
	if _, ok := c.BGPVIPOf(fixed); ok || c.InstanceOf(fixed) != nil {
		t.Error("a fixed-address frontend follows something")
	}
}

func TestBGPFrontendErrors(t *testing.T) {
	head := "[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\n[[bgp.peer]]\naddress = \"10.1.0.1\"\nasn = 64500\n" + bgpNodes
	tests := []struct {
		name, input, contains string
	}{
		{"no vip, no address", head + "[[frontend]] #!\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\n" + beOK,
			`[[frontend]] "kubernetes": missing vip or address; add vip = one of "192.168.40.10" to serve an announced [bgp] VIP`},
		{"vip not announced", head + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\nvip = \"192.168.40.11\" #!\n" + beOK,
			`vip = "192.168.40.11": not one of the [bgp] vips; use one of "192.168.40.10"`},
		{"vip in neither", vrrpOK + nodesOK + "[bgp]\nasn = 64512\nvips = [\"192.168.40.10\"]\n[[bgp.peer]]\naddress = \"10.1.0.1\"\nasn = 64500\n" +
			"[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\nvip = \"192.168.40.11\" #!\n" + beOK,
			`vip = "192.168.40.11": neither a VRRP instance nor [bgp] has this VIP; use one of "192.168.30.30", "192.168.40.10"`},
		{"two frontends, same vip and port", head + bgpFE + strings.Replace(bgpFE, `"kubernetes"`, `"other"`, 1) + "#!\n" + beOK,
			`already listens on port 6443 on the same address`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("vipd.toml", []byte(tc.input))
			errs := errorsOf(t, err)
			var all []string
			for _, e := range errs {
				all = append(all, e.Error())
			}
			if !strings.Contains(strings.Join(all, "\n"), tc.contains) {
				t.Errorf("errors:\n%s\nwant one containing %q", strings.Join(all, "\n"), tc.contains)
			}
			lines := markedLines(tc.input)
			for _, l := range lines {
				found := false
				for _, e := range errs {
					found = found || e.Line == l
				}
				if !found && !strings.HasPrefix(tc.name, "two frontends") {
					t.Errorf("no error on line %d:\n%s", l, strings.Join(all, "\n"))
				}
			}
		})
	}
}

// A broken [bgp] table is reported once, not again at every frontend that
// names one of its VIPs.
func TestBGPFrontendNoDoubleError(t *testing.T) {
	in := "[bgp]\nasn = 64512\nvips = [\"192.168.40.10/24\"]\n[[bgp.peer]]\naddress = \"10.1.0.1\"\nasn = 64500\n" + bgpNodes + bgpFE + beOK
	_, err := Parse("vipd.toml", []byte(in))
	errs := errorsOf(t, err)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "host routes") {
		t.Errorf("errors %v, want only the [bgp] vips one", errs)
	}
}

func TestBGPWarnings(t *testing.T) {
	track := "[[track]]\nname = \"enough\"\ntype = \"backends\"\nfrontend = \"kubernetes\"\nmin_healthy = 2\n"
	script := "[[track]]\nname = \"script\"\ntype = \"script\"\ncommand = [\"/bin/true\"]\n"
	c, err := Parse("vipd.toml", []byte(bgpOK+bgpNodes+bgpFE+beOK+track+script))
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(c.Warnings(), "\n")
	if strings.Contains(w, `"enough"`) {
		t.Errorf("a backends tracker on a BGP frontend gates the announcement; warned anyway:\n%s", w)
	}
	if !strings.Contains(w, `[[track]] "script": without [vrrp] only a backends tracker on a frontend with a [bgp] vip does something`) {
		t.Errorf("warnings:\n%s\nwant one about the script tracker", w)
	}
	if strings.Contains(w, "there is no [vrrp]; they run but change nothing") {
		t.Errorf("the VRRP-only warning fired in BGP mode:\n%s", w)
	}
	// A [bgp] VIP as a fixed address never follows the announcement.
	c, err = Parse("vipd.toml", []byte(bgpOK+bgpNodes+strings.Replace(bgpFE, "vip =", "address =", 1)+beOK))
	if err != nil {
		t.Fatal(err)
	}
	w = strings.Join(c.Warnings(), "\n")
	for _, want := range []string{
		`address = "192.168.40.10": a [bgp] VIP as a fixed address listens even while the VIP is withdrawn; write vip = "192.168.40.10"`,
		// ... and the VIP then has no frontend that follows it.
		`vipd.toml:3: [bgp] vips[0] = "192.168.40.10": no [[frontend]] has vip = "192.168.40.10", so it is never announced`,
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings:\n%s\nwant %q", w, want)
		}
	}
}
