package health

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// scriptTail is how much of a script's combined output is kept for
	// Detail.
	scriptTail = 512
	// scriptDetail bounds the output part of Detail.
	scriptDetail = 200
	// scriptWaitDelay bounds how long a finished script's stray children
	// (outside its process group) may hold its output open.
	scriptWaitDelay = 500 * time.Millisecond
)

// ScriptProbe returns a probe that runs argv (no shell) and succeeds when it
// exits 0, like keepalived's track_script. The script runs in its own process
// group; when ctx expires the whole group is killed, so a script that forked
// (sh -c '...; sleep 10') cannot outlive its timeout. Detail holds the exit
// status and the tail of its combined stdout and stderr.
func ScriptProbe(argv []string) Probe {
	argv = slices.Clone(argv)
	return func(ctx context.Context) Result {
		start := time.Now()
		if len(argv) == 0 || argv[0] == "" {
			return Result{At: start, Err: errors.New("health: empty script command"), Detail: "empty command"}
		}
		var out tailBuffer
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = scriptWaitDelay
		killProcessGroup(cmd)
		err := cmd.Run()
		tail := out.lines()
		if err == nil {
			return Result{OK: true, Latency: time.Since(start), At: start, Detail: joinDetail("exit 0", tail)}
		}
		if ctx.Err() != nil {
			r := failure(ctx, start, err)
			r.Detail = joinDetail(r.Detail+" (killed)", tail)
			return r
		}
		r := Result{Err: err, Latency: time.Since(start), At: start}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.Detail = joinDetail(ee.String(), tail) // "exit status 1", "signal: killed"
		} else {
			r.Detail = err.Error() // not found, not executable
		}
		return r
	}
}

func joinDetail(status, tail string) string {
	if tail == "" {
		return status
	}
	return status + ": " + tail
}

// tailBuffer keeps the last scriptTail bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) > scriptTail {
		p = p[len(p)-scriptTail:]
	}
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - scriptTail; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return n, nil
}

// lines returns the last non-empty output lines joined by " | ", shortened
// to scriptDetail bytes.
func (b *tailBuffer) lines() string {
	b.mu.Lock()
	s := strings.ToValidUTF8(string(b.buf), "?")
	b.mu.Unlock()
	var keep []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
		}
	}
	return shorten(strings.Join(keep, " | "), scriptDetail)
}
