package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/control"
)

// The two setups of the migration test: keepalived.conf and haproxy.cfg as
// the guides write them, the import, and starting and restarting the
// nodes.

// migTopology is one of the two setups the runbook covers.
type migTopology struct {
	name string
	// nodes are the VRRP nodes, MASTER first, then the backups in
	// descending priority.
	nodes []string
	// onCPs: keepalived + HAProxy run on the control-plane nodes
	// themselves (the API server holds *:6443, so HAProxy listens on
	// 8443); otherwise on two LB hosts beside three control planes.
	onCPs bool
	// port is the frontend the client uses; banner: it answers with the
	// control plane's name first (Talos apid's stand-in), so a connect
	// counts only when it reached a backend, and streams can use it.
	port   uint16
	banner bool
	prios  []int
}

var (
	lbPair = migTopology{name: "two LB hosts", nodes: []string{"lb1", "lb2"}, prios: []int{101, 100}, port: 50000, banner: true}
	onCPs  = migTopology{name: "on every control-plane node", nodes: []string{"cp1", "cp2", "cp3"}, prios: []int{150, 125, 100}, onCPs: true, port: 8443}
)

// migLab is the LB nodes, three control planes and a client.
type migLab struct {
	*lab.Lab
	top     migTopology
	hosts   map[string]*lab.Host
	cps     []*lab.Host
	client  *lab.Host
	vip     netip.Addr
	unicast bool

	watch   *lab.VIPWatch
	pr      *lab.Prober
	streams []*lab.Holder
	steps   []*migStep

	ka   map[string]*lab.Keepalived
	ha   map[string]*lab.Proc
	vipd map[string]*lab.Node
}

func newMigLab(t *testing.T, top migTopology, unicast bool) *migLab {
	t.Helper()
	lab.RequireKeepalived(t)
	l := lab.NewLab(t)
	m := &migLab{Lab: l, top: top, unicast: unicast, vip: l.Addr(30), hosts: map[string]*lab.Host{},
		client: l.AddHost("client", 50),
		ka:     map[string]*lab.Keepalived{}, ha: map[string]*lab.Proc{}, vipd: map[string]*lab.Node{}}
	for i := 1; i <= 3; i++ {
		m.cps = append(m.cps, l.AddHost(fmt.Sprintf("cp%d", i), 30+i))
	}
	if top.onCPs {
		for _, h := range m.cps {
			m.hosts[h.Name] = h
		}
	} else {
		for i, name := range top.nodes {
			m.hosts[name] = l.AddHost(name, 21+i)
		}
	}
	pki := lab.NewPKI(t, m.vip)
	for _, h := range m.cps {
		lab.StartControlPlane(t, h, pki)
	}
	return m
}

func (m *migLab) lbs() []*lab.Host {
	var out []*lab.Host
	for _, n := range m.top.nodes {
		out = append(out, m.hosts[n])
	}
	return out
}

func (m *migLab) master() string { return m.top.nodes[0] }

func (m *migLab) successor() string { return m.top.nodes[1] }

// priority is the node's keepalived priority: 101 and 100 on two LB
// hosts, 150, 125 and 100 on the control-plane nodes.
func (m *migLab) priority(name string) int {
	for i, n := range m.top.nodes {
		if n == name {
			return m.top.prios[i]
		}
	}
	return 0
}

func (m *migLab) target() netip.AddrPort { return netip.AddrPortFrom(m.vip, m.top.port) }

// keepalivedConf is the node's keepalived.conf as the common guides write
// it: VRRPv2 (keepalived's default), PASS authentication, 1 s adverts, the
// first node MASTER, the others BACKUP. On two LB hosts
// the track script checks that HAProxy runs, with a positive weight; on the
// control-plane nodes it is the API check through the local HAProxy with
// a negative one (kubeadm's HA guide).
func (m *migLab) keepalivedConf(name string) string {
	state, prio := "BACKUP", m.priority(name)
	if name == m.master() {
		state = "MASTER"
	}
	// `killall -0 haproxy`, as keepalived's own docs write it. The other
	// favourite, `pidof haproxy`, never succeeds under Debian 12's
	// keepalived 2.2.7 (pidof is a symlink to sysvinit's killall5; run by
	// keepalived it exits 1 while HAProxy runs: "VRRP_Script(chk_lb)
	// failed (exited with status 1)"), so its weight never counts.
	// killall sees every haproxy on this machine, not only this node's:
	// it succeeds on every node while the test runs, as on real hosts.
	script := `    script "/usr/bin/killall -0 haproxy"
    interval 2
    weight 2`
	if m.top.onCPs {
		script = fmt.Sprintf(`    script "/usr/bin/curl -sfk --max-time 2 https://127.0.0.1:%d/readyz"
    interval 3
    timeout 2
    fall 3
    rise 2
    weight -60`, m.top.port)
	}
	var uni string
	if m.unicast {
		uni = fmt.Sprintf("    unicast_src_ip %s\n    unicast_peer {\n", m.hosts[name].Addr)
		for _, h := range m.lbs() {
			if h.Name != name {
				uni += fmt.Sprintf("        %s\n", h.Addr)
			}
		}
		uni += "    }\n"
	}
	return fmt.Sprintf(`! Configuration File for keepalived on %[1]s
global_defs {
   router_id %[1]s
   enable_script_security
   script_user root
}

vrrp_script chk_lb {
%[8]s
}

vrrp_instance VI_1 {
    state %[2]s
    interface eth0
    virtual_router_id %[3]d
    priority %[4]d
    advert_int 1
%[5]s    authentication {
        auth_type PASS
        auth_pass %[6]s
    }
    virtual_ipaddress {
        %[7]s/24 dev eth0
    }
    track_script {
        chk_lb
    }
}
`, name, state, migVRID, prio, uni, migPass, m.vip, script)
}

// haproxyConf is the haproxy.cfg every node shares: mode tcp, the API
// with an HTTPS /readyz check (on 6443, or 8443 on the control-plane
// nodes), and on the LB hosts Talos apid with a TCP check.
func (m *migLab) haproxyConf() string {
	var api, talos strings.Builder
	for _, h := range m.cps {
		fmt.Fprintf(&api, "    server %s %s:6443 check check-ssl verify none\n", h.Name, h.Addr)
		fmt.Fprintf(&talos, "    server %s %s:50000 check\n", h.Name, h.Addr)
	}
	apiPort := 6443
	if m.top.onCPs {
		apiPort = int(m.top.port)
	}
	cfg := fmt.Sprintf(`global
    maxconn 4000

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend kubernetes-api
    bind *:%d
    default_backend kubernetes-api

backend kubernetes-api
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 2s fall 3 rise 2
%s`, apiPort, api.String())
	if !m.top.onCPs {
		cfg += fmt.Sprintf(`
frontend talos-api
    bind *:50000
    default_backend talos-api

backend talos-api
    balance leastconn
    option tcp-check
%s`, talos.String())
	}
	return cfg
}

// importConfig runs `vipd import` on the nodes' keepalived.conf files and
// the haproxy.cfg they run (the step 1 of the runbook) and returns its
// output, which every node then uses unchanged. Without unicast_src_ip
// (multicast) the nodes' addresses come from --address.
func (m *migLab) importConfig(t *testing.T) string {
	t.Helper()
	args := []string{"import"}
	for _, h := range m.lbs() {
		args = append(args, "--keepalived", h.Name+"="+m.ka[h.Name].Config)
		if !m.unicast {
			args = append(args, "--address", h.Name+"="+h.Addr.String())
		}
	}
	args = append(args, "--haproxy", filepath.Join(filepath.Dir(m.ha[m.master()].LogPath), "haproxy.cfg"))
	cmd := exec.Command(lab.Bin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("vipd %s: %v\n%s\n%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	t.Logf("vipd %s\n%s", strings.Join(args, " "), stderr.String())
	return stdout.String()
}

// startKeepalived starts HAProxy and keepalived on every node and waits
// for the first MASTER, the others BACKUP, and a client that gets
// through.
func (m *migLab) startKeepalived(t *testing.T) {
	t.Helper()
	for _, h := range m.lbs() {
		m.ha[h.Name] = m.StartHAProxyConfig(t, h, h.Name, m.haproxyConf())
	}
	for _, h := range m.lbs() {
		m.ka[h.Name] = m.StartKeepalivedConf(t, h, h.Name, m.keepalivedConf(h.Name))
	}
	for _, h := range m.lbs() {
		want := "Entering BACKUP STATE"
		if h.Name == m.master() {
			want = "Entering MASTER STATE"
		}
		m.ka[h.Name].AwaitLog(want, 0, 10*time.Second)
	}
	// The track script's weight counts once it succeeded (rise times
	// interval): the yardstick is taken with it in place.
	for _, h := range m.lbs() {
		if !m.ha[h.Name].Running() {
			t.Fatalf("HAProxy on %s exited:\n%s", h.Name, m.ha[h.Name].Log())
		}
		m.ka[h.Name].AwaitLog("VRRP_Script(chk_lb) succeeded", 0, 15*time.Second)
	}
	lab.AwaitHolder(t, m.vip, m.hosts[m.master()], 5*time.Second, m.lbs()...)
	m.watch = lab.WatchVIP(t, m.vip, m.lbs()...)
	m.pr = lab.StartProberConcurrent(t, m.client, m.target(), m.top.banner)
	if err := lab.WaitFor(5*time.Second, func() error { return m.gotThrough(time.Time{}) }); err != nil {
		t.Fatal(err)
	}
	m.renewStreams(t, time.Now())
}

// writeConfig writes the imported config for one node with its own
// control socket (the two nodes share this machine's filesystem; on real
// hosts the default socket path serves).
func (m *migLab) writeConfig(t *testing.T, name, imported string) (cfg, sock string) {
	t.Helper()
	sock = filepath.Join(m.Dir(), name+".sock")
	cfg = filepath.Join(m.Dir(), name+".toml")
	body := imported + fmt.Sprintf("\n[control]\nsocket = %q\n", sock)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, sock
}

// startVipd starts vipd on a node with the config given.
func (m *migLab) startVipd(t *testing.T, name, imported string) *lab.Node {
	t.Helper()
	cfg, sock := m.writeConfig(t, name, imported)
	if out, err := exec.Command(lab.Bin, "check", "-c", cfg, "--node", name).CombinedOutput(); err != nil {
		t.Fatalf("vipd check -c %s: %v\n%s", cfg, err, out)
	}
	n := m.StartNode(m.hosts[name], name, cfg, sock)
	m.vipd[name] = n
	return n
}

// restartVipd is `systemctl restart vipd` with a new config: SIGTERM (a
// MASTER hands over first), then start.
func (m *migLab) restartVipd(t *testing.T, name, config string) {
	t.Helper()
	n := m.vipd[name]
	if err := n.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatalf("%s: vipd exited with %v after SIGTERM\n%s", name, err, n.Log())
	}
	cfg, _ := m.writeConfig(t, name, config)
	if out, err := exec.Command(lab.Bin, "check", "-c", cfg, "--node", name).CombinedOutput(); err != nil {
		t.Fatalf("vipd check -c %s: %v\n%s", cfg, err, out)
	}
	n.Start()
}

// toVersion3 is the last step's edit of the imported config: VRRPv3
// (no authentication) at vipd's default 200 ms adverts.
func toVersion3(imported string) string {
	var out []string
	for _, l := range strings.Split(imported, "\n") {
		switch {
		case strings.HasPrefix(l, "version = 2"):
			l = "version = 3"
		case strings.HasPrefix(l, "auth_pass = "):
			continue
		case strings.HasPrefix(l, "advert_interval = "):
			l = `advert_interval = "200ms"`
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// awaitFollowing waits until vipd on name is BACKUP behind the master
// and reports no problem (with wantProblem, that problem).
func (m *migLab) awaitFollowing(t *testing.T, name, master, wantProblem string) {
	t.Helper()
	awaitInstance(t, m.vipd[name], 8*time.Second, func(in control.Instance) error {
		if want := m.hosts[master].Addr.String(); in.State != "BACKUP" || in.MasterAddr != want {
			return fmt.Errorf("%s is %s behind %q; want BACKUP behind %s", name, in.State, in.MasterAddr, want)
		}
		if wantProblem == "" && len(in.Problems) > 0 || wantProblem != "" && !containsProblem(in.Problems, wantProblem) {
			return fmt.Errorf("problems %q, want %q", in.Problems, wantProblem)
		}
		return nil
	})
}

// showStatus logs `vipd status` on a node, as the operator reads it.
func (m *migLab) showStatus(t *testing.T, name string) {
	t.Helper()
	out, err := vipdCLI(m.vipd[name], "status")
	if err != nil {
		t.Fatalf("vipd status on %s: %v\n%s", name, err, out)
	}
	t.Logf("vipd status on %s:\n%s", name, out)
}

// hardDrill rehearses a crash of the MASTER (`vipd drill failover
// --hard`): the successor takes over after Master_Down_Interval, and the
// MASTER preempts back after the hold.
func (m *migLab) hardDrill(t *testing.T, what string) {
	t.Helper()
	master := m.master()
	m.step(t, fmt.Sprintf("crash rehearsal: `vipd drill failover --hard` on %s, %s", master, what), "crash", func(s *migStep) {
		awaitPeerBackup(t, m.vipd[master], m.successor())
		res := drill(t, m.vipd[master], "--hard", "--hold", "2s")
		s.note = fmt.Sprintf("the drill reports gap_ms %.0f, expected_ms %.0f", res.GapMs, res.ExpectedMs)
		m.vipd[master].AwaitState("MASTER", 15*time.Second)
	})
}

// drill runs `vipd drill failover ARGS -o json` on n.
func drill(t *testing.T, n *lab.Node, args ...string) control.DrillResult {
	t.Helper()
	out, err := vipdCLI(n, append(append([]string{"drill", "failover"}, args...), "-o", "json")...)
	if err != nil {
		t.Fatalf("drill: %v\n%s\n%s", err, out, n.Log())
	}
	var res control.DrillResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("drill output %q: %v", out, err)
	}
	return res
}

func modeName(unicast bool) string {
	if unicast {
		return "unicast"
	}
	return "multicast"
}
