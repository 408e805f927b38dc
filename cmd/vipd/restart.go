package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/daemon"
	"github.com/vipd/vipd/internal/safetext"
)

// restartTimeout bounds `vipd restart`: the new process's hello, READY
// and RUNNING deadlines (10 s, 10 s, 2 s) and then some.
const restartTimeout = 60 * time.Second

// cmdRestart asks the daemon for a hitless restart and prints the outcome:
// exit 0 once the new process runs (or, on version skew, once the planned
// handover started), 1 on a rollback or a refusal, with the reason.
func cmdRestart(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("restart", stderr)
	sock := clientFlags(fs)
	out := fs.String("o", "table", "output: table or json")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	path, err := sock()
	if err != nil {
		return fail(stderr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, restartTimeout)
	defer cancel()
	res, err := control.NewClient(path).Restart(ctx)
	if err != nil && strings.Contains(err.Error(), "404") {
		// A daemon older than vipd restart: its mux knows no such route.
		err = fmt.Errorf("%w: the running vipd predates `vipd restart`; restart it the planned way (systemctl restart vipd: the backup holds the VIP meanwhile)", err)
	}
	if err != nil {
		return fail(stderr, err)
	}
	if *out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		switch res.Outcome {
		case control.RestartHandedOver:
			fmt.Fprintf(stdout, "restarted: pid %d -> %d in %.0f ms (loops frozen %.0f ms), %d connections and %d listeners handed over\n",
				res.OldPID, res.NewPID, res.TookMs, res.FrozenMs, res.Conns, res.Listeners)
		case control.RestartPlanned:
			fmt.Fprintf(stdout, "not hitless: %s\n", safetext.Clean(res.Reason))
		default:
			fmt.Fprintf(stderr, "vipd restart rolled back: %s\n", safetext.Clean(res.Reason))
		}
	}
	if res.Outcome == control.RestartRolledBack {
		return 1
	}
	return 0
}

// restartEnv reads the daemon's restart settings from the environment
// when it starts: VIPD_RESTART_EXEC names the binary a restart starts
// instead of this one's (test-only: the integration tests point it at a
// wrapper that exits or hangs), VIPD_HANDOFF_FORMATS the state formats
// this binary claims to read (test-only: "99" makes a version skew).
func restartEnv(o *daemon.Options) error {
	if exe := os.Getenv("VIPD_RESTART_EXEC"); exe != "" {
		o.Exec = exe
	}
	if v := os.Getenv("VIPD_HANDOFF_FORMATS"); v != "" {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil {
				return fmt.Errorf("VIPD_HANDOFF_FORMATS=%q: %v", v, err)
			}
			o.Formats = append(o.Formats, uint16(n))
		}
	}
	return nil
}
