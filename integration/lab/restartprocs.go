//go:build linux

package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process helpers for the restart benchmark: a hitless restart replaces
// the process the lab started with one it did not (the old daemon starts
// the new one and exits), so the new one is found in /proc by its argv and
// stopped by PID in the cleanup.

// FDCount is the number of open fds of pid, -1 when unreadable.
func FDCount(pid int) int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(es)
}

// RSSKiB is the resident set of pid in KiB (VmRSS), -1 when unreadable.
func RSSKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(ln, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return -1
}

// Alive reports whether pid runs and is not a zombie.
func Alive(pid int) bool { return pid > 0 && !zombie(pid) }

// cmdline is pid's argv, nil when unreadable.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
}

// isNodeProc reports whether pid is a live vipd process of node n (its
// argv names n's binary, config and node).
func (n *Node) isNodeProc(pid int) bool {
	a := cmdline(pid)
	if len(a) < 6 || !Alive(pid) {
		return false
	}
	return a[0] == n.bin && a[1] == "run" && a[3] == n.Config && a[5] == n.Name
}

// NodePids lists the live vipd processes of node n.
func (n *Node) NodePids() []int {
	es, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range es {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && n.isNodeProc(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// RestartTracker runs `vipd restart` on a node and follows its PID.
type RestartTracker struct {
	n     *Node
	mu    sync.Mutex
	pid   int // the node's current process
	onNew func(pid int)
}

// TrackRestarts follows n across hitless restarts; every process it saw
// is SIGKILLed in the cleanup if it still runs as n.
func TrackRestarts(t testing.TB, n *Node) *RestartTracker {
	r := &RestartTracker{n: n, pid: n.Pid()}
	seen := []int{n.Pid()}
	var smu sync.Mutex
	t.Cleanup(func() {
		smu.Lock()
		defer smu.Unlock()
		for _, p := range append(seen, n.NodePids()...) {
			if n.isNodeProc(p) {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
	r.onNew = func(p int) { smu.Lock(); seen = append(seen, p); smu.Unlock() }
	return r
}

// Pid is the node's current process.
func (r *RestartTracker) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid
}

// Restart runs `vipd restart --socket S` (60 s at most), then waits for
// the old process to be gone and one new one to run. It returns the
// command's duration, or an error with its output when it failed.
func (r *RestartTracker) Restart() (time.Duration, error) {
	old := r.Pid()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, r.n.bin, "restart", "--socket", r.n.Socket).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("vipd restart: %v: %s", err, strings.TrimSpace(string(out)))
	}
	var now []int
	werr := WaitFor(10*time.Second, func() error {
		now = r.n.NodePids()
		if len(now) != 1 || now[0] == old {
			return fmt.Errorf("node %s processes %v (old %d)", r.n.Name, now, old)
		}
		return nil
	})
	if werr != nil {
		return took, fmt.Errorf("after vipd restart (%s): %w", strings.TrimSpace(string(out)), werr)
	}
	r.mu.Lock()
	r.pid = now[0]
	r.mu.Unlock()
	r.onNew(now[0])
	return took, nil
}

// ReloadHAProxy starts a new HAProxy with old's configuration that takes
// old's listeners over its stats socket (-x) and soft-stops it (-sf), as
// a seamless reload does; old keeps running until its connections end.
func (l *Lab) ReloadHAProxy(t testing.TB, old *Proc, statsSock string, gen int) *Proc {
	t.Helper()
	cfg := ""
	for i, a := range old.argv {
		if a == "-f" && i+1 < len(old.argv) {
			cfg = old.argv[i+1]
		}
	}
	p := &Proc{t: t, Host: old.Host, Name: fmt.Sprintf("%s-%d", old.Name, gen),
		LogPath: filepath.Join(filepath.Dir(old.LogPath), fmt.Sprintf("haproxy-%d.log", gen)),
		argv:    []string{HAProxyBin, "-db", "-f", cfg, "-x", statsSock, "-sf", strconv.Itoa(old.Pid())}}
	p.Start()
	t.Cleanup(func() { p.Kill() })
	return p
}
