package integration

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// TestOneInterruptHandsOver: one Ctrl-C (SIGINT) on the master is one
// terminal signal: it hands the VIP over with priority 0, never "second
// terminal signal: stopping now". With the signal registered twice (main's
// NotifyContext and run's Notify) both copies arrived and the second
// turned the handover into a hard stop.
func TestOneInterruptHandsOver(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	if err := p.n1.Stop(syscall.SIGINT, 5*time.Second); err != nil {
		t.Fatalf("vipd exited with %v after one SIGINT, want 0\n%s", err, p.n1.Log())
	}
	log := p.n1.Log()
	if strings.Contains(log, "second terminal signal") {
		t.Errorf("one SIGINT was taken for two:\n%s", log)
	}
	if n := strings.Count(log, "stopping: handing the VIP over first"); n != 1 {
		t.Errorf("one SIGINT was seen %d times:\n%s", n, log)
	}
	if !strings.Contains(log, "shutdown: new master") {
		t.Errorf("no priority-0 handover after SIGINT:\n%s", log)
	}
	p.n2.AwaitState("MASTER", 2*time.Second)
	st, err := p.n2.Status()
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Instances[0].LastReason; !strings.Contains(r, "priority 0") {
		t.Errorf("lb2 took over for %q, want the priority-0 advert", r)
	}
}
