package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// cpLab is an HA pair in front of three stand-in control planes.
type cpLab struct {
	*lab.Lab
	lb1, lb2, client *lab.Host
	cps              []*lab.ControlPlane
	n1, n2           *lab.Node
	vip              netip.Addr
	pki              lab.PKI
}

const talosFrontend = `
[[frontend]]
name = "talos"
port = 50000
backend = "talos"
`

func newCPLab(t *testing.T, extra string, perNode func(string) string) *cpLab {
	return newCPLabWith(t, extra, perNode, nil)
}

// newCPLabWith is newCPLab with setup called on each vipd node before it
// starts (lab.PairOptions.Setup).
func newCPLabWith(t *testing.T, extra string, perNode func(string) string, setup func(*lab.Node)) *cpLab {
	l := lab.NewLab(t)
	c := &cpLab{Lab: l, lb1: l.AddHost("lb1", 11), lb2: l.AddHost("lb2", 12), client: l.AddHost("client", 100), vip: l.Addr(10)}
	var hosts []*lab.Host
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, l.AddHost(fmt.Sprintf("cp%d", i), 30+i))
	}
	ips := []netip.Addr{c.vip}
	for _, h := range hosts {
		ips = append(ips, h.Addr)
	}
	c.pki = lab.NewPKI(t, ips...)
	for _, h := range hosts {
		c.cps = append(c.cps, lab.StartControlPlane(t, h, c.pki))
	}
	var talosServers []string
	for _, h := range hosts {
		talosServers = append(talosServers, fmt.Sprintf("{ name = %q, address = \"%s:50000\" }", h.Name, h.Addr))
	}
	talos := talosFrontend + fmt.Sprintf("\n[[backend]]\nname = \"talos\"\nservers = [%s]\ncheck = { type = \"tcp\", interval = \"300ms\", timeout = \"200ms\", rise = 2, fall = 2 }\ndrain_timeout = \"3s\"\n", strings.Join(talosServers, ", "))
	check := fmt.Sprintf(`{ type = "https", path = "/readyz", ca = %q, interval = "300ms", timeout = "200ms", rise = 2, fall = 2 }`, c.pki.CA)
	ns := l.StartNodes(t, lab.PairOptions{VIP: c.vip, Backends: hosts, Check: check, Extra: talos + extra, PerNode: perNode, Setup: setup},
		[]lab.LBNode{lab.N("lb1", c.lb1, 150), lab.N("lb2", c.lb2, 100)})
	c.n1, c.n2 = ns[0], ns[1]
	c.n1.AwaitState("MASTER", 5*time.Second)
	c.n2.AwaitState("BACKUP", 2*time.Second)
	return c
}

func (c *cpLab) url(path string) string { return fmt.Sprintf("https://%s:6443%s", c.vip, path) }

// serverState returns backend/server's state in node's status.
func serverState(n *lab.Node, backend, server string) string {
	st, err := n.Status()
	if err != nil {
		return ""
	}
	for _, b := range st.Backends {
		if b.Name != backend {
			continue
		}
		for _, s := range b.Servers {
			if s.Name == server {
				return s.State
			}
		}
	}
	return ""
}

func awaitServer(t *testing.T, n *lab.Node, backend, server, state string, timeout time.Duration) {
	t.Helper()
	err := lab.WaitFor(timeout, func() error {
		if got := serverState(n, backend, server); got != state {
			return fmt.Errorf("%s/%s on %s is %q, want %s", backend, server, n.Name, got, state)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func count(lines []string) map[string]int {
	m := map[string]int{}
	for _, l := range lines {
		m[l]++
	}
	return m
}

// TestProxyHealthAndRotation: requests through VIP:6443 spread over the
// healthy servers; a server answering 500, then one that hangs, leaves
// rotation within fall x interval and comes back after rise; only the
// master listens on the VIP; status shows servers and frontends.
func TestProxyHealthAndRotation(t *testing.T) {
	c := newCPLab(t, "", nil)
	for _, cp := range []string{"cp1", "cp2", "cp3"} {
		awaitServer(t, c.n1, "kube-apiserver", cp, "UP", 5*time.Second)
		awaitServer(t, c.n2, "kube-apiserver", cp, "UP", 5*time.Second) // checks run on the backup too
	}
	got := count(lab.Get(t, c.client, c.pki.CA, c.url("/whoami"), 30))
	if got["cp1"] == 0 || got["cp2"] == 0 || got["cp3"] == 0 || len(got) != 3 {
		t.Fatalf("30 requests spread as %v, want all three servers and no errors", got)
	}

	for _, mode := range []string{"500", "hang"} {
		c.cps[1].SetMode(t, mode)
		start := time.Now()
		// fall 2 x interval 300 ms (+ timeout 200 ms for a hang).
		awaitServer(t, c.n1, "kube-apiserver", "cp2", "DOWN", 3*time.Second)
		t.Logf("cp2 %s: out of rotation after %s", mode, time.Since(start).Round(time.Millisecond))
		got := count(lab.Get(t, c.client, c.pki.CA, c.url("/whoami"), 20))
		if got["cp2"] != 0 || got["cp1"]+got["cp3"] != 20 {
			t.Errorf("with cp2 %s: %v, want only cp1 and cp3", mode, got)
		}
		c.cps[1].SetMode(t, "ok")
		awaitServer(t, c.n1, "kube-apiserver", "cp2", "UP", 3*time.Second)
	}

	st, err := c.n1.Status()
	if err != nil {
		t.Fatal(err)
	}
	var k8s *struct{}
	for _, f := range st.Frontends {
		if f.Name == "kubernetes" {
			k8s = &struct{}{}
			if !f.Listening || f.TotalConns < 50 || f.Bind != c.vip.String()+":6443" {
				t.Errorf("frontend status %+v: want listening on %s:6443 with >= 50 connections", f, c.vip)
			}
		}
	}
	if k8s == nil {
		t.Fatalf("no kubernetes frontend in status %+v", st.Frontends)
	}
	for _, b := range st.Backends {
		for _, s := range b.Servers {
			if s.LastCheck == "" || s.Health == "" {
				t.Errorf("server %s/%s has no last check in status: %+v", b.Name, s.Name, s)
			}
		}
	}
	// Only the master listens on the VIP.
	st2, _ := c.n2.Status()
	for _, f := range st2.Frontends {
		if f.Listening {
			t.Errorf("backup frontend %s is listening", f.Name)
		}
	}
	out, _ := exec.Command("ip", "netns", "exec", c.lb2.NS, "ss", "-Hltn").Output()
	if strings.Contains(string(out), c.vip.String()) {
		t.Errorf("backup has a listener on the VIP:\n%s", out)
	}
}

// TestProxyFailoverClosesOldConnections: after a master failover, new
// connections through the VIP succeed via the new master, and the old
// master closed the client connections it held (no hanging until a
// keepalive timeout).
func TestProxyFailoverClosesOldConnections(t *testing.T) {
	c := newCPLab(t, "", nil)
	awaitServer(t, c.n1, "talos", "cp1", "UP", 5*time.Second)
	h := lab.Hold(t, c.client, c.vip.String()+":50000", 0)
	if err := lab.WaitFor(3*time.Second, func() error {
		if _, ok := h.Has("connected"); !ok {
			return fmt.Errorf("not connected: %v", h.Events())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	c.n1.Stop(syscall.SIGTERM, 5*time.Second)
	c.n2.AwaitState("MASTER", 2*time.Second)
	if err := lab.WaitFor(3*time.Second, func() error {
		if _, ok := h.Has("closed"); !ok {
			return fmt.Errorf("old connection still open: %v", h.Events())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e, _ := h.Has("closed")
	t.Logf("old client connection closed %s after SIGTERM (%s)", e.At.Sub(stopped).Round(time.Millisecond), e.Data)
	got := count(lab.Get(t, c.client, c.pki.CA, c.url("/whoami"), 6))
	for k := range got {
		if strings.HasPrefix(k, "ERR") {
			t.Errorf("requests via the new master failed: %v", got)
		}
	}
}

// TestProxyLongLivedIdleStream: an idle proxied connection (a watch)
// survives 60 s with no traffic, far past the client/server timeouts of
// the HAProxy configs it replaces, then still carries data.
func TestProxyLongLivedIdleStream(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: 60 s idle stream in -short mode")
	}
	c := newCPLab(t, "", nil)
	awaitServer(t, c.n1, "talos", "cp1", "UP", 5*time.Second)
	h := lab.Hold(t, c.client, c.vip.String()+":50000", 61*time.Second)
	err := lab.WaitFor(70*time.Second, func() error {
		if _, ok := h.Has("echo"); !ok {
			if e, closed := h.Has("closed"); closed {
				return fmt.Errorf("stream closed while idle: %+v", e)
			}
			return fmt.Errorf("no echo yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if e, closed := h.Has("closed"); closed {
		t.Fatalf("stream closed: %+v", e)
	}
}

// TestBackendsUnreachableMovesVIP: lb1 cannot reach any control plane
// (blackhole routes); its "backends" tracker drops it below lb2 and the VIP
// moves to the node that can reach them. No script needed.
func TestBackendsUnreachableMovesVIP(t *testing.T) {
	extra := "\n[[track]]\nname = \"cp-reachable\"\ntype = \"backends\"\nfrontend = \"kubernetes\"\nmin_healthy = 1\nweight = -100\n"
	c := newCPLab(t, extra, nil)
	for _, cp := range []string{"cp1", "cp2", "cp3"} {
		awaitServer(t, c.n1, "kube-apiserver", cp, "UP", 5*time.Second)
	}
	for i := 1; i <= 3; i++ {
		c.IPN(c.lb1.NS, "route", "add", "blackhole", c.Addr(30+i).String()+"/32")
	}
	c.n2.AwaitState("MASTER", 6*time.Second)
	c.n1.AwaitState("BACKUP", 2*time.Second)
	lab.AwaitHolder(t, c.vip, c.lb2, 2*time.Second, c.lb1, c.lb2)
	st, _ := c.n1.Status()
	if p := st.Instances[0].EffectivePriority; p != 50 {
		t.Errorf("lb1 effective priority %d, want 50 (150 - 100)", p)
	}
	got := count(lab.Get(t, c.client, c.pki.CA, c.url("/whoami"), 6))
	for k := range got {
		if strings.HasPrefix(k, "ERR") {
			t.Errorf("requests failed after the move: %v", got)
		}
	}
	// Routes back: lb1 recovers and preempts.
	for i := 1; i <= 3; i++ {
		c.IPN(c.lb1.NS, "route", "del", "blackhole", c.Addr(30+i).String()+"/32")
	}
	c.n1.AwaitState("MASTER", 8*time.Second)
}
