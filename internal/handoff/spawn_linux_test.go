//go:build linux

package handoff

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// start starts the test binary running script as a child.
func start(t *testing.T, ctx context.Context, script string, s Spawn, env ...string) (*Child, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s.Path, s.Args = exe, []string{exe}
	// A child built with -race sleeps 1s at exit unless told not to.
	s.Env = append(append(os.Environ(), scriptEnv+"="+script, "GORACE=atexit_sleep_ms=0"), env...)
	s.Stderr = os.Stderr
	c, err := Start(ctx, s)
	if c != nil {
		t.Cleanup(func() { c.Abort() })
	}
	return c, err
}

// within fails the test when f took longer than limit: an upper bound
// only, so that a loaded machine cannot make it flaky the other way.
func within(t *testing.T, limit time.Duration, what string, f func()) {
	t.Helper()
	begin := time.Now()
	f()
	if d := time.Since(begin); d > limit {
		t.Errorf("%s took %v, want under %v", what, d, limit)
	}
}

// children returns the pids of this process's children, zombies included.
func children(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil || len(paths) == 0 {
		t.Skip("SKIP: /proc/self/task/*/children unavailable")
	}
	var pids []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread is gone
		}
		pids = append(pids, strings.Fields(string(b))...)
	}
	return pids
}

// noChildren fails when a child of this process (even a zombie) is left.
func noChildren(t *testing.T) {
	t.Helper()
	if pids := children(t); len(pids) > 0 {
		t.Errorf("children left: %v", pids)
	}
}

// awaitExit waits for the child to exit by itself and returns its code.
func awaitExit(t *testing.T, c *Child) int {
	t.Helper()
	select {
	case <-c.exited:
		return c.state.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatalf("child %d still runs after 10s", c.PID())
		return -1
	}
}

func TestStartChildExitsAtOnce(t *testing.T) {
	var err error
	within(t, 5*time.Second, "Start", func() {
		_, err = start(t, t.Context(), "exit", Spawn{HelloTimeout: 20 * time.Second})
	})
	if !errors.Is(err, ErrChildExited) {
		t.Fatalf("Start = %v, want ErrChildExited", err)
	}
	var ee *ExitError
	if !errors.As(err, &ee) || ee.State.ExitCode() != 3 || ee.Phase != "HELLO" {
		t.Errorf("Start = %#v, want *ExitError with exit code 3 while waiting for HELLO", err)
	}
	noChildren(t)
}

func TestStartHelloTimeout(t *testing.T) {
	var err error
	within(t, 2*time.Second, "Start with a 300ms HELLO deadline", func() {
		_, err = start(t, t.Context(), "hang-hello", Spawn{HelloTimeout: 300 * time.Millisecond})
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Start = %v, want ErrTimeout", err)
	}
	noChildren(t)
}

func TestStartContextCanceled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var err error
	within(t, 2*time.Second, "Start with a context of 200ms", func() {
		_, err = start(t, ctx, "hang-hello", Spawn{HelloTimeout: 20 * time.Second})
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want context.DeadlineExceeded", err)
	}
	noChildren(t)
}

func TestStartGarbage(t *testing.T) {
	var err error
	within(t, 5*time.Second, "Start", func() {
		_, err = start(t, t.Context(), "garbage", Spawn{HelloTimeout: 20 * time.Second})
	})
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Start = %v, want ErrMalformed", err)
	}
	noChildren(t)
}

func TestStartWrongPID(t *testing.T) {
	_, err := start(t, t.Context(), "wrong-pid", Spawn{HelloTimeout: 20 * time.Second})
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("Start = %v, want ErrProtocol", err)
	}
	noChildren(t)
}

// TestStartGrandchildHoldsSocket: the child exits but a grandchild keeps
// its end of the socket open, so no EOF comes; the exit is still seen at
// once.
func TestStartGrandchildHoldsSocket(t *testing.T) {
	var err error
	within(t, 5*time.Second, "Start", func() {
		_, err = start(t, t.Context(), "grandchild", Spawn{HelloTimeout: 20 * time.Second})
	})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.State.ExitCode() != 6 {
		t.Fatalf("Start = %v, want *ExitError with exit code 6", err)
	}
	noChildren(t)
}

func TestChildExitsAfterState(t *testing.T) {
	c, err := start(t, t.Context(), "exit-at-state", Spawn{ReadyTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(Version, []byte("{}"), nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	within(t, 5*time.Second, "AwaitReady", func() { err = c.AwaitReady(t.Context()) })
	var ee *ExitError
	if !errors.As(err, &ee) || ee.State.ExitCode() != 5 || ee.Phase != "READY" {
		t.Fatalf("AwaitReady = %v, want *ExitError with exit code 5 while waiting for READY", err)
	}
	if err := c.Abort(); err != nil {
		t.Errorf("Abort after the exit: %v", err)
	}
	noChildren(t)
}

func TestChildRefuses(t *testing.T) {
	c, err := start(t, t.Context(), "refuse", Spawn{ReadyTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(Version, nil, nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	within(t, 5*time.Second, "AwaitReady", func() { err = c.AwaitReady(t.Context()) })
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "invalid advert_interval") {
		t.Fatalf("AwaitReady = %v, want ErrRefused with the child's reason", err)
	}
	c.Abort()
	noChildren(t)
}

func TestAwaitRunningTimeout(t *testing.T) {
	c, err := start(t, t.Context(), "hang-running", Spawn{RunningTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Go(); !errors.Is(err, ErrProtocol) {
		t.Errorf("Go before READY = %v, want ErrProtocol", err)
	}
	if err := c.Send(Version, make([]byte, MaxBody+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Send of MaxBody+1 bytes = %v, want ErrTooLarge", err)
	}
	if err := c.Send(Version, []byte("{}"), nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := c.AwaitReady(t.Context()); err != nil {
		t.Fatalf("AwaitReady: %v", err)
	}
	if err := c.Go(); err != nil {
		t.Fatalf("Go: %v", err)
	}
	within(t, 2*time.Second, "AwaitRunning with a 300ms deadline", func() { err = c.AwaitRunning(t.Context()) })
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("AwaitRunning = %v, want ErrTimeout", err)
	}
	within(t, 2*time.Second, "Abort", func() { err = c.Abort() })
	if err != nil {
		t.Errorf("Abort: %v", err)
	}
	if code := c.state.ExitCode(); code != -1 || !strings.Contains(c.state.String(), "killed") {
		t.Errorf("child state %v, want killed", c.state)
	}
	noChildren(t)
}

// TestChildSendsFiles: descriptors from a child are a protocol error, and
// closed.
func TestChildSendsFiles(t *testing.T) {
	c, err := start(t, t.Context(), "files-back", Spawn{})
	if err != nil {
		t.Fatal(err)
	}
	before := countFDs(t)
	if err := c.Send(Version, nil, nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := c.AwaitReady(t.Context()); !errors.Is(err, ErrProtocol) {
		t.Fatalf("AwaitReady = %v, want ErrProtocol", err)
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d descriptors open after the child sent two, %d before", after, before)
	}
	c.Abort()
	noChildren(t)
}

// TestVersionRefusal: a child that reads only a newer format is refused;
// it runs on once the parent's end closes.
func TestVersionRefusal(t *testing.T) {
	c, err := start(t, t.Context(), "old-format", Spawn{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Hello().Reads(Version) {
		t.Fatalf("Hello %+v reads %d", c.Hello(), Version)
	}
	if err := c.Send(Version, nil, nil); !errors.Is(err, ErrVersion) {
		t.Errorf("Send = %v, want ErrVersion", err)
	}
	if err := c.Refuse("no common format"); err != nil {
		t.Fatalf("Refuse: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if code := awaitExit(t, c); code != 0 {
		t.Errorf("child exit code %d, want 0 (7: no REFUSE seen)", code)
	}
	noChildren(t)
}

// handoff runs a whole handoff with the good child: a body of n bytes and
// pairs pipe pairs, whose ends it checks on both sides.
func handoff(t *testing.T, n, pairs int) {
	t.Helper()
	c, err := start(t, t.Context(), "good", Spawn{}, bodyEnv+"="+strconv.Itoa(n), pairsEnv+"="+strconv.Itoa(pairs))
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Hello(); h.PID != c.PID() || h.BinaryVersion != "test" || !h.Reads(Version) {
		t.Errorf("Hello = %+v, want pid %d, version test, reads %d", h, c.PID(), Version)
	}
	files := make([]*os.File, 0, 2*pairs)
	for i := range pairs {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		if _, err := w.Write(token('p', i)); err != nil {
			t.Fatal(err)
		}
		files = append(files, r, w)
	}
	if err := c.Send(Version, pattern(n), files); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := c.AwaitReady(t.Context()); err != nil {
		t.Fatalf("AwaitReady: %v", err)
	}
	for i := range pairs {
		got := make([]byte, 8)
		files[2*i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := files[2*i].Read(got); err != nil || !bytes.Equal(got, token('c', i)) {
			t.Fatalf("pair %d: read %q, %v; want %q", i, got, err, token('c', i))
		}
	}
	if err := c.Go(); err != nil {
		t.Fatalf("Go: %v", err)
	}
	if err := c.AwaitRunning(t.Context()); err != nil {
		t.Fatalf("AwaitRunning: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if code := awaitExit(t, c); code != 0 {
		t.Errorf("child exit code %d, want 0", code)
	}
	for _, f := range files {
		f.Close()
	}
}

func TestHandoff(t *testing.T) {
	tests := []struct {
		name     string
		n, pairs int
	}{
		{"nothing", 0, 0},
		{"small", 100, 1},
		{"chunks", 3*MaxChunk + 17, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handoff(t, tt.n, tt.pairs)
			noChildren(t)
		})
	}
}

// TestHandoffMaxBody streams the largest body.
func TestHandoffMaxBody(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: 64 MiB under -short")
	}
	begin := time.Now()
	handoff(t, MaxBody, 0)
	t.Logf("handoff of a %d MiB body: %v", MaxBody>>20, time.Since(begin))
}

// countFDs returns how many descriptors this process has open.
func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestHandoff2000Files passes 2,000 descriptors (1,000 pipes): each is
// the same open pipe on the other side, and the parent's descriptor count
// is back where it started once the child exited.
func TestHandoff2000Files(t *testing.T) {
	handoff(t, 0, 1) // warm-up: the runtime opens some descriptors once
	before := countFDs(t)
	begin := time.Now()
	handoff(t, 1<<20, 1000)
	t.Logf("handoff of 2000 files and 1 MiB: %v", time.Since(begin))
	deadline := time.Now().Add(5 * time.Second)
	for countFDs(t) != before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the count, with a deadline
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d descriptors open after the handoff, %d before", after, before)
	}
	noChildren(t)
}
