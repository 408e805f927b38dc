package health_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/health"
)

func needSh(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"sh", "sleep"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIP: %s not found: %v", bin, err)
		}
	}
}

func TestScriptProbe(t *testing.T) {
	needSh(t)
	tests := []struct {
		name string
		argv []string
		want outcome
	}{
		{"exit 0", []string{"sh", "-c", "echo all good"}, outcome{OK: true, Detail: "exit 0: all good"}},
		{"exit 0 silent", []string{"true"}, outcome{OK: true, Detail: "exit 0"}},
		{"exit 1 with stderr", []string{"sh", "-c", "echo checking; echo 'apiserver not ready' >&2; exit 1"},
			outcome{OK: false, Detail: "exit status 1: checking | apiserver not ready"}},
		{"long output keeps the tail", []string{"sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; exit 3"},
			outcome{OK: false, Detail: "line 198 | line 199"}},
		{"not found", []string{"/nonexistent/check"}, outcome{OK: false, Detail: "no such file or directory"}},
		{"empty", nil, outcome{OK: false, Detail: "empty command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := runProbe(t, health.ScriptProbe(tt.argv))
			checkOutcome(t, tt.want, r)
			if len(r.Detail) > 250 {
				t.Errorf("Detail is %d bytes, want a short tail: %q", len(r.Detail), r.Detail)
			}
		})
	}
}

// TestScriptProbeTimeoutKillsGroup runs a script whose child would sleep for
// 10 s: at the timeout the whole process group must die, fast.
func TestScriptProbeTimeoutKillsGroup(t *testing.T) {
	needSh(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	p := health.ScriptProbe([]string{"sh", "-c", `sleep 10 & echo $! > "$1"; echo waiting for apiserver >&2; wait`, "sh", pidFile})
	r, took := runProbe(t, p)
	checkOutcome(t, outcome{OK: false, Detail: "timeout after 300ms (killed): waiting for apiserver"}, r)
	if took > probeTimeout+scriptSlack {
		t.Errorf("probe took %v, want at most %v", took, probeTimeout+scriptSlack)
	}
	if !errors.Is(r.Err, health.ErrTimeout) {
		t.Errorf("Err = %v, want it to wrap ErrTimeout", r.Err)
	}

	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("SKIP: no /proc to check the child")
	}
	// The child is reparented when sh dies; it is dead once gone or a
	// zombie. Poll with a deadline, well under the child's 10 s.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !dead(pid) {
		select {
		case <-ctx.Done():
			t.Fatalf("child sleep (pid %d) still alive after the probe timed out", pid)
		case <-tick.C:
		}
	}
}

// scriptSlack is how long past its timeout a killed script may take.
const scriptSlack = time.Second

func dead(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func TestScriptProbeCopiesArgv(t *testing.T) {
	needSh(t)
	argv := []string{"sh", "-c", "exit 0"}
	p := health.ScriptProbe(argv)
	argv[2] = "exit 1"
	r, _ := runProbe(t, p)
	if diff := cmp.Diff(outcome{OK: true, Detail: "exit 0"}, outcome{OK: r.OK, Detail: r.Detail}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
