// Package child runs the programs vipd starts on an operator's behalf
// (notify hooks, script trackers) so that none of them can outlive its
// timeout, fill vipd's memory with output, or inherit vipd's privileges.
//
//   - Command puts the program in its own process group and, when its
//     context ends, kills the whole group (a `sh -c 'sleep 7; ...'` does
//     not leave `sleep` behind), and bounds with WaitDelay how long a
//     stray grandchild holding the output pipe can delay Wait.
//   - Tail keeps only the last bytes written to it: a hook printing 400 MB
//     costs a few hundred bytes.
//   - Start forks from a thread whose ambient capability set is cleared,
//     and DropAmbient clears the set of every thread of the process. The
//     shipped unit gives vipd CAP_NET_ADMIN, CAP_NET_RAW and
//     CAP_NET_BIND_SERVICE as ambient capabilities; the ambient set only
//     matters across execve, so clearing it leaves vipd's own effective
//     set as it is, while a child started from vipd gets no capability.
//
// It does not change users or sandbox the child otherwise; the unit's
// NoNewPrivileges=yes means a child cannot gain privileges either (no
// sudo, no setuid helpers).
package child

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// WaitDelay bounds how long a finished (or killed) child's stray
// descendants outside its process group may keep its output open.
const WaitDelay = 500 * time.Millisecond

// Command returns cmd for argv (no shell) in its own process group, killed
// as a group when ctx is done, with WaitDelay set. The caller sets Stdout,
// Stderr and Env, and starts it with Start or Run.
func Command(ctx context.Context, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = WaitDelay
	killProcessGroup(cmd)
	return cmd
}

// Start starts cmd from an OS thread whose ambient capabilities are
// cleared first, so the child inherits none, whether or not DropAmbient
// could clear them process-wide.
func Start(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := clearThreadAmbient(); err != nil {
		return err
	}
	return cmd.Start()
}

// Run is Start followed by Wait.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// ErrNotSupported is returned by DropAmbient where the process-wide
// system call is not available (a cgo or race-detector build, another OS).
var ErrNotSupported = errors.New("child: clearing the ambient capabilities of every thread is not supported in this build")

// Tail is an io.Writer that keeps the last Max bytes written to it.
type Tail struct {
	Max int

	mu  sync.Mutex
	buf []byte
	n   int64
}

// Write keeps the end of p; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	t.n += int64(n)
	if len(p) > t.Max {
		p = p[len(p)-t.Max:]
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.Max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// Written is the number of bytes written in all, kept or not.
func (t *Tail) Written() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Lines returns the last non-empty lines joined by " | ", valid UTF-8.
func (t *Tail) Lines() string {
	t.mu.Lock()
	s := strings.ToValidUTF8(string(t.buf), "?")
	t.mu.Unlock()
	var keep []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, " | ")
}

// Bytes returns a copy of what is kept.
func (t *Tail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.buf)
}

// Successor runs start, which starts a new vipd (a hitless restart's
// binary on disk), from an OS thread whose ambient set holds again every
// capability this process has in both its permitted and inheritable sets:
// the unit gave vipd its capabilities as ambient ones, DropAmbient cleared
// them so hooks get none, and the successor needs them across execve as
// much as this process did. The thread's ambient set is cleared again
// before it is released. Where raising is not possible (root without
// inheritable capabilities, another OS) start runs all the same: root
// needs none.
func Successor(start func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	raiseThreadAmbient()
	defer clearThreadAmbient()
	return start()
}
