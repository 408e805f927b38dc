package importer

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/config"
)

const hand = "testdata/hand/"

func one(name, path string) []NodeFile { return []NodeFile{{name, path}} }

// TestGlobalDefs: global_defs settings vipd has are carried over
// (vrrp_version, garp repeat/interval/refresh/lower-prio), the others are
// named with a reason, even unknown ones; with VRRPv3 authentication is
// ignored as keepalived ignores it.
func TestGlobalDefs(t *testing.T) {
	f := hand + "global.conf"
	im := importOK(t, Options{Keepalived: one("lb1", f)})
	in := im.cfg.Instances[0]
	if in.Version != 3 || in.AuthPass != "" || in.AdvertInterval != 200*time.Millisecond {
		t.Errorf("version %d auth %q interval %s", in.Version, in.AuthPass, in.AdvertInterval)
	}
	if in.GARPRepeat != 3 || in.GARPInterval != 50*time.Millisecond || in.GARPRefresh != 30*time.Second ||
		in.GARPLowerPrioRepeat != 2 || in.GARPLowerPrioDelay != 10*time.Second {
		t.Errorf("garp %d %s %s %d %s", in.GARPRepeat, in.GARPInterval, in.GARPRefresh, in.GARPLowerPrioRepeat, in.GARPLowerPrioDelay)
	}
	if in.Interface != "ens3" || im.cfg.Nodes[0].Priority != 200 || im.cfg.Nodes[0].Address != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("interface %q node %+v", in.Interface, im.cfg.Nodes[0])
	}
	for line, sub := range map[int]string{
		3: "router_id", 4: "notification_email", 7: "notification_email_from", 8: "smtp_server", 9: "smtp_connect_timeout",
		10: "enable_script_security", 11: "script_user", 16: "vrrp_garp_master_delay", 19: "the default group",
		20: "vrrp_strict", 21: "vrrp_iptables", 22: "max_auto_priority", 23: "frobnicate_widgets",
		33: "ignores it with VRRPv3",
	} {
		wantNote(t, im.res, NotCarried, fmt.Sprintf("%s:%d", f, line), sub)
	}
}

// TestInstanceDirectives: every vrrp_instance directive of instance.conf.
func TestInstanceDirectives(t *testing.T) {
	f := hand + "instance.conf"
	im := importOK(t, Options{Keepalived: one("lb1", f)})
	c := im.cfg
	in := c.Instances[0]
	want := config.Instance{Name: "VI_ALL", VRID: 70, Version: 2, AuthPass: "longpass", Interface: "eth0",
		VIPs:           []netip.Prefix{pfx("192.168.40.100/24"), pfx("192.168.40.101/32"), pfx("192.168.40.102/24")},
		AdvertInterval: 2 * time.Second, Preempt: false, GARPRefresh: 45 * time.Second}
	if diff := cmp.Diff(want, in, cmpInstance, eqNet); diff != "" {
		t.Errorf("instance (-want +got):\n%s", diff)
	}
	if in.GARPRepeat != 4 || in.GARPLowerPrioRepeat != 3 || in.GARPLowerPrioDelay != 6*time.Second {
		t.Errorf("garp %d %d %s", in.GARPRepeat, in.GARPLowerPrioRepeat, in.GARPLowerPrioDelay)
	}
	// mcast_src_ip gives the address when there is no unicast_src_ip.
	if n := c.Nodes[0]; n.Address != netip.MustParseAddr("192.168.40.11") || n.Priority != 120 {
		t.Errorf("node %+v", n)
	}
	wantTracks := []config.Track{
		{Name: "link-eth1", Type: "interface", Interface: "eth1", Weight: -30},
		{Name: "link-bond0", Type: "interface", Interface: "bond0", Weight: 0},
		{Name: "chk_custom", Type: "script", Command: []string{"/usr/local/bin/check-uplink", "--quick"}, Weight: -40,
			Interval: 5 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 1},
	}
	if diff := cmp.Diff(wantTracks, c.Tracks, eqNet); diff != "" {
		t.Errorf("tracks (-want +got):\n%s", diff)
	}
	for line, sub := range map[int]string{
		8: "state BACKUP", 14: "preempt_delay", 21: "brd 192.168.40.255", 29: "the VRRP interface itself", 39: "notify_stop",
		42: "garp_master_delay", 45: "dont_track_primary", 46: "use_vmac", 47: "accept", 48: "higher_prio_send_advert",
		49: "smtp_alert", 50: "unknown_instance_thing",
	} {
		wantNote(t, im.res, NotCarried, fmt.Sprintf("%s:%d", f, line), sub)
	}
	wantNote(t, im.res, NotCarried, f+":21", "label eth0:vip")
	wantNote(t, im.res, NotCarried, f+":21", "scope global")
	wantNote(t, im.res, Chosen, f+":18", "12 characters", `"longpass"`)
	wantNote(t, im.res, Chosen, f+":25", "virtual_ipaddress_excluded", "added to vips")
	wantNote(t, im.res, Chosen, f+":2", "chk_custom", "keepalived's defaults")
}

// TestNotifyScript runs the [notify] command the import writes, the way the
// daemon runs it (instance, state and priority appended), and checks that
// each keepalived script runs for its state only, and that notify gets
// keepalived's arguments.
func TestNotifyScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("SKIP: no sh")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	rec := filepath.Join(dir, "rec")
	os.WriteFile(rec, []byte("#!/bin/sh\necho \"$@\" >> "+log+"\n"), 0o755)
	conf := filepath.Join(dir, "k.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`vrrp_instance VI_N {
    interface eth0
    virtual_router_id 9
    unicast_src_ip 10.0.0.1
    virtual_ipaddress {
        10.0.0.9
    }
    notify_master "%[1]s master 'two words'"
    notify_fault %[1]s
    notify %[1]s
}
`, rec)), 0o644)
	im := importOK(t, Options{Keepalived: one("lb1", conf)})
	cmd := im.cfg.Notify.Command
	for _, st := range []struct{ state, prio string }{{"MASTER", "100"}, {"BACKUP", "100"}, {"FAULT", "0"}} {
		argv := append(append([]string(nil), cmd...), "VI_N", st.state, st.prio)
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	got, _ := os.ReadFile(log)
	want := "master two words\nINSTANCE VI_N MASTER 100\nINSTANCE VI_N BACKUP 100\n\nINSTANCE VI_N FAULT 0\n"
	if string(got) != want {
		t.Errorf("calls:\n%s\nwant:\n%s", got, want)
	}
}

// TestActiveActive: two instances (lb1 prefers the API VIP, lb2 the
// ingress VIP) become [[instance]] tables with per-node priorities; the
// sync group is named in the notes; frontends bind their VIP.
func TestActiveActive(t *testing.T) {
	o := Options{
		Keepalived: []NodeFile{{"lb1", hand + "active-lb1.conf"}, {"lb2", hand + "active-lb2.conf"}},
		HAProxy:    hand + "active.cfg",
	}
	im := importOK(t, o)
	c := im.cfg
	if len(c.Instances) != 2 {
		t.Fatalf("instances %+v", c.Instances)
	}
	lb1, lb2 := &c.Nodes[0], &c.Nodes[1]
	api, ing := &c.Instances[0], &c.Instances[1]
	if api.Name != "api" || api.VRID != 51 || api.AuthPass != "apiPASS" || !api.Unicast || api.Interface != "eth0" {
		t.Errorf("api %+v", api)
	}
	if ing.Name != "ingress" || ing.VRID != 52 || ing.AuthPass != "ingPASS" || !ing.Unicast {
		t.Errorf("ingress %+v", ing)
	}
	if api.PriorityOf(lb1) != 150 || api.PriorityOf(lb2) != 100 || ing.PriorityOf(lb1) != 100 || ing.PriorityOf(lb2) != 150 {
		t.Errorf("priorities api %d/%d ingress %d/%d", api.PriorityOf(lb1), api.PriorityOf(lb2), ing.PriorityOf(lb1), ing.PriorityOf(lb2))
	}
	if len(c.Tracks) != 1 || !c.Tracks[0].Applies("ingress") || c.Tracks[0].Applies("api") {
		t.Errorf("tracks %+v", c.Tracks)
	}
	wantNote(t, im.res, NotCarried, hand+"active-lb1.conf:2", "vrrp_sync_group VG_ALL (api, ingress)", "no sync groups")
	wantNote(t, im.res, NotCarried, hand+"active-lb2.conf:7", "vrrp_sync_group VG_ALL: notify_master")
	for i, want := range []string{"192.168.30.30", "192.168.30.40", "192.168.30.30"} {
		f := c.Frontends[i]
		if f.VIP != netip.MustParseAddr(want) || c.InstanceOf(f) == nil {
			t.Errorf("frontend %s vip %s, want %s", f.Name, f.VIP, want)
		}
	}
	wantNote(t, im.res, Chosen, hand+"active.cfg:14", "every address", "chose 192.168.30.30 of instance api")
	if ck := c.Backends[1].Check; ck.Port != 10254 || c.Frontends[1].Balance != "source" {
		t.Errorf("ingress check %+v", ck)
	}
	// One [notify] dispatches on instance and state.
	script := c.Notify.Command[2]
	for _, sub := range []string{`case "$1/$2" in ingress/MASTER) /etc/keepalived/ingress-up.sh ;;`, `case "$1" in api) /etc/keepalived/notify.sh INSTANCE api "$2" "$3" ;; esac`} {
		if !strings.Contains(script, sub) {
			t.Errorf("notify script %q lacks %q", script, sub)
		}
	}
}

// TestInclude: include with a glob relative to the including file, and an
// include inside a block of an included file.
func TestInclude(t *testing.T) {
	// Alone, the peer read from the nested include is nobody's address;
	// the error names the included file and line.
	_, errs := importErrs(t, Options{Keepalived: one("lb1", hand+"include.conf")})
	wantError(t, errs, hand+"conf.d/nested/peers.inc:2", "unicast_peer 172.16.0.2", "no node given has this address")

	lb2 := filepath.Join(t.TempDir(), "lb2.conf")
	os.WriteFile(lb2, []byte("vrrp_instance VI_INC {\n interface eth0\n virtual_router_id 80\n priority 100\n unicast_src_ip 172.16.0.2\n unicast_peer {\n 172.16.0.1\n }\n virtual_ipaddress {\n 172.16.0.100\n }\n}\n"), 0o644)
	im := importOK(t, Options{Keepalived: []NodeFile{{"lb1", hand + "include.conf"}, {"lb2", lb2}}})
	c := im.cfg
	if c.Nodes[0].Address != netip.MustParseAddr("172.16.0.1") || c.Nodes[0].Priority != 110 || !c.Instances[0].Unicast || c.Instances[0].VRID != 80 || c.Instances[0].Version != 2 {
		t.Fatalf("%+v %+v", c.Nodes, c.Instances)
	}
	// chk_included is defined but tracked by nobody: no tracker.
	if len(c.Tracks) != 0 {
		t.Errorf("tracks %+v", c.Tracks)
	}
}

// TestIncludeLimits: a cycle, a runaway depth, a missing file, too many
// matches.
func TestIncludeLimits(t *testing.T) {
	_, errs := importErrs(t, Options{Keepalived: one("lb1", hand+"cycle-a.conf")})
	wantError(t, errs, hand+"cycle-b.conf:4", "include cycle", "cycle-a.conf -> "+hand+"cycle-b.conf -> "+hand+"cycle-a.conf")

	fs := mapFS{}
	for i := 0; i < 20; i++ {
		fs[fmt.Sprintf("/k/%d.conf", i)] = []byte(fmt.Sprintf("include %d.conf\n", i+1))
	}
	_, errs = importErrs(t, Options{Keepalived: one("lb1", "/k/0.conf"), fs: fs})
	wantError(t, errs, "/k/8.conf:1", "deeper than 8")

	fs = mapFS{"/k/a.conf": []byte("global_defs {\n}\ninclude missing/*.conf\n")}
	_, errs = importErrs(t, Options{Keepalived: one("lb1", "/k/a.conf"), fs: fs})
	wantError(t, errs, "/k/a.conf:3", "no file matches", "relative to /k")

	fs = mapFS{"/k/a.conf": []byte("include many/*.conf\n")}
	for i := 0; i < maxGlobMatches+1; i++ {
		fs[fmt.Sprintf("/k/many/%03d.conf", i)] = []byte("\n")
	}
	_, errs = importErrs(t, Options{Keepalived: one("lb1", "/k/a.conf"), fs: fs})
	wantError(t, errs, "/k/a.conf:1", "matches 65 files")

	// A file that includes itself through a glob.
	fs = mapFS{"/k/a.conf": []byte("include *.conf\n")}
	_, errs = importErrs(t, Options{Keepalived: one("lb1", "/k/a.conf"), fs: fs})
	wantError(t, errs, "/k/a.conf:1", "include cycle")
}

// TestRefusals: what cannot be translated is an error with file:line and
// the fix, and nothing is written.
func TestRefusals(t *testing.T) {
	_, errs := importErrs(t, Options{Keepalived: one("lb1", hand+"lvs.conf")})
	wantError(t, errs, hand+"lvs.conf:10", "virtual_server 10.0.0.100 6443", "LVS", "import the haproxy.cfg")
	if len(errs) != 1 {
		t.Errorf("the LVS block's inner lines must not add errors:\n%s", joinErrs(errs))
	}

	_, errs = importErrs(t, Options{Keepalived: one("lb1", hand+"ah.conf")})
	wantError(t, errs, hand+"ah.conf:6", "auth_type AH", "switch every keepalived node to auth_type PASS")

	f := hand + "refuse.conf"
	_, errs = importErrs(t, Options{Keepalived: one("lb1", f)})
	wantError(t, errs, f+":2", "vrrp_mcast_group4 224.0.0.99", "unicast")
	wantError(t, errs, f+":7", "weight 10 reverse", "no reverse weights")
	wantError(t, errs, f+":11", "state ${STATE}", "unfilled template placeholder")
	wantError(t, errs, f+":13", "virtual_router_id ${ROUTER_ID}", "unfilled template placeholder")
	wantError(t, errs, f+":16", "auth_hmac")
	wantError(t, errs, f+":20", "dev eth1", "adverts go out on eth0")
	wantError(t, errs, f+":22", "virtual_routes", "network configuration")
	for _, e := range errs {
		if strings.Contains(e.Msg, "no virtual_router_id") {
			t.Errorf("a bad virtual_router_id must not also be reported missing: %v", e)
		}
	}
}

// TestConditionalLines: "@node" lines apply to their node only, "@^node"
// to the others, and $NAME parameters expand.
func TestConditionalLines(t *testing.T) {
	f := hand + "conditional.conf"
	im := importOK(t, Options{Keepalived: []NodeFile{{"lb1", f}, {"lb2", f}}})
	c := im.cfg
	want := []config.Node{{Name: "lb1", Address: netip.MustParseAddr("192.168.50.11"), Priority: 150}, {Name: "lb2", Address: netip.MustParseAddr("192.168.50.12"), Priority: 90}}
	if diff := cmp.Diff(want, c.Nodes, eqNet); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if in := c.Instances[0]; in.Interface != "eth2" || in.VIPs[0] != pfx("192.168.50.100/24") || !in.Unicast {
		t.Errorf("instance %+v", in)
	}
}

// TestNodesDisagree: nodes whose files cannot be one vipd instance.
func TestNodesDisagree(t *testing.T) {
	a, b := hand+"mismatch-lb1.conf", hand+"mismatch-lb2.conf"
	_, errs := importErrs(t, Options{Keepalived: []NodeFile{{"lb1", a}, {"lb2", b}}})
	wantError(t, errs, a+":9", "unicast_peer 10.0.0.9", "--keepalived NAME=FILE")
	wantError(t, errs, a+":20", "VI_ONLY_HERE", "not in lb2's")
	wantError(t, errs, b+":1", "VIPs on lb2", "differ")
	wantError(t, errs, b+":1", "advert_int 3s on lb2 but 1s on lb1")
	wantError(t, errs, b+":1", "authentication on lb2 differs")
}

// TestScripts: haproxy process checks in their usual spellings become
// nothing; an apiserver check without haproxy.cfg stays a script; other
// scripts keep interval, timeout, rise, fall and weight; track_process
// haproxy becomes nothing, another process is named.
func TestScripts(t *testing.T) {
	f := hand + "scripts.conf"
	_, errs := importErrs(t, Options{Keepalived: one("lb1", f)})
	wantError(t, errs, f+":54", "track_script chk_missing", "no vrrp_script chk_missing")

	// Without the missing reference the file translates.
	data, _ := os.ReadFile(f)
	dir := t.TempDir()
	g := filepath.Join(dir, "scripts.conf")
	os.WriteFile(g, []byte(strings.Replace(string(data), "        chk_missing\n", "\n", 1)), 0o644)
	im := importOK(t, Options{Keepalived: one("lb1", g)})
	want := []config.Track{
		{Name: "chk_api", Type: "script", Command: []string{"/etc/keepalived/check_apiserver.sh"}, Weight: -2, Interval: 3 * time.Second, Timeout: 3 * time.Second, Rise: 2, Fall: 10},
		{Name: "chk_custom", Type: "script", Command: []string{"/usr/local/bin/check", "two words", "plain"}, Weight: -20, Interval: 4 * time.Second, Timeout: 3 * time.Second, Rise: 3, Fall: 2},
	}
	if diff := cmp.Diff(want, im.cfg.Tracks, eqNet); diff != "" {
		t.Errorf("tracks (-want +got):\n%s", diff)
	}
	for _, line := range []int{1, 4, 8, 11, 31} {
		wantNote(t, im.res, Chosen, fmt.Sprintf("%s:%d", g, line), "dropped", "vipd is the proxy")
	}
	wantNote(t, im.res, Chosen, g+":14", "chk_api", "stays a script tracker")
	wantNote(t, im.res, NotCarried, g+":28", "user nobody")
	wantNote(t, im.res, NotCarried, g+":29", "init_fail")
	wantNote(t, im.res, NotCarried, g+":36", "track_nginx", `"pidof", "nginx"`)
}

func TestHAProxyCheckRecognition(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   bool
	}{
		{"pidof haproxy", true},
		{"/usr/bin/pidof -s haproxy", true},
		{"killall -0 haproxy", true},
		{"/usr/bin/killall -0 haproxy", true},
		{"pgrep -x haproxy", true},
		{"systemctl is-active --quiet haproxy", true},
		{"/bin/sh -c 'pidof haproxy'", true},
		{"pidof haproxy && curl -k https://127.0.0.1:6443/healthz", false},
		{"pidof nginx", false},
		{"killall -0 haproxy-ingress", false},
	} {
		argv, _ := splitArgv(tc.script)
		if got := isHAProxyCheck(argv); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.script, got, tc.want)
		}
	}
}

func TestDecommentAndTokenize(t *testing.T) {
	for _, tc := range []struct {
		line  string
		words []string
		cont  bool
	}{
		{`  priority 100  # comment`, []string{"priority", "100"}, false},
		{`priority 100 ! comment`, []string{"priority", "100"}, false},
		{`script "/bin/check # not a comment"`, []string{"script", "/bin/check # not a comment"}, false},
		{`auth_pass a\#b`, []string{"auth_pass", "a#b"}, false},
		{`virtual_ipaddress { 10.0.0.1 }`, []string{"virtual_ipaddress", "{", "10.0.0.1", "}"}, false},
		{`vrrp_instance VI{`, []string{"vrrp_instance", "VI", "{"}, false},
		{`state ${STATE}`, []string{"state", "${STATE}"}, false},
		{`state {{ .State }}`, []string{"state", "{{ .State }}"}, false},
		{`track_script \`, []string{"track_script"}, true},
	} {
		text, cont := decomment(tc.line)
		words, _, ok := tokenize(text)
		if !ok || cont != tc.cont || !cmp.Equal(words, tc.words) {
			t.Errorf("%q: words %q cont %v ok %v, want %q cont %v", tc.line, words, cont, ok, tc.words, tc.cont)
		}
	}
	if _, _, ok := tokenize(`script "unterminated`); ok {
		t.Errorf("an unterminated quote must fail")
	}
}

// TestBlocks: braces on the next line, blocks on one line, missing and
// stray braces, and the nesting limit.
func TestBlocks(t *testing.T) {
	fs := mapFS{"/k.conf": []byte("vrrp_instance VI_1\n{\n  interface eth0\n  virtual_router_id 5\n  unicast_src_ip 10.0.0.1\n  virtual_ipaddress { 10.0.0.5/24 }\n}\n")}
	im := importOK(t, Options{Keepalived: one("lb1", "/k.conf"), fs: fs})
	if in := im.cfg.Instances[0]; in.VRID != 5 || in.VIPs[0] != pfx("10.0.0.5/24") {
		t.Errorf("instance %+v", in)
	}

	fs = mapFS{"/k.conf": []byte("vrrp_instance VI_1 {\n  interface eth0\n}\n}\nglobal_defs {\n")}
	_, errs := importErrs(t, Options{Keepalived: one("lb1", "/k.conf"), fs: fs})
	wantError(t, errs, "/k.conf:4", "} without a matching {")
	wantError(t, errs, "/k.conf:5", "never closed")

	fs = mapFS{"/k.conf": []byte(strings.Repeat("a {\n", 40) + strings.Repeat("}\n", 40))}
	_, errs = importErrs(t, Options{Keepalived: one("lb1", "/k.conf"), fs: fs})
	wantError(t, errs, fmt.Sprintf("/k.conf:%d", maxNesting), "deeper than 16 levels")
}

// TestInterfacesPerNode: a node whose link has another name gets a
// [[node]] interface; with instances on different links (each [[instance]]
// names its own, which a [[node]] interface does not override) that cannot
// be expressed and is an error.
func TestInterfacesPerNode(t *testing.T) {
	dir := t.TempDir()
	write := func(name, ifA, ifB string, src string) string {
		p := filepath.Join(dir, name)
		body := fmt.Sprintf("vrrp_instance A {\n interface %s\n virtual_router_id 1\n unicast_src_ip %s\n virtual_ipaddress {\n 10.0.0.100\n }\n}\n", ifA, src)
		if ifB != "" {
			body += fmt.Sprintf("vrrp_instance B {\n interface %s\n virtual_router_id 2\n unicast_src_ip %s\n virtual_ipaddress {\n 10.0.1.100\n }\n}\n", ifB, src)
		}
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	a, b := write("a.conf", "eth0", "", "10.0.0.1"), write("b.conf", "ens3", "", "10.0.0.2")
	im := importOK(t, Options{Keepalived: []NodeFile{{"lb1", a}, {"lb2", b}}})
	c := im.cfg
	if got := []string{c.Instances[0].InterfaceFor(&c.Nodes[0]), c.Instances[0].InterfaceFor(&c.Nodes[1])}; got[0] != "eth0" || got[1] != "ens3" {
		t.Errorf("interfaces %v", got)
	}
	wantNote(t, im.res, Chosen, b+":2", `[[node]] lb2 interface = "ens3"`)

	// Two instances sharing eth0 on lb1 and ens3 on lb2: [vrrp] holds the
	// interface, the node overrides it for both.
	a, b = write("a2.conf", "eth0", "eth0", "10.0.0.1"), write("b2.conf", "ens3", "ens3", "10.0.0.2")
	im = importOK(t, Options{Keepalived: []NodeFile{{"lb1", a}, {"lb2", b}}})
	c = im.cfg
	for i := range c.Instances {
		if got := c.Instances[i].InterfaceFor(&c.Nodes[1]); got != "ens3" {
			t.Errorf("instance %s on lb2: %q", c.Instances[i].Name, got)
		}
	}

	// Instances on two links, and lb2 names one of them differently.
	a, b = write("a3.conf", "eth0", "eth1", "10.0.0.1"), write("b3.conf", "ens3", "eth1", "10.0.0.2")
	_, errs := importErrs(t, Options{Keepalived: []NodeFile{{"lb1", a}, {"lb2", b}}})
	wantError(t, errs, b+":2", "node lb2 uses interface ens3", "same interface names on every node")
}

// TestPreemptAndDefaults: keepalived's defaults and its rules for
// nopreempt and preempt_delay, as keepalived applies them.
func TestPreemptAndDefaults(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("vrrp_instance V {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n 10.0.0.100\n }\n"+body+"}\n"), 0o644)
		return p
	}
	ad := addrs("lb1", "10.0.0.1", "lb2", "10.0.0.2")

	// The higher priority node would preempt, so its nopreempt decides.
	a := write("a.conf", " state BACKUP\n priority 150\n nopreempt\n")
	b := write("b.conf", " state BACKUP\n priority 100\n preempt_delay 5\n")
	im := importOK(t, Options{Keepalived: []NodeFile{{"lb1", a}, {"lb2", b}}, Addresses: ad})
	if in := im.cfg.Instances[0]; in.Preempt || in.PreemptDelay != 0 {
		t.Errorf("preempt %v delay %s", in.Preempt, in.PreemptDelay)
	}
	wantNote(t, im.res, Chosen, b+":1", "preemption differs between nodes", "took lb1's")

	// With state MASTER keepalived ignores nopreempt and preempt_delay;
	// without a priority, state MASTER means 255 and BACKUP 100.
	a = write("c.conf", " state MASTER\n nopreempt\n preempt_delay 9\n")
	b = write("d.conf", " state BACKUP\n")
	im = importOK(t, Options{Keepalived: []NodeFile{{"lb1", a}, {"lb2", b}}, Addresses: ad})
	if in := im.cfg.Instances[0]; !in.Preempt || in.PreemptDelay != 0 {
		t.Errorf("preempt %v delay %s", in.Preempt, in.PreemptDelay)
	}
	if p := []uint8{im.cfg.Nodes[0].Priority, im.cfg.Nodes[1].Priority}; p[0] != 255 || p[1] != 100 {
		t.Errorf("priorities %v", p)
	}
	wantNote(t, im.res, NotCarried, a+":8", "nopreempt", "state MASTER")
	wantNote(t, im.res, NotCarried, a+":9", "preempt_delay", "state MASTER")

	// VRRPv2 carries whole seconds: keepalived rounds, and so does the
	// import; VRRPv3 takes centiseconds.
	a = write("e.conf", " advert_int 1.6\n")
	im = importOK(t, Options{Keepalived: one("lb1", a), Addresses: addrs("lb1", "10.0.0.1")})
	if iv := im.cfg.Instances[0].AdvertInterval; iv != 2*time.Second {
		t.Errorf("v2 interval %s", iv)
	}
	wantNote(t, im.res, Chosen, a+":7", "keepalived rounds it to 2s")
	a = write("f.conf", " version 3\n advert_int 0.05\n")
	im = importOK(t, Options{Keepalived: one("lb1", a), Addresses: addrs("lb1", "10.0.0.1")})
	if in := im.cfg.Instances[0]; in.AdvertInterval != 50*time.Millisecond || in.Version != 3 {
		t.Errorf("v3 interval %s version %d", in.AdvertInterval, in.Version)
	}
}
