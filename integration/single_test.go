package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// TestSingleLB: no [vrrp] table: frontends bind their address and always
// listen (the seeds' single-HAProxy topology).
func TestSingleLB(t *testing.T) {
	l := lab.NewLab(t)
	lb, client := l.AddHost("lb", 20), l.AddHost("client", 100)
	var servers []string
	ips := []netip.Addr{lb.Addr}
	for i := 1; i <= 2; i++ {
		h := l.AddHost(fmt.Sprintf("cp%d", i), 30+i)
		servers = append(servers, fmt.Sprintf("{ name = %q, address = \"%s:6443\" }", h.Name, h.Addr))
		ips = append(ips, h.Addr)
	}
	pki := lab.NewPKI(t, ips...)
	for i := 1; i <= 2; i++ {
		lab.StartControlPlane(t, l.Host(fmt.Sprintf("cp%d", i)), pki)
	}
	sock := filepath.Join(l.Dir(), "lb.sock")
	cfg := filepath.Join(l.Dir(), "single.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[[frontend]]
name = "kubernetes"
port = 6443
address = %q
backend = "kube-apiserver"
balance = "roundrobin"

[[backend]]
name = "kube-apiserver"
servers = [%s]
check = { type = "https", path = "/readyz", ca = %q, interval = "300ms", timeout = "200ms" }

[control]
socket = %q
`, lb.Addr, strings.Join(servers, ", "), pki.CA, sock)), 0o644)
	n := l.StartNode(lb, "lb", cfg, sock)
	if err := lab.WaitFor(5*time.Second, func() error {
		st, err := n.Status()
		if err != nil {
			return err
		}
		if st.Mode != "single" || len(st.Frontends) != 1 || !st.Frontends[0].Listening {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, n.Log())
	}
	// Round robin is over the servers that are UP: wait for both first
	// checks (the listener is up before them).
	awaitServer(t, n, "kube-apiserver", "cp1", "UP", 5*time.Second)
	awaitServer(t, n, "kube-apiserver", "cp2", "UP", 5*time.Second)
	got := count(lab.Get(t, client, pki.CA, fmt.Sprintf("https://%s:6443/whoami", lb.Addr), 10))
	if got["cp1"] != 5 || got["cp2"] != 5 {
		t.Errorf("roundrobin over two servers gave %v, want 5 and 5", got)
	}
}

// TestColocationTrap: kube-apiserver holds *:6443 on this host (vipd on a
// control-plane node); vipd refuses to start and says exactly what to do.
func TestColocationTrap(t *testing.T) {
	l := lab.NewLab(t)
	lb1, lb2 := l.AddHost("lb1", 11), l.AddHost("lb2", 12)
	// A stand-in apiserver bound to the wildcard, as kube-apiserver is by
	// default.
	self, _ := os.Executable()
	hold := lb1.Exec(context.Background(), self, "-test.run=^$")
	hold.Env = append(os.Environ(), "VIPD_TEST_HELPER=wildcard", "VIPD_WILDCARD_PORT=6443")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Process.Kill(); hold.Wait() })
	if err := lab.WaitFor(3*time.Second, func() error {
		out, _ := lb1.Exec(context.Background(), "ss", "-Hltn", "sport = :6443").Output()
		if !strings.Contains(string(out), "6443") {
			return fmt.Errorf("wildcard listener not up")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ns := l.StartNodes(t, lab.PairOptions{VIP: l.Addr(10)}, []lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
	if err := lab.WaitFor(5*time.Second, func() error {
		if ns[0].Running() {
			return fmt.Errorf("vipd still running")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v: vipd started despite *:6443 being taken\n%s", err, ns[0].Log())
	}
	log := ns[0].Log()
	for _, want := range []string{"6443", "--bind-address", "another port"} {
		if !strings.Contains(log, want) {
			t.Errorf("the refusal does not mention %q:\n%s", want, log)
		}
	}
}

func wildcardMain() int {
	ln, err := net.Listen("tcp", ":"+os.Getenv("VIPD_WILDCARD_PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ln.Close()
	time.Sleep(2 * time.Minute) // held until the test kills this process
	return 0
}
