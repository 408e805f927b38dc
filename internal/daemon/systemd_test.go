package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/control"
)

// notifySocket listens on a unixgram socket and sets NOTIFY_SOCKET to it.
func notifySocket(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return c
}

// recv reads one datagram, or fails after timeout.
func recv(t *testing.T, c *net.UnixConn, timeout time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(timeout))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %s: %v", timeout, err)
	}
	return string(buf[:n])
}

// recvUntil reads datagrams until one satisfies ok, bounded by timeout.
func recvUntil(t *testing.T, c *net.UnixConn, timeout time.Duration, what string, ok func(string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []string
	buf := make([]byte, 4096)
	for range 10000 {
		c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no %s within %s (got %q): %v", what, timeout, seen, err)
		}
		seen = append(seen, string(buf[:n]))
		if ok(string(buf[:n])) {
			return seen
		}
	}
	t.Fatalf("no %s in %q", what, seen)
	return nil
}

func TestSDNotifyPath(t *testing.T) {
	sock := notifySocket(t, filepath.Join(t.TempDir(), "notify"))
	n, err := newSDNotifier()
	if err != nil || n == nil {
		t.Fatalf("newSDNotifier() = %v, %v", n, err)
	}
	if v, set := os.LookupEnv("NOTIFY_SOCKET"); set {
		t.Errorf("NOTIFY_SOCKET=%q still set; children would inherit it", v)
	}
	if err := n.notify("READY=1\nSTATUS=hello"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, sock, 2*time.Second); got != "READY=1\nSTATUS=hello" {
		t.Errorf("got %q", got)
	}
}

func TestSDNotifyAbstract(t *testing.T) {
	name := fmt.Sprintf("@vipd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	sock := notifySocket(t, name)
	n, err := newSDNotifier()
	if err != nil || n == nil {
		t.Fatalf("newSDNotifier() = %v, %v", n, err)
	}
	if err := n.notify("WATCHDOG=1"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, sock, 2*time.Second); got != "WATCHDOG=1" {
		t.Errorf("got %q", got)
	}
}

func TestSDNotifyUnsetOrBad(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if n, err := newSDNotifier(); n != nil || err != nil {
		t.Errorf("unset: newSDNotifier() = %v, %v; want nil, nil", n, err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/notify")
	if _, err := newSDNotifier(); err == nil {
		t.Error("relative path: want an error")
	}
	// Nobody listens: notify fails, it does not block or panic.
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody"))
	n, err := newSDNotifier()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.notify("READY=1"); err == nil {
		t.Error("notify to a missing socket: want an error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := fmt.Sprint(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"10000000", "", 5 * time.Second},
		{"10000000", self, 5 * time.Second},
		{"10000000", "1", 0}, // meant for another process
		{"", "", 0},
		{"0", "", 0},
		{"ten", "", 0},
		{"3000000", self, 1500 * time.Millisecond},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		if got := watchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %s, want %s", tc.usec, tc.pid, got, tc.want)
		}
		if _, set := os.LookupEnv("WATCHDOG_USEC"); set {
			t.Error("WATCHDOG_USEC still set")
		}
	}
}

func servers(states ...string) []control.Server {
	var out []control.Server
	for i, s := range states {
		out = append(out, control.Server{Name: fmt.Sprintf("cp%d", i+1), State: s})
	}
	return out
}

func TestStatusLine(t *testing.T) {
	for _, tc := range []struct {
		st   control.Status
		want string
	}{
		{control.Status{
			Instances: []control.Instance{{State: "MASTER", VRID: 51, Priority: 150, EffectivePriority: 150}},
			Backends:  []control.Backend{{Name: "kube-apiserver", Servers: servers("UP", "UP", "UP")}},
		}, "MASTER vrid 51, 3/3 servers up"},
		{control.Status{
			Instances: []control.Instance{{State: "BACKUP", VRID: 51, Priority: 150, EffectivePriority: 90, MasterAddr: "192.168.30.22"}},
			Backends: []control.Backend{
				{Name: "kube-apiserver", Servers: servers("UP", "DOWN", "DRAIN")},
				{Name: "talos", Servers: servers("UP", "UP", "UP")},
			},
		}, "BACKUP vrid 51 (priority 90 of 150) (master 192.168.30.22), kube-apiserver 1/3 up, talos 3/3 up"},
		{control.Status{
			Backends: []control.Backend{{Name: "kube-apiserver", Servers: servers("UP", "MAINT")}},
		}, "single LB, 1/2 servers up"},
	} {
		if got := statusLine(tc.st); got != tc.want {
			t.Errorf("statusLine = %q\n                want %q", got, tc.want)
		}
	}
}

// TestNotifyLoop drives the loop with a fake status: READY first, STATUS
// on change, WATCHDOG while status answers and none while it hangs,
// STOPPING on shutdown.
func TestNotifyLoop(t *testing.T) {
	sock := notifySocket(t, filepath.Join(t.TempDir(), "notify"))
	n, err := newSDNotifier()
	if err != nil {
		t.Fatal(err)
	}
	var state atomic.Value
	state.Store("BACKUP")
	var hang atomic.Bool
	release := make(chan struct{})
	defer close(release)
	status := func() control.Status {
		if hang.Load() {
			<-release
		}
		return control.Status{
			Instances: []control.Instance{{State: state.Load().(string), VRID: 51, Priority: 150, EffectivePriority: 150}},
			Backends:  []control.Backend{{Name: "kube-apiserver", Servers: servers("UP", "UP", "UP")}},
		}
	}
	stop := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ch := newChanges()
	go func() {
		defer close(done)
		n.loop(ctx, notifyLoop{stop: stop, status: status, changes: ch.Wait, watchdog: 40 * time.Millisecond, log: zerolog.Nop()})
	}()
	defer func() { cancel(); <-done }()

	if got := recv(t, sock, 2*time.Second); got != "READY=1\nSTATUS=BACKUP vrid 51, 3/3 servers up" {
		t.Fatalf("first message %q, want READY=1 with the status", got)
	}
	recvUntil(t, sock, 2*time.Second, "WATCHDOG=1", func(m string) bool { return m == "WATCHDOG=1" })
	state.Store("MASTER")
	ch.Notify()
	recvUntil(t, sock, 2*time.Second, "STATUS=MASTER", func(m string) bool { return m == "STATUS=MASTER vrid 51, 3/3 servers up" })

	// A wedged daemon: no more pings. Drain what was already in flight,
	// then expect nothing for several watchdog periods.
	hang.Store(true)
	quiet := 0
	for range 200 {
		sock.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		buf := make([]byte, 256)
		m, err := sock.Read(buf)
		if err != nil {
			quiet++
			break
		}
		if string(buf[:m]) == "WATCHDOG=1" {
			continue // sent before the hang was noticed
		}
		t.Fatalf("unexpected %q while status hangs", buf[:m])
	}
	if quiet == 0 {
		t.Fatal("watchdog pings kept coming while status hung")
	}
	hang.Store(false)
	release <- struct{}{} // let the outstanding call return
	recvUntil(t, sock, 2*time.Second, "WATCHDOG=1 after recovery", func(m string) bool { return m == "WATCHDOG=1" })

	close(stop)
	recvUntil(t, sock, 2*time.Second, "STOPPING=1", func(m string) bool { return strings.HasPrefix(m, "STOPPING=1\n") })
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("loop did not return after ctx was cancelled")
	}
}
