package hooks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/config"
)

// syncBuf is a log sink safe for the worker goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newRunner(t *testing.T) (*Runner, *syncBuf) {
	var log syncBuf
	return New(zerolog.New(&log).Level(zerolog.DebugLevel)), &log
}

func wait(t *testing.T, r *Runner, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.Wait(ctx); err != nil {
		t.Fatalf("hooks still running after %s", d)
	}
}

func states(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = [...]string{"BACKUP", "MASTER", "FAULT"}[i%3]
	}
	return out
}

// TestOrderAndEnvironment: 30 transitions delivered at once reach a hook
// whose run time varies in their order, each with its sequence number,
// time, instance, states and priority in the environment and keepalived's
// argv (issue 9, defect 3: one goroutine per hook let a later BACKUP
// overtake an earlier MASTER).
func TestOrderAndEnvironment(t *testing.T) {
	r, log := newRunner(t)
	out := filepath.Join(t.TempDir(), "hooks")
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("VIPD_SEQ", "999")
	cfg := &config.Notify{Command: []string{"/bin/sh", "-c",
		`sleep 0.00$(( $VIPD_SEQ % 7 )); echo "$VIPD_SEQ|$VIPD_TIME|$VIPD_INSTANCE|$VIPD_PREV_STATE|$VIPD_STATE|$VIPD_PRIORITY|$*|${NOTIFY_SOCKET:-unset}" >> ` + out, "hook"}}
	base := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	want := []string{}
	prev := "INIT"
	for i, s := range states(30) {
		at := base.Add(time.Duration(i) * time.Millisecond)
		r.Deliver(cfg, Transition{Instance: "vrid-51", From: prev, To: s, Priority: 100 + i, At: at})
		want = append(want, fmt.Sprintf("%d|%s|vrid-51|%s|%s|%d|vrid-51 %s %d|unset", i+1, at.Format(time.RFC3339Nano), prev, s, 100+i, s, 100+i))
		prev = s
	}
	wait(t, r, 10*time.Second)
	b, _ := os.ReadFile(out)
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hook runs:\n%s\nwant:\n%s\nlog:\n%s", b, strings.Join(want, "\n"), log)
	}
}

// TestTimeoutKillsGroup: a hook that sleeps past its timeout is killed
// with its group at the timeout, and the next hook runs right after
// (issue 9, defect 3: `sleep` survived and the goroutine returned after
// 7 s).
func TestTimeoutKillsGroup(t *testing.T) {
	r, log := newRunner(t)
	dir := t.TempDir()
	pidFile, next := filepath.Join(dir, "pid"), filepath.Join(dir, "next")
	slow := &config.Notify{Command: []string{"/bin/sh", "-c", "sleep 7 & echo $! > " + pidFile + "; wait; echo late >> " + next}, Timeout: 300 * time.Millisecond}
	fast := &config.Notify{Command: []string{"/bin/sh", "-c", "echo next >> " + next}}
	start := time.Now()
	r.Deliver(slow, Transition{Instance: "vrid-51", From: "BACKUP", To: "MASTER", Priority: 150, At: start})
	r.Deliver(fast, Transition{Instance: "vrid-51", From: "MASTER", To: "BACKUP", Priority: 150, At: start})
	wait(t, r, 5*time.Second)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("both hooks took %s; the slow one should be killed at 300ms", took)
	}
	if b, _ := os.ReadFile(next); string(b) != "next\n" {
		t.Errorf("after the killed hook: %q, want only the next hook's line", b)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); pid <= 0 || err == nil && !zombie(pid) {
		t.Errorf("the hook's sleep (pid %d) is still running", pid)
	}
	if !strings.Contains(log.String(), "notify command killed at its timeout") {
		t.Errorf("no timeout warning in the log:\n%s", log)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}

// TestOutputBounded: a hook that writes 400 MB leaves a log line of at
// most 512 bytes of output and no heap to match (it reached 897 MiB).
func TestOutputBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: pipes 400 MB")
	}
	r, log := newRunner(t)
	cfg := &config.Notify{Command: []string{"/bin/sh", "-c", "head -c 400000000 /dev/zero | tr '\\0' x; echo; echo failing; exit 3"}, Timeout: 20 * time.Second}
	r.Deliver(cfg, Transition{Instance: "vrid-51", From: "BACKUP", To: "MASTER", Priority: 150, At: time.Now()})
	wait(t, r, 30*time.Second)
	line := log.String()
	if !strings.Contains(line, "notify command failed") || !strings.Contains(line, "failing") {
		t.Fatalf("log: %.300s", line)
	}
	if len(line) > 2048 {
		t.Errorf("log line of %d bytes for a hook's output", len(line))
	}
}

// TestQueueFull: while a hook hangs, transitions beyond QueueSize push
// out the oldest waiting ones; the newest is delivered, the drop logged.
func TestQueueFull(t *testing.T) {
	r, log := newRunner(t)
	dir := t.TempDir()
	gate, out := filepath.Join(dir, "gate"), filepath.Join(dir, "out")
	cfg := &config.Notify{Command: []string{"/bin/sh", "-c",
		`while [ ! -e ` + gate + ` ]; do sleep 0.01; done; echo $VIPD_SEQ >> ` + out}, Timeout: 10 * time.Second}
	for i := range QueueSize + 11 {
		r.Deliver(cfg, Transition{Instance: "vrid-51", From: "BACKUP", To: "MASTER", Priority: i, At: time.Now()})
		for i == 0 && queued(r) > 0 { // until the first one runs
			time.Sleep(time.Millisecond)
		}
	}
	os.WriteFile(gate, nil, 0o644)
	wait(t, r, 20*time.Second)
	b, _ := os.ReadFile(out)
	got := strings.Fields(string(b))
	if len(got) != QueueSize+1 || got[0] != "1" || got[1] != "12" || got[len(got)-1] != strconv.Itoa(QueueSize+11) {
		t.Errorf("delivered seqs %v: want 1 (already running), then 12..%d", got, QueueSize+11)
	}
	if !strings.Contains(log.String(), `"dropped":10`) {
		t.Errorf("no drop warning:\n%s", log)
	}
}

func queued(r *Runner) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

// TestDefaultTimeout: without a timeout a hook gets config's default, the
// one the docs name (it was 10 s here and 5 s in config).
func TestDefaultTimeout(t *testing.T) {
	r, _ := newRunner(t)
	r.Deliver(&config.Notify{Command: []string{"true"}}, Transition{To: "MASTER"})
	r.mu.Lock()
	var got time.Duration
	if len(r.queue) > 0 {
		got = r.queue[0].timeout
	}
	r.mu.Unlock()
	wait(t, r, 5*time.Second)
	if got != 0 && got != config.DefaultNotifyTimeout {
		t.Errorf("timeout %s, want %s", got, config.DefaultNotifyTimeout)
	}
	r.Deliver(nil, Transition{To: "MASTER"})              // no [notify]: nothing
	r.Deliver(&config.Notify{}, Transition{To: "MASTER"}) // no command: nothing
	if err := r.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
