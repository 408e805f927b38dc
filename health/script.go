package health

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/child"
)

const (
	// scriptTail is how much of a script's combined output is kept for
	// Detail.
	scriptTail = 512
	// scriptDetail bounds the output part of Detail.
	scriptDetail = 200
)

// ScriptProbe returns a probe that runs argv (no shell) and succeeds when it
// exits 0, like keepalived's track_script. The script runs in its own process
// group; when ctx expires the whole group is killed, so a script that forked
// (sh -c '...; sleep 10') cannot outlive its timeout. It inherits none of
// vipd's ambient capabilities (internal/child). Detail holds the exit
// status and the tail of its combined stdout and stderr.
func ScriptProbe(argv []string) Probe {
	argv = slices.Clone(argv)
	return func(ctx context.Context) Result {
		start := time.Now()
		if len(argv) == 0 || argv[0] == "" {
			return Result{At: start, Err: errors.New("health: empty script command"), Detail: "empty command"}
		}
		out := &child.Tail{Max: scriptTail}
		cmd := child.Command(ctx, argv)
		cmd.Stdout, cmd.Stderr = out, out
		err := child.Run(cmd)
		tail := shorten(out.Lines(), scriptDetail)
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
