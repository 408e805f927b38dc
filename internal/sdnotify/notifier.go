package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sendTimeout bounds one send: systemd reads its socket at once, so a send
// that blocks means systemd is wedged, and the caller must not be.
const sendTimeout = time.Second

// Notifier sends notify messages to one socket. Its methods are safe for
// concurrent use; a nil Notifier does nothing and returns nil.
type Notifier struct {
	addr *net.UnixAddr

	mu   sync.Mutex
	conn *net.UnixConn // nil after a failure; reopened on the next send
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil and no error when
// the variable is unset or empty. It unsets the variable, so that programs
// the daemon runs (hooks, scripts) do not inherit it: with
// NotifyAccess=main systemd would ignore them, with NotifyAccess=all they
// could speak for the daemon.
func FromEnv() (*Notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	return New(path)
}

// New opens a Notifier for the socket at path: an absolute file name, or
// an abstract socket name starting with '@'.
func New(path string) (*Notifier, error) {
	if path == "" || (path[0] != '/' && path[0] != '@') {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET=%q: want an absolute path or an abstract name starting with @", path)
	}
	n := &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
	c, err := open()
	if err != nil {
		return nil, fmt.Errorf("sdnotify: %w", err)
	}
	n.conn = c
	return n, nil
}

// Addr is the socket's name as given (for handing it to a successor
// process).
func (n *Notifier) Addr() string {
	if n == nil {
		return ""
	}
	return n.addr.Name
}

// Notify sends one message made of the given assignments ("READY=1",
// "STATUS=..."), joined by newlines. A newline inside an assignment would
// start another one, so it is replaced by a space.
func (n *Notifier) Notify(assignments ...string) error {
	if n == nil || len(assignments) == 0 {
		return nil
	}
	lines := make([]string, len(assignments))
	for i, a := range assignments {
		lines[i] = strings.ReplaceAll(a, "\n", " ")
	}
	msg := []byte(strings.Join(lines, "\n"))
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		c, err := open()
		if err != nil {
			return fmt.Errorf("sdnotify: reopen: %w", err)
		}
		n.conn = c
	}
	n.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err := n.conn.WriteToUnix(msg, n.addr)
	if err != nil && broken(err) {
		// Start afresh next time. Other errors (systemd not listening,
		// its queue full, no memory) say nothing about our socket.
		n.conn.Close()
		n.conn = nil
	}
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// broken reports whether err means our own socket is unusable.
func broken(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.ENOTSOCK)
}

// Ready sends READY=1 with a status line.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1", "STATUS="+status)
}

// Status sends a STATUS= line (what `systemctl status` shows).
func (n *Notifier) Status(status string) error { return n.Notify("STATUS=" + status) }

// Stopping sends STOPPING=1 with a status line.
func (n *Notifier) Stopping(status string) error {
	return n.Notify("STOPPING=1", "STATUS="+status)
}

// Watchdog sends WATCHDOG=1.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// MainPID tells systemd that pid is now the service's main process (a
// successor that took over the sockets). With NotifyAccess=main only that
// process may notify afterwards.
func (n *Notifier) MainPID(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("sdnotify: MAINPID=%d: want a process id", pid)
	}
	return n.Notify("MAINPID=" + strconv.Itoa(pid))
}

// Close releases the socket. Later messages reopen it.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// WatchdogFromEnv returns how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, or 0 (no watchdog) when it is unset, invalid or meant
// for another process ($WATCHDOG_PID). It unsets both variables, so that
// children do not inherit them.
func WatchdogFromEnv() time.Duration {
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if pid != "" {
		if p, err := strconv.Atoi(pid); err != nil || p != os.Getpid() {
			return 0
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0
	}
	return time.Duration(u) * time.Microsecond / 2
}
