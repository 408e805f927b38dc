package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// listen opens a unixgram socket standing in for systemd's.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
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

func TestFromEnvPath(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	sock := listen(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	n, err := FromEnv()
	if err != nil || n == nil {
		t.Fatalf("FromEnv() = %v, %v", n, err)
	}
	defer n.Close()
	if v, set := os.LookupEnv("NOTIFY_SOCKET"); set {
		t.Errorf("NOTIFY_SOCKET=%q still set; children would inherit it", v)
	}
	if err := n.Ready("hello"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, sock, 2*time.Second); got != "READY=1\nSTATUS=hello" {
		t.Errorf("got %q", got)
	}
	// A newline in a status line must not smuggle in another assignment.
	if err := n.Status("a\nWATCHDOG=1"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, sock, 2*time.Second); got != "STATUS=a WATCHDOG=1" {
		t.Errorf("got %q", got)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@vipd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	sock := listen(t, name)
	n, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Watchdog(); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, sock, 2*time.Second); got != "WATCHDOG=1" {
		t.Errorf("got %q", got)
	}
}

func TestMainPIDAndStopping(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	sock := listen(t, name)
	n, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.MainPID(4242); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, sock, 2*time.Second); got != "MAINPID=4242" {
		t.Errorf("got %q", got)
	}
	if err := n.MainPID(0); err == nil {
		t.Error("MAINPID=0: want an error")
	}
	if err := n.Stopping("bye"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, sock, 2*time.Second); got != "STOPPING=1\nSTATUS=bye" {
		t.Errorf("got %q", got)
	}
}

func TestUnsetOrBad(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := FromEnv()
	if n != nil || err != nil {
		t.Errorf("unset: FromEnv() = %v, %v; want nil, nil", n, err)
	}
	// A nil Notifier is usable and silent.
	for _, err := range []error{n.Ready("x"), n.Status("x"), n.Watchdog(), n.Stopping("x"), n.MainPID(1), n.Close()} {
		if err != nil {
			t.Errorf("nil notifier: %v", err)
		}
	}
	Loop{Notifier: nil}.Run(context.Background()) // returns at once
	if _, err := New("relative/notify"); err == nil {
		t.Error("relative path: want an error")
	}
	// Nobody listens: the send fails, it does not block or panic.
	n, err = New(filepath.Join(t.TempDir(), "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Ready("x"); err == nil {
		t.Error("notify to a missing socket: want an error")
	}
}

// TestSocketOpenedOnce: the notifier keeps one socket for its life, and
// systemd coming (back) later still gets the messages, without a new
// socket per message.
func TestSocketOpenedOnce(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	n, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	first := n.conn
	if err := n.Watchdog(); err == nil {
		t.Fatal("nobody listens yet: want an error")
	}
	sock := listen(t, name) // systemd (re)creates its socket
	for range 3 {
		if err := n.Watchdog(); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, sock, 2*time.Second); got != "WATCHDOG=1" {
			t.Errorf("got %q", got)
		}
	}
	if n.conn != first {
		t.Error("the socket was replaced although it never failed")
	}
	// A socket that went bad is reopened on the next message.
	n.conn.Close()
	n.Watchdog() // fails on the closed socket and drops it
	if err := n.Watchdog(); err != nil {
		t.Fatalf("after the socket failed: %v", err)
	}
	if got := recv(t, sock, 2*time.Second); got != "WATCHDOG=1" {
		t.Errorf("got %q", got)
	}
}

// TestWatchdogAtFDLimit is defect 1 of issue 9: at RLIMIT_NOFILE a new
// socket per message cannot be had (dial: too many open files) and the
// watchdog ping stopped. The notifier's one socket still sends. It runs in
// a child process, which fills its own descriptor table.
func TestWatchdogAtFDLimit(t *testing.T) {
	if os.Getenv("SDNOTIFY_FDLIMIT_HELPER") == "1" {
		os.Exit(fdLimitHelper())
	}
	name := filepath.Join(t.TempDir(), "notify")
	sock := listen(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWatchdogAtFDLimit$", "-test.v")
	cmd.Env = append(os.Environ(), "SDNOTIFY_FDLIMIT_HELPER=1", "NOTIFY_SOCKET="+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if got := recv(t, sock, 2*time.Second); got != "WATCHDOG=1" {
		t.Errorf("got %q", got)
	}
	if !strings.Contains(string(out), "dial at the limit: ") || !strings.Contains(string(out), "too many open files") {
		t.Errorf("the helper did not show a fresh socket failing at the limit:\n%s", out)
	}
}

func fdLimitHelper() int {
	n, err := FromEnv()
	if err != nil || n == nil {
		fmt.Println("FromEnv:", n, err)
		return 1
	}
	addr := n.Addr()
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = 64
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	var held []*os.File
	for range 100 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				fmt.Println("open:", err)
				return 1
			}
			break
		}
		held = append(held, f)
	}
	// What the old code did: a fresh socket per message.
	if c, err := net.Dial("unixgram", addr); err == nil {
		c.Close()
		fmt.Println("dial at the limit: succeeded; the table is not full")
		return 1
	} else {
		fmt.Println("dial at the limit:", err)
	}
	if err := n.Watchdog(); err != nil {
		fmt.Println("watchdog at the limit:", err)
		return 1
	}
	for _, f := range held {
		f.Close()
	}
	return 0
}

func TestWatchdogFromEnv(t *testing.T) {
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
		if got := WatchdogFromEnv(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %s, want %s", tc.usec, tc.pid, got, tc.want)
		}
		if _, set := os.LookupEnv("WATCHDOG_USEC"); set {
			t.Error("WATCHDOG_USEC still set")
		}
	}
}

// TestLoop drives the loop with a fake status: READY first, STATUS on
// change, WATCHDOG while status answers and none while it hangs, STOPPING
// on shutdown.
func TestLoop(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	sock := listen(t, name)
	n, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var state atomic.Value
	state.Store("BACKUP")
	var hang atomic.Bool
	var blocked atomic.Int32
	release := make(chan struct{})
	status := func() string {
		if hang.Load() {
			blocked.Add(1)
			<-release
		}
		return state.Load().(string) + " vrid 51"
	}
	stop := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop{Notifier: n, Status: status, Stopping: func() string { return "stopping: handing the VIP over" },
			Stop: stop, Tick: 10 * time.Millisecond, Watchdog: 40 * time.Millisecond, Log: zerolog.Nop()}.Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	if got := recv(t, sock, 2*time.Second); got != "READY=1\nSTATUS=BACKUP vrid 51" {
		t.Fatalf("first message %q, want READY=1 with the status", got)
	}
	recvUntil(t, sock, 2*time.Second, "WATCHDOG=1", func(m string) bool { return m == "WATCHDOG=1" })
	state.Store("MASTER")
	recvUntil(t, sock, 2*time.Second, "STATUS=MASTER", func(m string) bool { return m == "STATUS=MASTER vrid 51" })

	// A wedged daemon: no more pings. Once a status call is stuck, drain
	// what was already in flight, then expect nothing for several
	// watchdog periods.
	hang.Store(true)
	for deadline := time.Now().Add(5 * time.Second); blocked.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the loop made no status call in 5s")
		}
	}
	quiet := false
	for range 200 {
		sock.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		buf := make([]byte, 256)
		m, err := sock.Read(buf)
		if err != nil {
			quiet = true
			break
		}
		if string(buf[:m]) == "WATCHDOG=1" || strings.HasPrefix(string(buf[:m]), "STATUS=") {
			continue // sent before the hang was noticed
		}
		t.Fatalf("unexpected %q while status hangs", buf[:m])
	}
	if !quiet {
		t.Fatal("watchdog pings kept coming while status hung")
	}
	hang.Store(false)
	close(release) // let the outstanding call return
	recvUntil(t, sock, 2*time.Second, "WATCHDOG=1 after recovery", func(m string) bool { return m == "WATCHDOG=1" })

	close(stop)
	recvUntil(t, sock, 2*time.Second, "STOPPING=1", func(m string) bool {
		return m == "STOPPING=1\nSTATUS=stopping: handing the VIP over"
	})
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("loop did not return after ctx was cancelled")
	}
}

// TestLoopOnChanges: with Changed, STATUS follows the change subscription
// at once, with no polling tick (the daemon's one change subscription).
func TestLoopOnChanges(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	sock := listen(t, name)
	n, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var state atomic.Value
	state.Store("BACKUP")
	var mu sync.Mutex
	ch := make(chan struct{})
	changed := func() <-chan struct{} { mu.Lock(); defer mu.Unlock(); return ch }
	notify := func() { mu.Lock(); close(ch); ch = make(chan struct{}); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A tick of an hour: only the subscription can bring STATUS.
		Loop{Notifier: n, Status: func() string { return state.Load().(string) + " vrid 51" },
			Changed: changed, Tick: time.Hour, Log: zerolog.Nop()}.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	if got := recv(t, sock, 2*time.Second); got != "READY=1\nSTATUS=BACKUP vrid 51" {
		t.Fatalf("first message %q", got)
	}
	state.Store("MASTER")
	notify()
	if got := recv(t, sock, 2*time.Second); got != "STATUS=MASTER vrid 51" {
		t.Fatalf("after a change: %q, want STATUS=MASTER vrid 51", got)
	}
}
