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

// vipdCLI runs the vipd CLI against a node's socket.
func vipdCLI(n *lab.Node, args ...string) (string, error) {
	args = append(args, "--socket", n.Socket)
	out, err := exec.Command(lab.Bin, args...).CombinedOutput()
	return string(out), err
}

func transitions(t *testing.T, n *lab.Node) int {
	t.Helper()
	st, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Instances[0].Transitions
}

// TestDrillFailover: a planned drill on the master hands over with no
// failed client connection and reports the gap beside the prediction; the
// old master takes the VIP back after --hold; a hard drill's gap lies in
// the range the timers predict; a drill on the backup refuses and changes
// nothing.
func TestDrillFailover(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	// Wait until lb1 has heard lb2's status beacon (drill safety check).
	awaitPeerBackup(t, p.n1, "lb2")

	// A drill on the backup refuses.
	before := transitions(t, p.n2)
	out, err := vipdCLI(p.n2, "drill", "failover")
	if err == nil || !strings.Contains(out, "not MASTER") {
		t.Errorf("drill on the backup: err %v, output %q; want a refusal naming the state", err, out)
	}
	if after := transitions(t, p.n2); after != before || p.n2.State() != "BACKUP" {
		t.Errorf("refused drill changed the backup: transitions %d -> %d", before, after)
	}

	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	out, err = vipdCLI(p.n1, "drill", "failover", "--hold", "2s", "-o", "json")
	if err != nil {
		t.Fatalf("drill: %v\n%s\n%s", err, out, p.n1.Log())
	}
	var res control.DrillResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("drill output %q: %v", out, err)
	}
	t.Logf("planned drill: %+v", res)
	if !strings.Contains(res.From, "lb1") || !strings.Contains(res.To, "lb2") {
		t.Errorf("drill from %q to %q, want lb1 -> lb2", res.From, res.To)
	}
	if res.ExpectedMs != 0 || res.GapMs > 100 {
		t.Errorf("planned drill gap %.0f ms (expected %.0f): want no gap (make before break)", res.GapMs, res.ExpectedMs)
	}
	p.n2.AwaitState("MASTER", time.Second)
	// After the 2 s hold, lb1 preempts back.
	p.n1.AwaitState("MASTER", 6*time.Second)
	waitProbeOKAfter(t, pr, time.Now())
	if gap, failed := lab.Gap(pr.Stop()); failed > 0 {
		t.Errorf("client saw %d failed connects (gap %s) across a planned drill and the preemption back", failed, gap)
	}

	// Hard drill: a crash rehearsal, once lb1 knows lb2 is a ready BACKUP
	// again (beacons follow state changes within 50 ms).
	awaitPeerBackup(t, p.n1, "lb2")
	out, err = vipdCLI(p.n1, "drill", "failover", "--hard", "--hold", "2s", "-o", "json")
	if err != nil {
		t.Fatalf("hard drill: %v\n%s", err, out)
	}
	res = control.DrillResult{}
	json.Unmarshal([]byte(out), &res)
	t.Logf("hard drill: %+v", res)
	// lb2 (priority 100) at 200 ms: Down_Interval = 600 + 121.875 ms.
	if res.ExpectedMs < 700 || res.ExpectedMs > 750 {
		t.Errorf("hard drill expected_ms %.1f, want Down_Interval ~722", res.ExpectedMs)
	}
	if res.GapMs < 0.5*res.ExpectedMs || res.GapMs > res.ExpectedMs+800 {
		t.Errorf("hard drill gap %.0f ms, want within the predicted range around %.0f ms", res.GapMs, res.ExpectedMs)
	}
	st, _ := p.n1.Status()
	if st.LastDrill == nil || st.LastDrill.GapMs != res.GapMs {
		t.Errorf("status last_drill %+v, want the hard drill", st.LastDrill)
	}
	p.n1.AwaitState("MASTER", 6*time.Second)

	// No healthy backup: stop lb2; the drill refuses and lb1 keeps the VIP.
	p.n2.Stop(syscall.SIGTERM, 5*time.Second)
	if err := lab.WaitFor(6*time.Second, func() error {
		out, err = vipdCLI(p.n1, "drill", "failover")
		if err == nil {
			return fmt.Errorf("drill accepted without a backup: %s", out)
		}
		if !strings.Contains(out, "no healthy backup") {
			return fmt.Errorf("output %q", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s := p.n1.State(); s != "MASTER" {
		t.Errorf("lb1 is %s after a refused drill", s)
	}
}

// TestServerDrainAndMaint: drain keeps an open connection while new ones
// go elsewhere, and closes it at the drain timeout; maint closes at once;
// ready puts the server back.
func TestServerDrainAndMaint(t *testing.T) {
	c := newCPLab(t, "", nil)
	for _, cp := range []string{"cp1", "cp2", "cp3"} {
		awaitServer(t, c.n1, "talos", cp, "UP", 5*time.Second)
	}
	h := lab.Hold(t, c.client, c.vip.String()+":50000", 300*time.Millisecond)
	var who string
	if err := lab.WaitFor(3*time.Second, func() error {
		e, ok := h.Has("connected")
		who = e.Data
		if !ok {
			return fmt.Errorf("not connected")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out, err := vipdCLI(c.n1, "server", "drain", "talos/"+who)
	if err != nil {
		t.Fatalf("drain: %v %s", err, out)
	}
	drained := time.Now()
	if s := serverState(c.n1, "talos", who); s != "DRAIN" {
		t.Errorf("%s state %s after drain", who, s)
	}
	// New connections avoid the drained server.
	pr := lab.StartProber(t, c.client, netipPort(c, 50000), true)
	time.Sleep(time.Second) // collect a second of probes (10 ms apart)
	for _, s := range pr.Stop() {
		if s.OK && s.Who == who {
			t.Fatalf("a new connection went to drained server %s", who)
		}
	}
	// The held connection still works now, and is closed at the 3 s
	// drain timeout.
	if _, closed := h.Has("closed"); closed {
		t.Fatalf("draining closed the open connection at once: %v", h.Events())
	}
	if err := lab.WaitFor(6*time.Second, func() error {
		if _, ok := h.Has("closed"); !ok {
			return fmt.Errorf("not closed")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e, _ := h.Has("closed")
	if d := e.At.Sub(drained); d < 2500*time.Millisecond {
		t.Errorf("drained connection closed after %s, before the 3 s drain timeout", d)
	}
	// ready, then maint: maint closes open connections at once.
	if out, err := vipdCLI(c.n1, "server", "ready", "talos/"+who); err != nil {
		t.Fatalf("ready: %v %s", err, out)
	}
	awaitServer(t, c.n1, "talos", who, "UP", 2*time.Second)
	if out, err := vipdCLI(c.n1, "server", "bogus", "talos/"+who); err == nil {
		t.Errorf("unknown action accepted: %s", out)
	}
	if out, err := vipdCLI(c.n1, "server", "drain", "talos/nope"); err == nil || !strings.Contains(out, "nope") {
		t.Errorf("unknown server: err %v out %q", err, out)
	}
}

func netipPort(c *cpLab, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(c.vip, port)
}

// TestReload: a good reload applies a new frontend without dropping an
// established proxied connection and without a VRRP state change; a bad
// file (vipd reload and SIGHUP) keeps the running config and says why.
func TestReload(t *testing.T) {
	c := newCPLab(t, "", nil)
	awaitServer(t, c.n1, "talos", "cp1", "UP", 5*time.Second)
	h := lab.Hold(t, c.client, c.vip.String()+":50000", 200*time.Millisecond)
	if err := lab.WaitFor(3*time.Second, func() error {
		if _, ok := h.Has("echo"); !ok {
			return fmt.Errorf("no echo")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t1, t2 := transitions(t, c.n1), transitions(t, c.n2)

	orig, _ := os.ReadFile(c.n1.Config)
	added := string(orig) + "\n[[frontend]]\nname = \"k8s-alt\"\nport = 8443\nbackend = \"kube-apiserver\"\n"
	os.WriteFile(c.n1.Config, []byte(added), 0o644)
	out, err := vipdCLI(c.n1, "reload")
	if err != nil || !strings.Contains(out, "frontends") {
		t.Fatalf("reload: %v %q\n%s", err, out, c.n1.Log())
	}
	if err := lab.WaitFor(2*time.Second, func() error {
		st, _ := c.n1.Status()
		for _, f := range st.Frontends {
			if f.Name == "k8s-alt" && f.Listening {
				return nil
			}
		}
		return fmt.Errorf("k8s-alt not listening: %+v", st.Frontends)
	}); err != nil {
		t.Fatal(err)
	}
	got := count(lab.Get(t, c.client, c.pki.CA, fmt.Sprintf("https://%s:8443/whoami", c.vip), 3))
	for k := range got {
		if strings.HasPrefix(k, "ERR") {
			t.Errorf("new frontend: %v", got)
		}
	}

	// A bad file: the reload fails with file:line and nothing changes.
	os.WriteFile(c.n1.Config, []byte(added+"\n[vrrp\n"), 0o644)
	out, err = vipdCLI(c.n1, "reload")
	if err == nil || !strings.Contains(out, filepath.Base(c.n1.Config)+":") {
		t.Errorf("bad reload: err %v, output %q; want an error naming file:line", err, out)
	}
	c.n1.Signal(syscall.SIGHUP)
	if err := lab.WaitFor(2*time.Second, func() error {
		if !strings.Contains(c.n1.Log(), "reload failed") {
			return fmt.Errorf("no 'reload failed' log line after SIGHUP")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// Election settings cannot change at run time.
	os.WriteFile(c.n1.Config, []byte(strings.Replace(added, "vrid = 51", "vrid = 52", 1)), 0o644)
	if out, err := vipdCLI(c.n1, "reload"); err == nil || !strings.Contains(out, "vrid") {
		t.Errorf("vrid change: err %v out %q, want a refusal naming vrid", err, out)
	}
	os.WriteFile(c.n1.Config, []byte(added), 0o644)

	n := len(h.Events())
	if err := lab.WaitFor(2*time.Second, func() error {
		if len(h.Events()) <= n+2 {
			return fmt.Errorf("held connection stopped echoing")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if e, closed := h.Has("closed"); closed {
		t.Errorf("reloads dropped the established connection: %+v", e)
	}
	if a, b := transitions(t, c.n1), transitions(t, c.n2); a != t1 || b != t2 {
		t.Errorf("reloads caused VRRP transitions: lb1 %d -> %d, lb2 %d -> %d", t1, a, t2, b)
	}
	if s := c.n1.State(); s != "MASTER" {
		t.Errorf("lb1 %s after reloads", s)
	}
}

// TestControlSocketPermissions: the socket is 0660; a user outside its
// group cannot read status or run a drill; with [control] group set, a
// member can.
func TestControlSocketPermissions(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	fi, err := os.Stat(p.n1.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %o, want 660", fi.Mode().Perm())
	}
	// Let nobody reach the socket file through the test's temp dirs, so
	// the socket's own mode is what is tested.
	os.Chmod(filepath.Dir(p.n1.Socket), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(p.n1.Socket)), 0o755)
	asNobody := func(args ...string) (string, error) {
		cmd := exec.Command(lab.Bin, append(args, "--socket", p.n1.Socket)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{{"status"}, {"drill", "failover"}, {"reload"}} {
		out, err := asNobody(args...)
		if err == nil || !strings.Contains(out, "permission denied") {
			t.Errorf("nobody ran vipd %s: err %v out %q", args[0], err, out)
		}
	}
	if s := p.n1.State(); s != "MASTER" {
		t.Errorf("lb1 %s", s)
	}

	// With group = nogroup (nobody's group) the socket admits nobody.
	orig, _ := os.ReadFile(p.n1.Config)
	os.WriteFile(p.n1.Config, []byte(strings.Replace(string(orig), "[control]\n", "[control]\ngroup = \"nogroup\"\n", 1)), 0o644)
	p.n1.Stop(syscall.SIGTERM, 5*time.Second)
	p.n1.Start()
	if err := lab.WaitFor(5*time.Second, func() error {
		_, err := os.Stat(p.n1.Socket)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitFor(3*time.Second, func() error {
		out, err := asNobody("status", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	}); err != nil {
		t.Errorf("group member could not read status: %v", err)
	}
}

// TestNotifyHooks: the [notify] command runs on each transition with
// instance, state and priority, and a hook that hangs never blocks the
// state machine.
func TestNotifyHooks(t *testing.T) {
	l := lab.NewLab(t)
	lb1, lb2 := l.AddHost("lb1", 11), l.AddHost("lb2", 12)
	vip := l.Addr(10)
	out := filepath.Join(l.Dir(), "notify-")
	perNode := func(node string) string {
		if node == "lb2" {
			// lb2's hook writes, then hangs far past its timeout.
			return fmt.Sprintf("\n[notify]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$*\\\" >> %s%s; sleep 30\", \"hook\"]\ntimeout = \"1s\"\n", out, node)
		}
		return fmt.Sprintf("\n[notify]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$*\\\" >> %s%s\", \"hook\"]\n", out, node)
	}
	ns := l.StartNodes(t, lab.PairOptions{VIP: vip, PerNode: perNode}, []lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
	ns[0].AwaitState("MASTER", 5*time.Second)
	ns[1].AwaitState("BACKUP", 2*time.Second)
	ns[0].Stop(syscall.SIGKILL, 5*time.Second)
	ns[1].AwaitState("MASTER", 3*time.Second) // not blocked by its hanging BACKUP hook
	check := func(node, want string) {
		err := lab.WaitFor(3*time.Second, func() error {
			b, _ := os.ReadFile(out + node)
			if !strings.Contains(string(b), want) {
				return fmt.Errorf("%s hook output %q, want %q", node, b, want)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	check("lb1", "vrid-51 MASTER 150")
	check("lb2", "vrid-51 BACKUP 100")
	check("lb2", "vrid-51 MASTER 100")
}

// awaitPeerBackup waits until n's status beacons show peer as a fresh,
// ready BACKUP.
func awaitPeerBackup(t *testing.T, n *lab.Node, peer string) {
	t.Helper()
	if err := lab.WaitFor(5*time.Second, func() error {
		st, _ := n.Status()
		for _, p := range st.Peers {
			if p.Name == peer && p.Fresh && p.State == "BACKUP" && p.Ready {
				return nil
			}
		}
		return fmt.Errorf("peers %+v", st.Peers)
	}); err != nil {
		t.Fatal(err)
	}
}
