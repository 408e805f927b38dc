package config

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpOpts compares Configs: netip values by their comparable form, and
// without the parse-time warnings (tested through Warnings).
var cmpOpts = cmp.Options{
	cmpopts.IgnoreUnexported(Config{}),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return c
}

func TestParseDesignExample(t *testing.T) {
	want := &Config{
		Path: "testdata/design.toml",
		VRRP: &VRRP{StatusPort: 9601, LivenessPort: 9602},
		Instances: []Instance{{
			Name:                "vrid-51",
			VRID:                51,
			Version:             3,
			Interface:           "eth0",
			VIPs:                []netip.Prefix{netip.MustParsePrefix("192.168.30.30/24")},
			AdvertInterval:      200 * time.Millisecond,
			Preempt:             true,
			Checksum:            "pseudo-header",
			GARPRepeat:          5,
			GARPInterval:        100 * time.Millisecond,
			GARPRefresh:         60 * time.Second,
			GARPLowerPrioRepeat: 1,
			GARPLowerPrioDelay:  time.Second,
			StartupHold:         true,
			StartupInterval:     time.Second,
		}},
		Nodes: []Node{
			{Name: "lb1", Address: netip.MustParseAddr("192.168.30.21"), Priority: 150},
			{Name: "lb2", Address: netip.MustParseAddr("192.168.30.22"), Priority: 100, Interface: "enp3s0"},
		},
		Tracks: []Track{{
			Name: "apiserver-local", Type: "script", Weight: -60,
			Command:  []string{"/usr/local/bin/check-something"},
			Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2,
		}},
		Frontends: []Frontend{{
			Name: "kubernetes", Port: 6443, Backend: "kube-apiserver", Balance: "leastconn",
			ConnectTimeout: 5 * time.Second,
		}},
		Backends: []Backend{{
			Name: "kube-apiserver",
			Servers: []Server{
				{Name: "192.168.30.31", Addr: netip.MustParseAddrPort("192.168.30.31:6443")},
				{Name: "192.168.30.32", Addr: netip.MustParseAddrPort("192.168.30.32:6443")},
				{Name: "192.168.30.33", Addr: netip.MustParseAddrPort("192.168.30.33:6443")},
			},
			Check: Check{
				Type: "https", Method: "GET", Path: "/readyz", ExpectStatus: 200,
				Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
				CA: "/etc/kubernetes/pki/ca.crt",
			},
			DrainTimeout: 30 * time.Second,
		}},
		Control: Control{Socket: "/run/vipd/vipd.sock", Mode: 0o660},
		HTTP: &HTTP{
			Listen: "127.0.0.1:9600",
			Allow:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		},
		Log: Log{Level: "info", Format: "auto"},
	}
	got := mustLoad(t, "testdata/design.toml")
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("design example (-want +got):\n%s", diff)
	}
	if w := got.Warnings(); len(w) != 0 {
		t.Errorf("design example has warnings: %q", w)
	}
}

func TestParseDefaults(t *testing.T) {
	defaultCheck := Check{
		Type: "tcp", Method: "GET", Path: "/", ExpectStatus: 200,
		Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
	}
	tests := []struct {
		file string
		want *Config
	}{
		{
			file: "testdata/minimal.toml",
			want: &Config{
				Path: "testdata/minimal.toml",
				VRRP: &VRRP{StatusPort: 9601, LivenessPort: 9602},
				Instances: []Instance{{
					Name: "vrid-51", VRID: 51, Version: 3, Interface: "eth0",
					VIPs:           []netip.Prefix{netip.MustParsePrefix("192.168.30.30/32")},
					AdvertInterval: 200 * time.Millisecond, Preempt: true, Checksum: "pseudo-header",
					GARPRepeat: 5, GARPInterval: 100 * time.Millisecond, GARPRefresh: time.Minute,
					GARPLowerPrioRepeat: 1, GARPLowerPrioDelay: time.Second,
					StartupHold:     true,
					StartupInterval: time.Second,
				}},
				Nodes: []Node{
					{Name: "lb1", Address: netip.MustParseAddr("192.168.30.21"), Priority: 100},
					{Name: "lb2", Address: netip.MustParseAddr("192.168.30.22"), Priority: 90},
				},
				Frontends: []Frontend{{Name: "kubernetes", Port: 6443, Backend: "kube-apiserver", Balance: "leastconn", ConnectTimeout: 5 * time.Second}},
				Backends: []Backend{{
					Name:         "kube-apiserver",
					Servers:      []Server{{Name: "192.168.30.31", Addr: netip.MustParseAddrPort("192.168.30.31:6443")}},
					Check:        defaultCheck,
					DrainTimeout: 30 * time.Second,
				}},
				Control: Control{Socket: "/run/vipd/vipd.sock", Mode: 0o660},
				Log:     Log{Level: "info", Format: "auto"},
			},
		},
		{
			file: "testdata/single.toml",
			want: &Config{
				Path: "testdata/single.toml",
				Frontends: []Frontend{
					{Name: "kubernetes", Port: 6443, Backend: "kube-apiserver", Balance: "leastconn", Address: netip.MustParseAddr("10.0.0.5"), ConnectTimeout: 5 * time.Second},
					{Name: "talos", Port: 50000, Backend: "talos", Balance: "source", Address: netip.MustParseAddr("10.0.0.5"), ConnectTimeout: 5 * time.Second},
				},
				Backends: []Backend{
					{
						Name: "kube-apiserver",
						Servers: []Server{
							{Name: "cp1", Addr: netip.MustParseAddrPort("10.0.0.11:6443")},
							{Name: "10.0.0.12", Addr: netip.MustParseAddrPort("10.0.0.12:6443")},
							{Name: "fd00::13", Addr: netip.MustParseAddrPort("[fd00::13]:6443")},
						},
						Check: Check{
							Type: "https", Method: "GET", Path: "/readyz", ExpectStatus: 200,
							Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
							CA: "/etc/kubernetes/pki/ca.crt",
						},
						DrainTimeout: 10 * time.Second,
						CloseOnDown:  true,
					},
					{
						Name: "talos",
						Servers: []Server{
							{Name: "10.0.0.11", Addr: netip.MustParseAddrPort("10.0.0.11:50000")},
							{Name: "10.0.0.12", Addr: netip.MustParseAddrPort("10.0.0.12:50000")},
						},
						Check: Check{
							Type: "tls", Port: 50001, Method: "GET", Path: "/", ExpectStatus: 200,
							Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
							InsecureSkipVerify: true,
						},
						DrainTimeout: 30 * time.Second,
					},
				},
				Control: Control{Socket: "/run/vipd/other.sock", Group: "vipd", Mode: 0o640},
				HTTP: &HTTP{
					Listen: "0.0.0.0:9600",
					Users:  []User{{Name: "admin", PasswordHash: "$2a$04$PAha7QJxxQuZH.89TMRFgOF5k7i9CkUKTy5XkebfQyLI/HnTSMGt2"}},
					Allow:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.30.5/32")},
				},
				Notify: &Notify{Command: []string{"/usr/local/bin/notify", "--quiet"}, Timeout: 5 * time.Second},
				Log:    Log{Level: "debug", Format: "json"},
				Global: Global{MaxConn: 10000},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := mustLoad(t, tt.file)
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseVariants(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(t *testing.T, c *Config)
	}{
		{
			name:  "keepalived preset",
			input: vrrpWith(`preset = "keepalived"`) + nodesOK + feOK + beOK,
			check: func(t *testing.T, c *Config) {
				if diff := cmp.Diff(time.Second, c.Instances[0].AdvertInterval); diff != "" {
					t.Errorf("advert_interval (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:  "explicit interval beats the preset",
			input: vrrpWith("preset = \"keepalived\"\nadvert_interval = \"500ms\"") + nodesOK + feOK + beOK,
			check: func(t *testing.T, c *Config) {
				if diff := cmp.Diff(500*time.Millisecond, c.Instances[0].AdvertInterval); diff != "" {
					t.Errorf("advert_interval (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:  "octal integer mode and every vrrp key",
			input: vrrpWith("preempt = false\npreempt_delay = \"30s\"\nchecksum = \"rfc9568\"\nunicast = true\ngarp_repeat = 3\ngarp_interval = \"50ms\"\ngarp_refresh = \"0s\"\nstartup_hold = false\nstatus_port = 0\nliveness_port = 0\nstartup_interval = \"0s\"\nadvert_interval = \"40.95s\"") + nodesOK + feOK + beOK + "[control]\nmode = 0o600\n",
			check: func(t *testing.T, c *Config) {
				want := []Instance{{
					Name: "vrid-51", VRID: 51, Version: 3, Interface: "eth0", VIPs: []netip.Prefix{netip.MustParsePrefix("192.168.30.30/32")},
					AdvertInterval: 40950 * time.Millisecond, PreemptDelay: 30 * time.Second, Checksum: "rfc9568",
					Unicast: true, GARPRepeat: 3, GARPInterval: 50 * time.Millisecond,
					GARPLowerPrioRepeat: 1, GARPLowerPrioDelay: time.Second,
				}}
				if diff := cmp.Diff(&VRRP{}, c.VRRP); diff != "" {
					t.Errorf("vrrp (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(want, c.Instances, cmpOpts); diff != "" {
					t.Errorf("vrrp (-want +got):\n%s", diff)
				}
				if c.Control.Mode != 0o600 {
					t.Errorf("mode = %o, want 600", c.Control.Mode)
				}
			},
		},
		{
			name: "servers as [[backend.servers]] and dotted check keys",
			input: vrrpOK + nodesOK + feOK + `[[backend]]
name = "kube-apiserver"
check.type = "http"
check.path = "/healthz"
[[backend.servers]]
name = "cp1"
address = "192.168.30.31:6443"
`,
			check: func(t *testing.T, c *Config) {
				b := c.Backends[0]
				if diff := cmp.Diff([]Server{{Name: "cp1", Addr: netip.MustParseAddrPort("192.168.30.31:6443")}}, b.Servers, cmpOpts); diff != "" {
					t.Errorf("servers (-want +got):\n%s", diff)
				}
				if b.Check.Type != "http" || b.Check.Path != "/healthz" {
					t.Errorf("check = %+v", b.Check)
				}
			},
		},
		{
			name: "tracks of every type",
			input: vrrpOK + nodesOK + feOK + beOK + `[[track]]
name = "link"
type = "interface"
interface = "eth1"
weight = -60
[[track]]
name = "pool"
type = "backends"
frontend = "kubernetes"
[[track]]
name = "script"
type = "script"
command = ["/bin/true"]
`,
			check: func(t *testing.T, c *Config) {
				want := []Track{
					{Name: "link", Type: "interface", Interface: "eth1", Weight: -60},
					{Name: "pool", Type: "backends", Frontend: "kubernetes", MinHealthy: 1},
					{Name: "script", Type: "script", Command: []string{"/bin/true"}, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2},
				}
				if diff := cmp.Diff(want, c.Tracks); diff != "" {
					t.Errorf("tracks (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:  "node interfaces cover a missing [vrrp] interface",
			input: "[vrrp]\nvrid = 1\nvips = [\"10.0.0.100\"]\n[[node]]\nname = \"a\"\naddress = \"10.0.0.1\"\ninterface = \"eth0\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Instances[0].Interface != "" || c.Instances[0].InterfaceFor(&c.Nodes[0]) != "eth0" {
					t.Errorf("interfaces: vrrp %q node %q", c.Instances[0].Interface, c.Instances[0].InterfaceFor(&c.Nodes[0]))
				}
			},
		},
		{
			name:  "IPv6 VIP with IPv6 nodes",
			input: "[vrrp]\nvrid = 1\ninterface = \"eth0\"\nvips = [\"fd00::100/64\"]\n[[node]]\nname = \"a\"\naddress = \"fd00::1\"\n",
			check: func(t *testing.T, c *Config) {
				if diff := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("fd00::100/64")}, c.Instances[0].VIPs, cmpOpts); diff != "" {
					t.Errorf("vips (-want +got):\n%s", diff)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("vipd.toml", []byte(tt.input))
			if err != nil {
				t.Fatalf("Parse: %v\ninput:\n%s", err, tt.input)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/nope.toml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		err  Error
		want string
	}{
		{Error{File: "vipd.toml", Line: 12, Msg: "bad"}, "vipd.toml:12: bad"},
		{Error{File: "vipd.toml", Msg: "bad"}, "vipd.toml: bad"},
	} {
		if diff := cmp.Diff(tt.want, tt.err.Error()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

// Building blocks for error cases. Each is valid on its own.
const (
	vrrpOK  = "[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n"
	nodesOK = "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\npriority = 150\n[[node]]\nname = \"lb2\"\naddress = \"192.168.30.22\"\npriority = 100\n"
	feOK    = "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\n"
	beOK    = "[[backend]]\nname = \"kube-apiserver\"\nservers = [\"192.168.30.31:6443\", \"192.168.30.32:6443\"]\n"
)

func vrrpWith(extra string) string { return vrrpOK + extra + "\n" }

// errorsOf unpacks what Parse returned into its *Error values.
func errorsOf(t *testing.T, err error) []*Error {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		errs = u.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*Error
	for _, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %v (%T) is not a *Error", e, e)
		}
		out = append(out, ce)
	}
	return out
}

// markedLines returns the lines that carry a "#!" marker, in order.
func markedLines(input string) []int {
	var out []int
	for i, l := range strings.Split(input, "\n") {
		for range strings.Count(l, "#!") {
			out = append(out, i+1)
		}
	}
	return out
}

func TestParseErrors(t *testing.T) {
	// Each input marks the line(s) the error must name with "#!"; contains
	// holds a piece of each message, the fix hint in particular.
	tests := []struct {
		name     string
		input    string
		contains []string
	}{
		{"missing node", "[vrrp] #!\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n" + feOK + beOK,
			[]string{`no [[node]] tables; add one per load-balancer host`}},
		{"duplicate node name", vrrpOK + nodesOK + "[[node]]\nname = \"lb1\" #!\naddress = \"192.168.30.23\"\n" + feOK + beOK,
			[]string{`name = "lb1": already used by the [[node]] on line 5; node names must be unique`}},
		{"duplicate node address", vrrpOK + nodesOK + "[[node]]\nname = \"lb3\"\naddress = \"192.168.30.22\" #!\n" + feOK + beOK,
			[]string{`address = "192.168.30.22": already the address of [[node]] "lb2" on line 9; every node needs its own address`}},
		{"priority 0", vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\npriority = 0 #!\n" + feOK + beOK,
			[]string{`[[node]] "lb1" priority = 0: must be between 1 and 255; use 1..254`}},
		{"priority 256", vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\npriority = 256 #!\n" + feOK + beOK,
			[]string{`priority = 256: must be between 1 and 255`}},
		{"priority of the second node", vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\npriority = 100\n[[node]]\nname = \"lb2\"\naddress = \"192.168.30.22\"\npriority = 300 #!\n" + feOK + beOK,
			[]string{`[[node]] "lb2" priority = 300`}},
		{"two owners", vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\npriority = 255\n[[node]]\nname = \"lb2\"\naddress = \"192.168.30.22\"\npriority = 255 #!\n" + feOK + beOK,
			[]string{`only one node may own the VIP: use 1..254 for the other`}},
		{"vrid 0", "[vrrp]\nvrid = 0 #!\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n" + nodesOK + feOK + beOK,
			[]string{`[vrrp] vrid = 0: must be between 1 and 255; pick one per VIP group`}},
		{"vrid 256", "[vrrp]\nvrid = 256 #!\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n" + nodesOK + feOK + beOK,
			[]string{`[vrrp] vrid = 256: must be between 1 and 255`}},
		{"vrid missing", "[vrrp] #!\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n" + nodesOK + feOK + beOK,
			[]string{`[vrrp]: missing vrid; add vrid = 51`}},
		{"vips empty", "[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [] #!\n" + nodesOK + feOK + beOK,
			[]string{`[vrrp] vips = []: must list at least one address; e.g. vips = ["192.168.30.30/24"]`}},
		{"vips missing", "[vrrp] #!\nvrid = 51\ninterface = \"eth0\"\n" + nodesOK + feOK + beOK,
			[]string{`[vrrp]: missing vips; add vips = ["192.168.30.30"]`}},
		{"vip not an address", "[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [\n  \"192.168.30.30\",\n  \"vip.example.com\", #!\n]\n" + nodesOK + feOK + beOK,
			[]string{`[vrrp] vips[1] = "vip.example.com": not an IP address or prefix; write "192.168.30.30" or "192.168.30.30/24"`}},
		{"vip is a node address", "[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.21\"] #!\n" + nodesOK + feOK + beOK,
			[]string{`this is [[node]] "lb1"'s own address`}},
		{"IPv6 VIPs with IPv4 nodes", "[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [\"fd00::30\"] #!\n" + nodesOK + feOK + beOK,
			[]string{`IPv6 VIPs, but every [[node]] address is IPv4; one VRRP instance carries one address family (RFC 9568 section 5): use IPv4 VIPs, or give the nodes IPv6 addresses`}},
		{"one node of the other family", vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\n[[node]]\nname = \"lb2\"\naddress = \"fd00::22\" #!\n" + feOK + beOK,
			[]string{`[[node]] "lb2" address = "fd00::22": IPv6, but the VIPs of [vrrp] are IPv4`}},
		{"mixed VIP families", "[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\", \"fd00::30\"] #!\n" + nodesOK + feOK + beOK,
			[]string{`vips[1] = "fd00::30": IPv6, but vips[0] is IPv4; one VRRP instance carries one address family`}},
		{"interface missing", "[vrrp] #!\nvrid = 51\nvips = [\"192.168.30.30\"]\n" + nodesOK + feOK + beOK,
			[]string{`missing interface; add interface = "eth0"`, `missing in [[node]] "lb1", [[node]] "lb2"`}},
		{"advert_interval 0ms", vrrpWith(`advert_interval = "0ms" #!`) + nodesOK + feOK + beOK,
			[]string{`[vrrp] advert_interval = "0ms": must be between 10ms and 40.95s (RFC 9568 12-bit centiseconds); try "200ms"`}},
		{"advert_interval not centiseconds", vrrpWith(`advert_interval = "15ms" #!`) + nodesOK + feOK + beOK,
			[]string{`must be a multiple of 10ms`, `try "20ms"`}},
		{"advert_interval integer", vrrpWith(`advert_interval = 1 #!`) + nodesOK + feOK + beOK,
			[]string{`[vrrp] advert_interval = 1: durations are strings with a unit; write advert_interval = "1s" or "1ms"`}},
		{"advert_interval garbage", vrrpWith(`advert_interval = "fast" #!`) + nodesOK + feOK + beOK,
			[]string{`not a duration (a number with a unit: ms, s, m, h); try "200ms"`}},
		{"checksum unknown", vrrpWith(`checksum = "keepalived" #!`) + nodesOK + feOK + beOK,
			[]string{`[vrrp] checksum = "keepalived": must be one of "pseudo-header", "rfc9568"`}},
		{"checksum typo", vrrpWith(`checksum = "rfc-9568" #!`) + nodesOK + feOK + beOK,
			[]string{`did you mean "rfc9568"?`}},
		{"preempt as string", vrrpWith(`preempt = "false" #!`) + nodesOK + feOK + beOK,
			[]string{`must be a boolean; write preempt = false without quotes`}},
		{"preset unknown", vrrpWith(`preset = "vrrpd" #!`) + nodesOK + feOK + beOK,
			[]string{`[vrrp] preset = "vrrpd": must be one of "keepalived"`}},
		{"garp_refresh too short", vrrpWith(`garp_refresh = "10ms" #!`) + nodesOK + feOK + beOK,
			[]string{`must be "0s" (off) or at least 1s`}},
		{"node address hostname", vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"lb1.example.com\" #!\n" + feOK + beOK,
			[]string{`not an IP address (hostnames are not resolved)`}},
		{"node address with prefix", vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21/24\" #!\n" + feOK + beOK,
			[]string{`write "192.168.30.21"`}},
		{"node without name", vrrpOK + "[[node]] #!\naddress = \"192.168.30.21\"\n" + feOK + beOK,
			[]string{`[[node]] #1: missing name; add name = "lb1"`}},
		{"node as a table", strings.Replace(vrrpOK, "[vrrp]", "[vrrp] #!", 1) + "[node] #!\nname = \"lb1\"\naddress = \"192.168.30.21\"\n" + feOK + beOK,
			[]string{`[node]: must be a list of tables; write [[node]] (double brackets)`, `no [[node]] tables`}},
		{"vrrp as array", "[[vrrp]] #!\nvrid = 51\n" + nodesOK + feOK + beOK,
			[]string{`vipd.toml:1: [[vrrp]]: must be a single table; write [vrrp] (not [[vrrp]])`}},
		{"frontend unknown backend", vrrpOK + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiservr\" #!\n" + beOK,
			[]string{`[[frontend]] "kubernetes" backend = "kube-apiservr": no [[backend]] has that name; did you mean "kube-apiserver"?`}},
		{"frontend unknown backend, no near name", vrrpOK + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"talos\" #!\n" + beOK,
			[]string{`use one of "kube-apiserver"`}},
		{"duplicate frontend port", vrrpOK + nodesOK + feOK + "[[frontend]]\nname = \"k2\"\nport = 6443 #!\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`[[frontend]] "k2" port = 6443: [[frontend]] "kubernetes" on line 13 already listens on port 6443 on the same address; give one of them another port`}},
		{"same port on another address is fine, a wildcard is not", vrrpOK + nodesOK + feOK +
			"[[frontend]]\nname = \"k2\"\nport = 6443\naddress = \"10.1.1.1\"\nbackend = \"kube-apiserver\"\n" +
			"[[frontend]]\nname = \"k3\"\nport = 6443 #!\naddress = \"0.0.0.0\"\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`[[frontend]] "k3" port = 6443: [[frontend]] "kubernetes"`}},
		{"duplicate frontend name", vrrpOK + nodesOK + feOK + "[[frontend]]\nname = \"kubernetes\" #!\nport = 50000\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`already used by the [[frontend]] on line 13`}},
		{"frontend port 0", vrrpOK + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 0 #!\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`port = 0: must be between 1 and 65535; e.g. port = 6443`}},
		{"frontend missing port", vrrpOK + nodesOK + "[[frontend]] #!\nname = \"kubernetes\"\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`[[frontend]] "kubernetes": missing port; add the port clients connect to`}},
		{"unknown balance", vrrpOK + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\nbalance = \"round-robin\" #!\n" + beOK,
			[]string{`balance = "round-robin": must be one of "leastconn", "roundrobin", "source"; did you mean "roundrobin"?`}},
		{"frontend without address and no vrrp", "[[frontend]] #!\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\n" + beOK,
			[]string{`[[frontend]] "kubernetes": missing address; without [vrrp] (single LB, no failover) there is no VIP to bind, so add address = "10.0.0.5"`}},
		{"backend without servers", vrrpOK + nodesOK + feOK + "[[backend]] #!\nname = \"kube-apiserver\"\n",
			[]string{`[[backend]] "kube-apiserver": no servers; add servers = ["192.168.30.31:6443", "192.168.30.32:6443"]`}},
		{"backend with empty servers", vrrpOK + nodesOK + feOK + "[[backend]]\nname = \"kube-apiserver\"\nservers = [] #!\n",
			[]string{`servers = []: must list at least one server`}},
		{"server hostname", vrrpOK + nodesOK + feOK + "[[backend]]\nname = \"kube-apiserver\"\nservers = [\n  \"192.168.30.31:6443\",\n  \"cp2.example.com:6443\", #!\n]\n",
			[]string{`[[backend]] "kube-apiserver" servers[1] = "cp2.example.com:6443": not "ip:port" (hostnames are not resolved); write the server's IP`}},
		{"server without port", vrrpOK + nodesOK + feOK + "[[backend]]\nname = \"kube-apiserver\"\nservers = [\"192.168.30.31\"] #!\n",
			[]string{`missing the port; write "192.168.30.31:6443"`}},
		{"server IPv6 without brackets", vrrpOK + nodesOK + feOK + "[[backend]]\nname = \"kube-apiserver\"\nservers = [\"fd00::31:6443\"] #!\n",
			[]string{`missing the port; write "[fd00::31:6443]:6443"`}},
		{"server bad port", vrrpOK + nodesOK + feOK + "[[backend]]\nname = \"kube-apiserver\"\nservers = [\"192.168.30.31:70000\"] #!\n",
			[]string{`bad port "70000"`}},
		{"server table without address", vrrpOK + nodesOK + feOK + "[[backend]]\nname = \"kube-apiserver\"\nservers = [\n  { name = \"cp1\" }, #!\n]\n",
			[]string{`servers[0]: missing address; add address = "192.168.30.31:6443"`}},
		{"server table unknown key", vrrpOK + nodesOK + feOK + "[[backend]]\nname = \"kube-apiserver\"\nservers = [\n  \"192.168.30.32:6443\",\n  { name = \"cp1\", addr = \"192.168.30.31:6443\" }, #!#!\n]\n",
			[]string{`unknown key "backend.servers.addr"; did you mean "address"?`, `servers[1]: missing address`}},
		{"server twice", vrrpOK + nodesOK + feOK + "[[backend]]\nname = \"kube-apiserver\"\nservers = [\n  \"192.168.30.31:6443\",\n  { name = \"cp1\", address = \"192.168.30.31:6443\" }, #!\n]\n",
			[]string{`192.168.30.31:6443 is already servers[0]; list each server once`}},
		{"check type unknown", vrrpOK + nodesOK + feOK + beOK + "check = { type = \"ssl\" } #!\n",
			[]string{`[[backend]] "kube-apiserver" check type = "ssl": must be one of "tcp", "tls", "http", "https", "none"`}},
		{"check rise 0", vrrpOK + nodesOK + feOK + beOK + "[backend.check]\ntype = \"tcp\"\nrise = 0 #!\n",
			[]string{`check rise = 0: must be between 1 and 100`}},
		{"check fall 0", vrrpOK + nodesOK + feOK + beOK + "check = { fall = 0 } #!\n",
			[]string{`check fall = 0: must be between 1 and 100`}},
		{"check path on tcp", vrrpOK + nodesOK + feOK + beOK + "check = { type = \"tcp\", path = \"/readyz\" } #!\n",
			[]string{`path = "/readyz": applies only to type = "http" or "https" checks`}},
		{"check path without slash", vrrpOK + nodesOK + feOK + beOK + "check = { type = \"https\", path = \"readyz\", insecure_skip_verify = true } #!\n",
			[]string{`must start with /; write path = "/readyz"`}},
		{"check client cert without key", vrrpOK + nodesOK + feOK + beOK + "check = { type = \"tls\", client_cert = \"/etc/vipd/c.crt\" } #!\n",
			[]string{`needs client_key too`}},
		{"check ca relative", vrrpOK + nodesOK + feOK + beOK + "check = { type = \"tls\", ca = \"ca.crt\" } #!\n",
			[]string{`must be an absolute path (the daemon runs from /); write "/etc/vipd/ca.crt"`}},
		{"track type unknown", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"t\"\ntype = \"http\" #!\n",
			[]string{`[[track]] "t" type = "http": must be one of "script", "interface", "backends"`}},
		{"track type missing", vrrpOK + nodesOK + feOK + beOK + "[[track]] #!\nname = \"t\"\n",
			[]string{`missing type; add type = "script", "interface" or "backends"`}},
		{"script track with empty command", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"t\"\ntype = \"script\"\ncommand = [] #!\n",
			[]string{`command = []: must name a program; write command = ["/usr/local/bin/check", "arg"]`}},
		{"script track without command", vrrpOK + nodesOK + feOK + beOK + "[[track]] #!\nname = \"t\"\ntype = \"script\"\n",
			[]string{`a script tracker needs a command`}},
		{"script track command as string", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"t\"\ntype = \"script\"\ncommand = \"/bin/check\" #!\n",
			[]string{`must be an array of strings; write command = ["/bin/check"]`}},
		{"interface track without interface", vrrpOK + nodesOK + feOK + beOK + "[[track]] #!\nname = \"t\"\ntype = \"interface\"\n",
			[]string{`an interface tracker needs the link to watch; add interface = "eth0"`}},
		{"interface track with command", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"t\"\ntype = \"interface\"\ninterface = \"eth0\"\ncommand = [\"/bin/true\"] #!\n",
			[]string{`applies only to type = "script" trackers, and this one is type = "interface"; remove it`}},
		{"backends track with unknown frontend", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"t\"\ntype = \"backends\"\nfrontend = \"kubernets\" #!\n",
			[]string{`frontend = "kubernets": no [[frontend]] has that name; did you mean "kubernetes"?`}},
		{"backends track min_healthy above servers", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"t\"\ntype = \"backends\"\nfrontend = \"kubernetes\"\nmin_healthy = 3 #!\n",
			[]string{`backend "kube-apiserver" has only 2 servers, so the tracker could never pass; use min_healthy = 2 or less`}},
		{"track weight out of range", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"t\"\ntype = \"interface\"\ninterface = \"eth0\"\nweight = -300 #!\n",
			[]string{`weight = -300: must be between -254 and 254`}},
		{"duplicate track", vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"t\"\ntype = \"interface\"\ninterface = \"eth0\"\n[[track]]\nname = \"t\" #!\ntype = \"interface\"\ninterface = \"eth1\"\n",
			[]string{`already used by the [[track]] on line 20`}},
		{"http allow bad CIDR", vrrpOK + nodesOK + feOK + beOK + "[http]\nallow = [\"10.0.0.0/33\"] #!\n",
			[]string{`[http] allow[0] = "10.0.0.0/33": not a CIDR; write e.g. "10.0.0.0/8"`}},
		{"http allow host bits", vrrpOK + nodesOK + feOK + beOK + "[http]\nallow = [\"10.0.0.1/8\"] #!\n",
			[]string{`has host bits set; write "10.0.0.0/8"`}},
		{"http listen bad", vrrpOK + nodesOK + feOK + beOK + "[http]\nlisten = \"localhost:9600\" #!\n",
			[]string{`must be "ip:port" (or ":port" for every address)`}},
		{"password hash not bcrypt", vrrpOK + nodesOK + feOK + beOK + "[http]\n[[http.user]]\nname = \"admin\"\npassword_hash = \"$6$salt$sha512crypt\" #!\n",
			[]string{`[[http.user]] "admin" password_hash = "<redacted>": not a bcrypt hash ($2a$, $2b$ or $2y$); generate one with: htpasswd -bnBC 10`}},
		{"password hash truncated", vrrpOK + nodesOK + feOK + beOK + "[http]\n[[http.user]]\nname = \"admin\"\npassword_hash = \"$2y$10$abc\" #!\n",
			[]string{`a truncated or damaged bcrypt hash`}},
		{"plain password", vrrpOK + nodesOK + feOK + beOK + "[[http.user]] #!\nname = \"admin\"\npassword = \"hunter2\" #!\n",
			[]string{`missing password_hash`, `unknown key "http.user.password"; plain passwords are not accepted`}},
		{"control mode decimal", vrrpOK + nodesOK + feOK + beOK + "[control]\nmode = 660 #!\n",
			[]string{`must be octal permission bits; write mode = "0660" (or 0o660)`}},
		{"control socket relative", vrrpOK + nodesOK + feOK + beOK + "[control]\nsocket = \"vipd.sock\" #!\n",
			[]string{`must be an absolute path`}},
		{"log level", vrrpOK + nodesOK + feOK + beOK + "[log]\nlevel = \"verbose\" #!\n",
			[]string{`must be one of "trace", "debug", "info", "warn", "error"`}},
		{"notify without command", vrrpOK + nodesOK + feOK + beOK + "[notify] #!\ntimeout = \"1s\"\n",
			[]string{`[notify]: missing command`}},
		{"global maxconn negative", vrrpOK + nodesOK + feOK + beOK + "[global]\nmaxconn = -1 #!\n",
			[]string{`must be between 0 and 16777216; 0 means unlimited`}},
		{"priority as string", vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\npriority = \"150\" #!\n" + feOK + beOK,
			[]string{`must be an integer, not a string; write priority = 150`}},
		{"several errors sorted by line", "[vrrp]\nvrid = 0 #!\ninterface = \"eth0\"\nvips = [\"x\"] #!\n" + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"nope\" #!\n" + beOK,
			[]string{`vrid = 0`, `vips[0] = "x"`, `backend = "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("vipd.toml", []byte(tt.input))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors\ninput:\n%s", c, tt.input)
			}
			errs := errorsOf(t, err)
			var gotLines []int
			for _, e := range errs {
				gotLines = append(gotLines, e.Line)
				if e.File != "vipd.toml" {
					t.Errorf("File = %q, want vipd.toml", e.File)
				}
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

func TestParseUnknownKeys(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{
			name:  "typo in vrrp",
			input: "[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n\n# the interval\nadvert_intervall = \"1s\"\n" + nodesOK + feOK + beOK,
			want:  `vipd.toml:7: unknown key "vrrp.advert_intervall"; did you mean "advert_interval"?`,
		},
		{
			name:  "wrong case",
			input: "[vrrp]\nVRID = 51\nvrid = 52\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n" + nodesOK + feOK + beOK,
			want:  `vipd.toml:2: unknown key "vrrp.VRID"; did you mean "vrid"?`,
		},
		{
			name:  "in the second node",
			input: vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\n[[node]]\nname = \"lb2\"\nadress = \"192.168.30.22\"\n" + feOK + beOK,
			want: `vipd.toml:10: unknown key "node.adress"; did you mean "address"?` + "\n" +
				`vipd.toml:8: [[node]] "lb2": missing address; add this host's IP on the VRRP link, e.g. address = "192.168.30.21"`,
		},
		{
			name:  "keepalived habit",
			input: vrrpWith("nopreempt = true") + nodesOK + feOK + beOK,
			want:  `vipd.toml:5: unknown key "vrrp.nopreempt"; write preempt = false`,
		},
		{
			name:  "unknown table",
			input: vrrpOK + nodesOK + feOK + beOK + "\n[vrp.extra]\nx = 1\n",
			want:  `vipd.toml:21: unknown key "vrp"; did you mean "vrrp"?`,
		},
		{
			name:  "nothing close",
			input: vrrpOK + nodesOK + feOK + beOK + "[log]\ncolour = true\n",
			want:  `vipd.toml:21: unknown key "log.colour"; [log] takes: level, format`,
		},
		{
			name:  "in an inline check table",
			input: vrrpOK + nodesOK + feOK + beOK + "check = {\n  type = \"https\",\n  insecure_skip_verify = true,\n  expect_staus = 200,\n}\n",
			want:  `vipd.toml:23: unknown key "backend.check.expect_staus"; did you mean "expect_status"?`,
		},
		{
			name:  "in a dotted key",
			input: vrrpOK + nodesOK + feOK + beOK + "check.intervall = \"3s\"\n",
			want:  `vipd.toml:20: unknown key "backend.check.intervall"; did you mean "interval"?`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("vipd.toml", []byte(tt.input))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			var got []string
			for _, e := range errorsOf(t, err) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(strings.Split(tt.want, "\n"), got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		line     int
		contains string
	}{
		{"unquoted string", vrrpOK + "[[node]]\nname = lb1\n", 6, `strings need quotes`},
		{"duplicate key", "[vrrp]\nvrid = 51\nvrid = 52\n", 3, `each key and [table] may appear once`},
		{"unclosed array", "[vrrp]\nvrid = 51\nvips = [\"10.0.0.1\"\n", 3, `TOML syntax`},
		{"leading zero", "[control]\nmode = 0660\n", 2, `write mode = "0660"`},
		{"table twice", "[vrrp]\nvrid = 1\n\n[vrrp]\n", 4, `for a list of tables write [[name]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("vipd.toml", []byte(tt.input))
			errs := errorsOf(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), err)
			}
			if errs[0].Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", errs[0].Line, tt.line, errs[0])
			}
			if !strings.Contains(errs[0].Msg, tt.contains) {
				t.Errorf("message %q does not contain %q", errs[0].Msg, tt.contains)
			}
		})
	}
}
