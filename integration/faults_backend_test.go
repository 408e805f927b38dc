package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// TestFaultBackendKilledMidStream: a client holds a connection through
// VIP:50000 to one control plane; that control plane's process is
// SIGKILLed. The client's connection is closed (not left hanging) and new
// connections go to the other two.
func TestFaultBackendKilledMidStream(t *testing.T) {
	t.Parallel()
	c := newCPLab(t, "", nil)
	for _, cp := range []string{"cp1", "cp2", "cp3"} {
		awaitServer(t, c.n1, "talos", cp, "UP", 5*time.Second)
	}
	h := lab.Hold(t, c.client, c.vip.String()+":50000", 200*time.Millisecond)
	var who string
	if err := lab.WaitFor(3*time.Second, func() error {
		e, ok := h.Has("connected")
		who = e.Data
		if !ok {
			return fmt.Errorf("not connected: %v", h.Events())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var victim *lab.ControlPlane
	for _, cp := range c.cps {
		if cp.Host.Name == who {
			victim = cp
		}
	}
	if victim == nil {
		t.Fatalf("held connection answered by %q, not a control plane", who)
	}
	killed := time.Now()
	victim.Kill(t)
	pr := lab.StartProber(t, c.client, netipPort(c, 50000), true)
	if err := lab.WaitFor(5*time.Second, func() error {
		if _, ok := h.Has("closed"); !ok {
			return fmt.Errorf("held connection still open after its server died: %v", h.Events())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e, _ := h.Has("closed")
	awaitServer(t, c.n1, "talos", who, "DOWN", 3*time.Second)
	down := time.Since(killed)
	time.Sleep(time.Second) // a second of new connections after the check marked it DOWN
	samples := pr.Stop()
	failed, toVictim, ok := 0, 0, 0
	for _, s := range samples {
		switch {
		case !s.OK:
			failed++
		case s.Who == who:
			toVictim++
		default:
			ok++
		}
	}
	t.Logf("%s killed: held connection closed after %s (%s); marked DOWN within %s; new connections: %d ok to the others, %d to %s, %d failed",
		who, e.At.Sub(killed).Round(time.Millisecond), e.Data, down.Round(time.Millisecond), ok, toVictim, who, failed)
	if d := e.At.Sub(killed); d > 2*time.Second {
		t.Errorf("held connection closed only %s after the server died", d)
	}
	if toVictim != 0 || failed != 0 || ok == 0 {
		t.Errorf("new connections after the kill: %d ok, %d to the dead server, %d failed; want all to the others", ok, toVictim, failed)
	}
	oneMaster(t, c.vip, c.n1, 2*time.Second, c.n1, c.n2)
}

// TestFaultBackendHangAndFlap: a server that accepts and never answers
// /readyz leaves rotation within fall x interval + timeout; a server whose
// /readyz toggles between 200 and 500 every 400 ms for 10 s (rise 2,
// fall 2, interval 300 ms) changes state no more often than rise/fall
// allow: each change needs two checks, so at most one per 600 ms.
func TestFaultBackendHangAndFlap(t *testing.T) {
	t.Parallel()
	c := newCPLab(t, "", nil)
	for _, cp := range []string{"cp1", "cp2", "cp3"} {
		awaitServer(t, c.n1, "kube-apiserver", cp, "UP", 5*time.Second)
	}
	c.cps[1].SetMode(t, "hang")
	start := time.Now()
	awaitServer(t, c.n1, "kube-apiserver", "cp2", "DOWN", 3*time.Second)
	hang := time.Since(start)
	bound := 2*300*time.Millisecond + 200*time.Millisecond
	t.Logf("cp2 hangs: out of rotation after %s (fall 2 x 300ms + timeout 200ms = %s)", hang.Round(time.Millisecond), bound)
	if hang > bound+500*time.Millisecond {
		t.Errorf("a hanging server left rotation after %s, want about %s", hang, bound)
	}
	got := count(lab.Get(t, c.client, c.pki.CA, c.url("/whoami"), 10))
	if got["cp2"] != 0 || got["cp1"]+got["cp3"] != 10 {
		t.Errorf("with cp2 hanging: %v, want only cp1 and cp3", got)
	}
	c.cps[1].SetMode(t, "ok")
	awaitServer(t, c.n1, "kube-apiserver", "cp2", "UP", 3*time.Second)

	mark := len(c.n1.Log())
	const period, dur = 400 * time.Millisecond, 10 * time.Second
	flapStart := time.Now()
	toggles := 0
	for i := 0; time.Since(flapStart) < dur && i < 100; i++ {
		mode := "500"
		if i%2 == 1 {
			mode = "ok"
		}
		c.cps[2].SetMode(t, mode)
		toggles++
		time.Sleep(period) // the flap cadence
	}
	c.cps[2].SetMode(t, "ok")
	elapsed := time.Since(flapStart)
	awaitServer(t, c.n1, "kube-apiserver", "cp3", "UP", 3*time.Second)
	changes := countLog(c.n1.Log(), mark, "server health changed", `"server":"cp3"`, `"backend":"kube-apiserver"`)
	checks := int(elapsed / (300 * time.Millisecond))
	maxChanges := checks/2 + 1
	t.Logf("cp3 /readyz toggled %d times every %s for %s: %d UP/DOWN changes on lb1 (~%d checks; rise/fall 2 allow at most %d)",
		toggles, period, elapsed.Round(time.Millisecond), changes, checks, maxChanges)
	if changes > maxChanges {
		t.Errorf("%d state changes in %s exceed what rise 2 / fall 2 allow (%d)", changes, elapsed, maxChanges)
	}
	if changes == 0 {
		t.Errorf("no 'server health changed' line for cp3 in lb1's log: the count is not measuring\n%s", tail(c.n1.Log(), 10))
	}
	oneMaster(t, c.vip, c.n1, 2*time.Second, c.n1, c.n2)
}

// TestFaultAllBackendsDownFailOpen: every control plane answers 500 on
// /readyz: every server is DOWN on both nodes, vipd fails open (forwards
// to all, says so in the log with "fail_open": true), and requests still
// reach the servers. With a backends tracker the VIP would move instead:
// see TestBackendsUnreachableMovesVIP.
func TestFaultAllBackendsDownFailOpen(t *testing.T) {
	t.Parallel()
	c := newCPLab(t, "", nil)
	for _, cp := range []string{"cp1", "cp2", "cp3"} {
		awaitServer(t, c.n1, "kube-apiserver", cp, "UP", 5*time.Second)
	}
	for _, cp := range c.cps {
		cp.SetMode(t, "500")
	}
	for _, n := range []*lab.Node{c.n1, c.n2} {
		for _, cp := range []string{"cp1", "cp2", "cp3"} {
			awaitServer(t, n, "kube-apiserver", cp, "DOWN", 3*time.Second)
		}
	}
	got := count(lab.Get(t, c.client, c.pki.CA, c.url("/whoami"), 9))
	failOpen := countLog(c.n1.Log(), 0, `"fail_open":true`)
	failOpen2 := countLog(c.n2.Log(), 0, `"fail_open":true`)
	t.Logf("all servers DOWN: 9 requests -> %v; fail_open log lines: lb1 %d, lb2 %d", got, failOpen, failOpen2)
	for k := range got {
		if strings.HasPrefix(k, "ERR") {
			t.Errorf("requests failed while failing open: %v", got)
		}
	}
	if failOpen == 0 {
		t.Errorf("lb1 did not log fail_open\n%s", tail(c.n1.Log(), 10))
	}
	for _, cp := range c.cps {
		cp.SetMode(t, "ok")
	}
	awaitServer(t, c.n1, "kube-apiserver", "cp1", "UP", 3*time.Second)
	if err := lab.WaitFor(2*time.Second, func() error {
		if !strings.Contains(c.n1.Log(), "fail-open episode over") {
			return fmt.Errorf("no 'fail-open episode over' line")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	oneMaster(t, c.vip, c.n1, 2*time.Second, c.n1, c.n2)
}
