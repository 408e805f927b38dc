package importer

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/crypto/bcrypt"

	"github.com/vipd/vipd/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// imported is a translation that passed config.Parse, the validation
// vipd check runs.
type imported struct {
	res  *Result
	cfg  *config.Config
	toml string
}

// importOK imports and requires an output that passes config.Parse with no
// error.
func importOK(t *testing.T, o Options) imported {
	t.Helper()
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.MinCost
	}
	res, err := Import(o)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	cfg, err := config.Parse("out.toml", res.TOML)
	if err != nil {
		t.Fatalf("the output does not pass vipd check:\n%v\n%s", err, numbered(res.TOML))
	}
	return imported{res: res, cfg: cfg, toml: string(res.TOML)}
}

// importErrs imports and requires errors; it returns them.
func importErrs(t *testing.T, o Options) (*Result, []*Error) {
	t.Helper()
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.MinCost
	}
	res, err := Import(o)
	if err == nil {
		t.Fatalf("Import succeeded, want errors; output:\n%s", res.TOML)
	}
	var out []*Error
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ie *Error
		if !errors.As(e, &ie) {
			t.Fatalf("error %v is not an *Error", e)
		}
		out = append(out, ie)
	}
	if res == nil || res.TOML != nil {
		t.Errorf("a failed import must write nothing")
	}
	return res, out
}

func numbered(b []byte) string {
	var s strings.Builder
	for i, l := range strings.Split(string(b), "\n") {
		fmt.Fprintf(&s, "%3d %s\n", i+1, l)
	}
	return s.String()
}

// wantError requires an error at where ("file:line") whose message has
// every substring.
func wantError(t *testing.T, errs []*Error, where string, subs ...string) {
	t.Helper()
	for _, e := range errs {
		if e.Pos.String() != where {
			continue
		}
		if containsAll(e.Msg, subs) {
			return
		}
	}
	t.Errorf("no error at %s with %q; errors:\n%s", where, subs, joinErrs(errs))
}

func joinErrs(errs []*Error) string {
	var s []string
	for _, e := range errs {
		s = append(s, "  "+e.Error())
	}
	return strings.Join(s, "\n")
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// wantNote requires a note of kind at where ("file:line", one of its
// places) whose message has every substring, written both to Notes and as
// a comment of the output.
func wantNote(t *testing.T, res *Result, kind NoteKind, where string, subs ...string) {
	t.Helper()
	for _, n := range res.Notes {
		if n.Kind != kind || !containsAll(n.Msg, subs) {
			continue
		}
		places := []Pos{n.Pos}
		places = append(places, n.Also...)
		for _, p := range places {
			if p.String() != where {
				continue
			}
			if res.TOML != nil && !strings.Contains(string(res.TOML), "# "+n.String()+"\n") {
				t.Errorf("note %q is not a comment of the output", n)
			}
			return
		}
	}
	var all []string
	for _, n := range res.Notes {
		all = append(all, "  "+n.String())
	}
	t.Errorf("no %v note at %s with %q; notes:\n%s", kind, where, subs, strings.Join(all, "\n"))
}

func (k NoteKind) String() string {
	if k == Chosen {
		return "chosen"
	}
	return "not-carried"
}

var hashRE = regexp.MustCompile(`\$2a\$[0-9]{2}\$[./A-Za-z0-9]{53}`)

// golden compares the output with testdata/golden/name.toml (bcrypt hashes
// masked: their salt is random). Each golden file was reviewed by hand;
// the tests beside it check its meaning field by field.
func golden(t *testing.T, name string, out string) {
	t.Helper()
	got := hashRE.ReplaceAllString(out, "<bcrypt hash>")
	path := filepath.Join("testdata", "golden", name+".toml")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got, eqNet); diff != "" {
		t.Errorf("output differs from %s (-want +got):\n%s", path, diff)
	}
}

func addrs(kv ...string) map[string]netip.Addr {
	m := map[string]netip.Addr{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = netip.MustParseAddr(kv[i+1])
	}
	return m
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func servers(list ...string) []config.Server {
	var out []config.Server
	for i := 0; i+1 < len(list); i += 2 {
		out = append(out, config.Server{Name: list[i], Addr: netip.MustParseAddrPort(list[i+1])})
	}
	return out
}

// TestHAPair: two LB hosts as the guides write them (examples/ha-pair.toml's
// topology): the pidof/killall haproxy track script becomes nothing, PASS
// auth becomes version 2 with auth_pass, the unicast peers become unicast,
// HAProxy's frontends bind the VIP, its long timeouts become idle_timeout.
func TestHAPair(t *testing.T) {
	dir := "testdata/hapair"
	im := importOK(t, Options{
		Keepalived: []NodeFile{{"lb1", dir + "/keepalived-lb1.conf"}, {"lb2", dir + "/keepalived-lb2.conf"}},
		HAProxy:    dir + "/haproxy.cfg",
	})
	golden(t, "hapair", im.toml)
	c := im.cfg
	if len(c.Instances) != 1 {
		t.Fatalf("instances %+v", c.Instances)
	}
	in := c.Instances[0]
	want := config.Instance{Name: "VI_1", VRID: 51, Version: 2, AuthPass: "k8sPASS", Interface: "eth0",
		VIPs: []netip.Prefix{pfx("192.168.30.30/24")}, AdvertInterval: time.Second, Preempt: true, Unicast: true, GARPRefresh: time.Minute}
	if diff := cmp.Diff(want, in, cmpInstance, eqNet); diff != "" {
		t.Errorf("instance (-want +got):\n%s", diff)
	}
	wantNodes := []config.Node{{Name: "lb1", Address: netip.MustParseAddr("192.168.30.21"), Priority: 101}, {Name: "lb2", Address: netip.MustParseAddr("192.168.30.22"), Priority: 100}}
	if diff := cmp.Diff(wantNodes, c.Nodes, eqNet); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if len(c.Tracks) != 0 {
		t.Errorf("the haproxy process checks must not become trackers: %+v", c.Tracks)
	}
	wantNote(t, im.res, Chosen, dir+"/keepalived-lb1.conf:9", "chk_haproxy", "pidof haproxy", "dropped", "vipd is the proxy")
	wantNote(t, im.res, Chosen, dir+"/keepalived-lb2.conf:9", "chk_haproxy", "killall -0 haproxy", "dropped")
	wantNote(t, im.res, NotCarried, dir+"/keepalived-lb1.conf:16", "state MASTER", "vipd has no initial state")
	wantNote(t, im.res, NotCarried, dir+"/keepalived-lb2.conf:4", "enable_script_security")
	wantNote(t, im.res, Chosen, dir+"/keepalived-lb1.conf:27", "auth_pass", "no security")

	if len(c.Frontends) != 2 {
		t.Fatalf("frontends %+v", c.Frontends)
	}
	api := c.Frontends[0]
	if api.Name != "kubernetes-api" || api.Port != 6443 || api.Backend != "kubernetes-api" || api.Address.IsValid() || api.VIP.IsValid() ||
		api.Balance != "leastconn" || api.IdleTimeout != time.Hour || api.ConnectTimeout != 5*time.Second {
		t.Errorf("frontend %+v", api)
	}
	if got := c.Binds(api); len(got) != 1 || got[0] != netip.MustParseAddrPort("192.168.30.30:6443") {
		t.Errorf("frontend binds %v, want the VIP", got)
	}
	wantNote(t, im.res, Chosen, dir+"/haproxy.cfg:18", "timeout client 1h", `idle_timeout = "1h"`)
	wantNote(t, im.res, Chosen, dir+"/haproxy.cfg:23", "every address", "VIPs only")
	be := c.Backends[0]
	if diff := cmp.Diff(servers("cp1", "192.168.30.31:6443", "cp2", "192.168.30.32:6443", "cp3", "192.168.30.33:6443"), be.Servers, eqNet); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
	if ck := be.Check; ck.Type != "https" || ck.Path != "/readyz" || ck.ExpectStatus != 200 || !ck.InsecureSkipVerify || ck.Interval != 2*time.Second || ck.Rise != 2 || ck.Fall != 3 {
		t.Errorf("api check %+v", ck)
	}
	if ck := c.Backends[1].Check; ck.Type != "tcp" {
		t.Errorf("talos check %+v", ck)
	}
	if c.Global.MaxConn != 4000 {
		t.Errorf("maxconn %d", c.Global.MaxConn)
	}
	for _, line := range []int{2, 3, 4, 5, 6, 7, 8, 9, 14, 15, 16, 20} {
		wantNoteAt(t, im.res, fmt.Sprintf("%s/haproxy.cfg:%d", dir, line))
	}
	if c.Notify == nil || c.Notify.Command[0] != "/bin/sh" {
		t.Errorf("notify %+v", c.Notify)
	}
}

// wantNoteAt requires some note at where: a directive that is not carried
// over is always named.
func wantNoteAt(t *testing.T, res *Result, where string) {
	t.Helper()
	for _, n := range res.Notes {
		for _, p := range append([]Pos{n.Pos}, n.Also...) {
			if p.String() == where {
				return
			}
		}
	}
	t.Errorf("no note names %s", where)
}

// eqNet compares netip values by ==.
var eqNet = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{})

var cmpInstance = cmp.FilterPath(func(p cmp.Path) bool {
	switch p.Last().String() {
	case ".Checksum", ".GARPRepeat", ".GARPInterval", ".GARPLowerPrioRepeat", ".GARPLowerPrioDelay", ".StartupHold", ".StartupInterval", ".Priorities", ".PinnedInterface":
		return true
	}
	return false
}, cmp.Ignore())

// TestControlPlaneNodes: keepalived + HAProxy on every control-plane node
// (examples/control-plane-nodes.toml's topology) with auth_type PASS,
// multicast (addresses from --address), a curl apiserver check that
// becomes a backends tracker, and 20s timeouts that are not carried over.
func TestControlPlaneNodes(t *testing.T) {
	dir := "testdata/cpnodes"
	o := Options{
		Keepalived: []NodeFile{{"cp1", dir + "/keepalived-cp1.conf"}, {"cp2", dir + "/keepalived-cp2.conf"}, {"cp3", dir + "/keepalived-cp3.conf"}},
		HAProxy:    dir + "/haproxy.cfg",
		Addresses:  addrs("cp1", "10.1.1.1", "cp2", "10.1.1.2", "cp3", "10.1.1.3"),
	}
	im := importOK(t, o)
	golden(t, "cpnodes", im.toml)
	c := im.cfg
	in := c.Instances[0]
	want := config.Instance{Name: "kube_api", VRID: 52, Version: 2, AuthPass: "cpVIP52", Interface: "eth0",
		VIPs: []netip.Prefix{pfx("10.1.233.1/16")}, AdvertInterval: time.Second, Preempt: true, PreemptDelay: 30 * time.Second, GARPRefresh: time.Minute}
	if diff := cmp.Diff(want, in, cmpInstance, eqNet); diff != "" {
		t.Errorf("instance (-want +got):\n%s", diff)
	}
	for i, wantPrio := range []uint8{150, 125, 100} {
		n := c.Nodes[i]
		if n.Priority != wantPrio || n.Address != o.Addresses[n.Name] {
			t.Errorf("node %+v", n)
		}
	}
	wantTracks := []config.Track{{Name: "check_apiserver", Type: "backends", Frontend: "k8s-api", MinHealthy: 1, Weight: -60}}
	if diff := cmp.Diff(wantTracks, c.Tracks, eqNet); diff != "" {
		t.Errorf("tracks (-want +got):\n%s", diff)
	}
	wantNote(t, im.res, Chosen, dir+"/keepalived-cp2.conf:8", "check_apiserver", "backends tracker", `"k8s-api"`, "-60")
	wantNote(t, im.res, NotCarried, dir+"/haproxy.cfg:10", "timeout client 20s", "would cut API watches", "idle_timeout")
	wantNote(t, im.res, NotCarried, dir+"/haproxy.cfg:11", "timeout server 20s", "would cut API watches")
	wantNote(t, im.res, NotCarried, dir+"/keepalived-cp3.conf:4", "vrrp_garp_interval", "back to back")
	if f := c.Frontends[0]; f.Port != 8443 || f.IdleTimeout != 0 || f.Balance != "roundrobin" {
		t.Errorf("frontend %+v", f)
	}
	if ck := c.Backends[0].Check; ck.Type != "https" || ck.Path != "/readyz" || !ck.InsecureSkipVerify {
		t.Errorf("check %+v", ck)
	}

	// Without --address, each node's error names the flag.
	o.Addresses = nil
	_, errs := importErrs(t, o)
	for _, n := range []string{"cp1", "cp2", "cp3"} {
		wantError(t, errs, dir+"/keepalived-"+n+".conf", "no address", "--address "+n+"=IP")
	}
}

// TestStatsPage: HAProxy alone (examples/single-lb.toml's topology) with a
// stats page behind stats auth and a source ACL, and backends mixing
// httpchk over TLS with ssl-hello-chk.
func TestStatsPage(t *testing.T) {
	dir := "testdata/stats"
	im := importOK(t, Options{HAProxy: dir + "/haproxy.cfg"})
	golden(t, "stats", im.toml)
	c := im.cfg
	if c.VRRP != nil || len(c.Nodes) != 0 {
		t.Errorf("HAProxy alone must give a single LB: %+v %+v", c.VRRP, c.Nodes)
	}
	for _, f := range c.Frontends {
		if f.Address != netip.MustParseAddr("192.168.30.30") || f.IdleTimeout != 0 || f.ConnectTimeout != 10*time.Second {
			t.Errorf("frontend %+v", f)
		}
	}
	h := c.HTTP
	if h == nil || h.Listen != ":8404" {
		t.Fatalf("http %+v", h)
	}
	if diff := cmp.Diff([]netip.Prefix{pfx("10.0.0.0/8"), pfx("192.168.30.0/24")}, h.Allow, eqNet); diff != "" {
		t.Errorf("allow (-want +got):\n%s", diff)
	}
	if len(h.Users) != 1 || h.Users[0].Name != "admin" {
		t.Fatalf("users %+v", h.Users)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(h.Users[0].PasswordHash), []byte("Sup3rS3cret")); err != nil {
		t.Errorf("the hash does not match stats auth's password: %v", err)
	}
	if strings.Contains(im.toml, "Sup3rS3cret") {
		t.Errorf("the plain password is in the output")
	}
	api, talos := c.Backends[0].Check, c.Backends[1].Check
	if api.Type != "https" || api.Method != "GET" || api.Path != "/readyz" || !api.InsecureSkipVerify || api.Interval != 5*time.Second || api.Rise != 1 || api.Fall != 2 {
		t.Errorf("api check %+v", api)
	}
	if talos.Type != "tls" || !talos.InsecureSkipVerify {
		t.Errorf("talos check %+v", talos)
	}
	wantNote(t, im.res, NotCarried, dir+"/haproxy.cfg:19", "stats uri", "/metrics")
	wantNote(t, im.res, NotCarried, dir+"/haproxy.cfg:23", "stats admin", "vipd server drain")
	wantNote(t, im.res, Chosen, dir+"/haproxy.cfg:22", "stats auth admin", "bcrypt")
	wantNote(t, im.res, NotCarried, dir+"/haproxy.cfg:39", "hdr Host")
	wantNote(t, im.res, Chosen, dir+"/haproxy.cfg:47", "ssl-hello-chk", `type = "tls"`)
	if c.Global.MaxConn != 20000 {
		t.Errorf("maxconn %d", c.Global.MaxConn)
	}
}

// TestKubeadmGuide: the keepalived.conf and haproxy.cfg of kubeadm's "High
// Availability Considerations" (testdata/kubeadm/README.md names the
// source), its placeholders filled in.
func TestKubeadmGuide(t *testing.T) {
	dir := "testdata/kubeadm"
	o := Options{
		Keepalived: []NodeFile{{"cp1", dir + "/keepalived-cp1.conf"}, {"cp2", dir + "/keepalived-cp2.conf"}, {"cp3", dir + "/keepalived-cp3.conf"}},
		HAProxy:    dir + "/haproxy.cfg",
		Addresses:  addrs("cp1", "192.168.30.31", "cp2", "192.168.30.32", "cp3", "192.168.30.33"),
	}
	im := importOK(t, o)
	golden(t, "kubeadm", im.toml)
	c := im.cfg
	in := c.Instances[0]
	want := config.Instance{Name: "VI_1", VRID: 51, Version: 2, AuthPass: "42", Interface: "eth0",
		VIPs: []netip.Prefix{pfx("192.168.30.30/32")}, AdvertInterval: time.Second, Preempt: true, GARPRefresh: time.Minute}
	if diff := cmp.Diff(want, in, cmpInstance, eqNet); diff != "" {
		t.Errorf("instance (-want +got):\n%s", diff)
	}
	if p := []uint8{c.Nodes[0].Priority, c.Nodes[1].Priority, c.Nodes[2].Priority}; p[0] != 101 || p[1] != 100 || p[2] != 100 {
		t.Errorf("priorities %v", p)
	}
	if len(c.Tracks) != 1 || c.Tracks[0].Type != "backends" || c.Tracks[0].Frontend != "apiserver" || c.Tracks[0].Weight != -2 {
		t.Errorf("tracks %+v", c.Tracks)
	}
	ck := c.Backends[0].Check
	if ck.Type != "https" || ck.Path != "/healthz" || ck.ExpectStatus != 200 || !ck.InsecureSkipVerify {
		t.Errorf("check %+v", ck)
	}
	wantNote(t, im.res, Chosen, dir+"/haproxy.cfg:47", "both option httpchk and option ssl-hello-chk", "ran only the last", "stricter")
	wantNote(t, im.res, NotCarried, dir+"/haproxy.cfg:26", "timeout client 20s", "would cut API watches")
	wantNote(t, im.res, NotCarried, dir+"/haproxy.cfg:15", "mode http")
	wantNote(t, im.res, Chosen, dir+"/haproxy.cfg:29", "timeout check 10s")
	if f := c.Frontends[0]; f.Port != 8443 || f.Balance != "roundrobin" || f.Backend != "apiserverbackend" {
		t.Errorf("frontend %+v", f)
	}
	// The three nodes' identical notes are one note with three places.
	for _, n := range im.res.Notes {
		if strings.Contains(n.Msg, "router_id") && len(n.Also) != 2 {
			t.Errorf("router_id note %q: want the three files in one note", n)
		}
	}
}

// TestInputsAreReal: the topology inputs are files the real tools accept
// (Debian's haproxy -c, keepalived -t where its scripts exist on any
// host), so the tests translate what operators run, not an invention.
func TestInputsAreReal(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		haproxy = "/usr/sbin/haproxy"
	}
	if _, err := os.Stat(haproxy); err != nil {
		t.Skip("SKIP: no haproxy (.ci/deps installs it)")
	}
	for _, f := range []string{"hapair/haproxy.cfg", "cpnodes/haproxy.cfg", "stats/haproxy.cfg", "kubeadm/haproxy.cfg", "hand/active.cfg"} {
		if out, err := exec.Command(haproxy, "-c", "-q", "-f", filepath.Join("testdata", f)).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c %s: %v\n%s", f, err, out)
		}
	}
	keepalived := "/usr/sbin/keepalived"
	if _, err := os.Stat(keepalived); err != nil {
		t.Skip("SKIP: no keepalived (.ci/deps installs it)")
	}
	for _, f := range []string{"hapair/keepalived-lb1.conf", "hapair/keepalived-lb2.conf"} {
		if out, err := exec.Command(keepalived, "-t", "-l", "-f", filepath.Join("testdata", f)).CombinedOutput(); err != nil {
			t.Errorf("keepalived -t %s: %v\n%s", f, err, out)
		}
	}
}
