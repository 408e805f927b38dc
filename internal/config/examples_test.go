package config

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const examplesDir = "../../examples"

// TestExamples: every examples/*.toml loads, validates and draws no
// warning, since operators copy them as they are.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"ha-pair.toml": false, "control-plane-nodes.toml": false, "single-lb.toml": false, "active-active.toml": false, "two-rack-bgp.toml": false}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("%v", err)
			}
			for _, w := range c.Warnings() {
				t.Errorf("warning: %s", w)
			}
			checkExampleShape(t, name, c)
		})
		if _, ok := want[name]; ok {
			want[name] = true
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("examples/%s is missing", name)
		}
	}
}

// checkExampleShape pins what each topology's file promises in its
// comments and in README.md.
func checkExampleShape(t *testing.T, name string, c *Config) {
	t.Helper()
	serverAddrs := map[netip.Addr]bool{}
	for _, b := range c.Backends {
		for _, s := range b.Servers {
			serverAddrs[s.Addr.Addr()] = true
		}
		if b.Check.Type == CheckNone {
			t.Errorf("backend %q has no health check", b.Name)
		}
	}
	ports := map[uint16]bool{}
	for _, f := range c.Frontends {
		ports[f.Port] = true
	}
	switch name {
	case "ha-pair.toml":
		if c.VRRP == nil || len(c.Nodes) != 2 || c.Instances[0].VIPs[0].Addr() != netip.MustParseAddr("192.168.30.30") {
			t.Fatalf("want [vrrp] with VIP 192.168.30.30 and two nodes, got %+v, %d nodes", c.VRRP, len(c.Nodes))
		}
		if c.Nodes[0].Priority <= c.Nodes[1].Priority {
			t.Errorf("lb1 should have the higher priority: %+v", c.Nodes)
		}
		if !ports[6443] || !ports[50000] {
			t.Errorf("want frontends on 6443 and 50000, got %v", ports)
		}
		if c.HTTP == nil || c.HTTP.Listen != "127.0.0.1:9600" {
			t.Errorf("want [http] listen 127.0.0.1:9600, got %+v", c.HTTP)
		}
		hasBackendsTracker := false
		for _, tr := range c.Tracks {
			hasBackendsTracker = hasBackendsTracker || tr.Type == TrackBackends
		}
		if !hasBackendsTracker {
			t.Error("want a backends tracker")
		}
	case "control-plane-nodes.toml":
		if c.VRRP == nil || len(c.Nodes) != 3 {
			t.Fatalf("want [vrrp] and three nodes")
		}
		for _, n := range c.Nodes {
			if !serverAddrs[n.Address] {
				t.Errorf("node %s (%s) is not a backend server: every control-plane node, the local one included, should be", n.Name, n.Address)
			}
		}
	case "active-active.toml":
		if len(c.Instances) != 2 || len(c.Nodes) != 2 {
			t.Fatalf("want two instances on two nodes, got %d and %d", len(c.Instances), len(c.Nodes))
		}
		lb1, lb2 := &c.Nodes[0], &c.Nodes[1]
		api, ing := c.Instance("api"), c.Instance("ingress")
		if api.PriorityOf(lb1) <= api.PriorityOf(lb2) || ing.PriorityOf(lb2) <= ing.PriorityOf(lb1) {
			t.Error("want lb1 preferring api and lb2 preferring ingress")
		}
		for _, f := range c.Frontends {
			if c.InstanceOf(f) == nil {
				t.Errorf("frontend %q follows no instance", f.Name)
			}
		}
	case "two-rack-bgp.toml":
		if c.VRRP != nil || c.BGP == nil || len(c.Nodes) != 2 || len(c.BGP.VIPs) != 1 {
			t.Fatalf("want [bgp] without [vrrp], two nodes and one VIP")
		}
		for _, n := range c.Nodes {
			cfg, _, ok := c.BGP.Speaker(n.Name, n.Address)
			if !ok || len(cfg.Peers) != 1 {
				t.Errorf("node %s: want exactly its rack's router as peer, got %+v", n.Name, cfg.Peers)
			}
		}
		for _, f := range c.Frontends {
			if _, ok := c.BGPVIPOf(f); !ok {
				t.Errorf("frontend %q does not follow the [bgp] VIP", f.Name)
			}
		}
	case "single-lb.toml":
		if c.VRRP != nil {
			t.Fatal("single LB has no [vrrp]")
		}
		for _, f := range c.Frontends {
			if !f.Address.IsValid() {
				t.Errorf("frontend %q has no address", f.Name)
			}
		}
	}
}

// TestExampleUnit: examples/vipd.service keeps the lines the daemon and
// README.md rely on.
func TestExampleUnit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(examplesDir, "vipd.service"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines[l] = true
		}
	}
	caps := "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE"
	for _, want := range []string{
		"Type=notify",
		"NotifyAccess=main",
		"WatchdogSec=10s",
		"User=vipd",
		"AmbientCapabilities=" + caps,
		"CapabilityBoundingSet=" + caps,
		"RuntimeDirectory=vipd",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"Restart=on-failure",
		"ExecStopPost=/usr/local/bin/vipd cleanup -c /etc/vipd/vipd.toml",
		"KillSignal=SIGTERM",
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"ProtectProc=invisible",
		"ExecStartPre=/usr/local/bin/vipd check -c /etc/vipd/vipd.toml",
	} {
		if !lines[want] {
			t.Errorf("vipd.service lacks %q", want)
		}
	}
	for _, key := range []string{"StartLimitBurst=", "StartLimitIntervalSec=", "TimeoutStopSec=", "RestartSec=", "ExecStart="} {
		found := false
		for l := range lines {
			found = found || strings.HasPrefix(l, key)
		}
		if !found {
			t.Errorf("vipd.service lacks %s", key)
		}
	}
	// The socket the unit's RuntimeDirectory holds is the one the
	// examples use.
	for _, f := range []string{"ha-pair.toml", "control-plane-nodes.toml", "single-lb.toml", "active-active.toml", "two-rack-bgp.toml"} {
		c, err := Load(filepath.Join(examplesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(c.Control.Socket, "/run/vipd/") {
			t.Errorf("%s: control socket %s is outside RuntimeDirectory=vipd", f, c.Control.Socket)
		}
	}
}

// TestExampleUnitExposure: systemd's own score of the unit's sandbox stays
// at or below 2.6, where it was before ProtectProc=invisible (issue 9).
func TestExampleUnitExposure(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("SKIP: needs systemd-analyze")
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", filepath.Join(examplesDir, "vipd.service")).CombinedOutput()
	if err != nil {
		t.Skipf("SKIP: systemd-analyze security --offline=true: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for vipd.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure %.1f", level)
	if level > 2.6 {
		t.Errorf("exposure %.1f, want at most 2.6", level)
	}
}
