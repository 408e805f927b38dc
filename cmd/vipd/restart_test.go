package main

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/control"
)

// fakeRestartDaemon answers POST /v1/restart on a unix socket with res.
func fakeRestartDaemon(t *testing.T, res control.RestartResult) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vipd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/restart" {
			http.NotFound(w, r)
			return
		}
		control.WriteJSON(w, http.StatusOK, res)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// vipd restart exits 0 once the new process runs (and on the planned
// handover of a version skew, saying it is not hitless), 1 on a rollback
// with the reason, and cleans the daemon's text before printing it.
func TestRestartCommand(t *testing.T) {
	for _, tc := range []struct {
		res            control.RestartResult
		code           int
		stdout, stderr string
	}{
		{control.RestartResult{Outcome: control.RestartHandedOver, OldPID: 10, NewPID: 11, Conns: 3, Listeners: 2}, 0, "restarted: pid 10 -> 11", ""},
		{control.RestartResult{Outcome: control.RestartPlanned, Reason: "reads formats 99"}, 0, "not hitless: reads formats 99", ""},
		{control.RestartResult{Outcome: control.RestartRolledBack, Reason: "wait for READY: child exited\x1b[2K"}, 1, "", "rolled back: wait for READY: child exited[2K"},
	} {
		sock := fakeRestartDaemon(t, tc.res)
		code, out, errs := runCLI(t, "restart", "--socket", sock)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) || strings.ContainsRune(out+errs, '\x1b') {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.res.Outcome, code, out, errs, tc.code, tc.stdout, tc.stderr)
		}
	}
}

// Against a vipd that predates the command, vipd restart says so and
// what to do instead.
func TestRestartCommandOldDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vipd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	code, _, errs := runCLI(t, "restart", "--socket", sock)
	if code != 1 || !strings.Contains(errs, "predates") || !strings.Contains(errs, "systemctl restart vipd") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}
