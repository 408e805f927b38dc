//go:build linux

package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// childBackendEnv makes the test binary a backend server (see TestMain): the
// fd-limit tests lower RLIMIT_NOFILE for this process, and a backend in it
// would compete with the proxy for the few fds left.
const childBackendEnv = "VIPD_PROXY_TEST_CHILD_BACKEND"

func TestMain(m *testing.M) {
	if os.Getenv(childBackendEnv) != "" {
		childBackend()
		return
	}
	os.Exit(m.Run())
}

// childBackend listens on 127.0.0.1:0, prints its address, then greets
// each connection with "b\n" and echoes, until its stdin closes.
func childBackend() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				time.Sleep(5 * time.Millisecond) // EMFILE and the like: retry
				continue
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "b\n")
				io.Copy(c, c)
			}()
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// startChildBackend runs the backend in a child process, stopped in
// t.Cleanup.
func startChildBackend(t *testing.T) netip.AddrPort {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childBackendEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child backend: %v", err)
	}
	ap, err := netip.ParseAddrPort(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child backend: %q: %v", line, err)
	}
	return ap
}

// lowerNoFile sets this process's RLIMIT_NOFILE so that exactly free more
// fds can be opened, and restores it in t.Cleanup. (The limit bounds fd
// numbers: the free slots are the numbers below it not in use.)
func lowerNoFile(t *testing.T, free int) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd") // its own fd is closed again on return
	if err != nil {
		t.Skipf("SKIP: /proc/self/fd: %v", err)
	}
	open := map[int]bool{}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			open[n] = true
		}
	}
	limit := 0
	for n := 0; free > 0; n++ {
		if !open[n] {
			free--
		}
		limit = n + 1
	}
	if uint64(limit) > old.Cur {
		t.Skipf("SKIP: RLIMIT_NOFILE %d too low for the test", old.Cur)
	}
	// syscall.Setrlimit, not unix's: the runtime must not hand the raised
	// limit it saw at startup to children any more.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(limit), Max: old.Max}); err != nil {
		t.Skipf("SKIP: setrlimit: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restore RLIMIT_NOFILE: %v", err)
		}
	})
	t.Logf("RLIMIT_NOFILE %d -> %d (%d fds open)", old.Cur, limit, len(open))
}

// rawClient is a client socket made before the limit is lowered: connecting
// and reading it needs no new fd, so the test does not take the proxy's.
type rawClient struct {
	fd   int
	line []byte
}

func newRawClients(t *testing.T, n int) []*rawClient {
	t.Helper()
	cs := make([]*rawClient, n)
	for i := range cs {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = &rawClient{fd: fd}
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.close()
		}
	})
	return cs
}

func (c *rawClient) connect(ap netip.AddrPort) error {
	return unix.Connect(c.fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
}

func (c *rawClient) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

var errWaiting = errors.New("no data yet")

// greeting returns the first line from the server, errWaiting if none came
// within d, or the error that ended the connection (io.EOF when closed).
func (c *rawClient) greeting(d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		if i := strings.IndexByte(string(c.line), '\n'); i >= 0 {
			return string(c.line[:i]), nil
		}
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms < 0 {
			return "", errWaiting
		}
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n == 0 {
			return "", errWaiting
		}
		var buf [64]byte
		r, err := unix.Read(c.fd, buf[:])
		switch {
		case err == unix.EINTR:
		case err != nil:
			return "", err
		case r == 0:
			return "", io.EOF
		default:
			c.line = append(c.line, buf[:r]...)
		}
	}
}

// fdLimitProxy runs a proxy to a backend in a child process and returns it
// with its address, ready: a first connection went through.
func fdLimitProxy(t *testing.T, log zerolog.Logger) (*Proxy, netip.AddrPort) {
	t.Helper()
	ap := startChildBackend(t)
	p := startProxy(t, oneBackend("", ServerConfig{Name: "b", Addr: ap}), log)
	addr := serve(t, p, "fe")
	c := dial(t, addr)
	if got := c.greeting(t); got != "b" {
		t.Fatalf("greeting %q", got)
	}
	c.Close()
	waitFor(t, "no connection", func() bool { return p.Status().ActiveConns == 0 })
	return p, netip.MustParseAddrPort(addr)
}

// TestFDLimitClientsWait: with RLIMIT_NOFILE leaving room for a few proxied
// connections (2 fds each), 30 clients connect. The proxy closes none: those
// it cannot serve wait (in the backlog) and are served as earlier ones
// close. The warning is logged once, not per client.
func TestFDLimitClientsWait(t *testing.T) {
	const clients, free = 30, 20
	logs := &syncBuf{}
	p, addr := fdLimitProxy(t, zerolog.New(logs))
	cs := newRawClients(t, clients)
	lowerNoFile(t, free)
	for i, c := range cs {
		if err := c.connect(addr); err != nil {
			t.Fatalf("client %d: connect: %v", i, err)
		}
	}

	served := make([]bool, clients)
	poll := func(d time.Duration) (n int) {
		for i, c := range cs {
			if served[i] {
				n++
				continue
			}
			switch g, err := c.greeting(d); {
			case err == nil && g == "b":
				served[i] = true
				n++
			case errors.Is(err, errWaiting):
			default:
				t.Fatalf("client %d closed by the proxy: %q, %v\n%s", i, g, err, logs)
			}
		}
		return n
	}
	// Until the served count settles: the proxy takes what fds allow.
	n, last, settled := 0, -1, time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if n = poll(10 * time.Millisecond); n != last {
			last, settled = n, time.Now()
		} else if n > 0 && time.Since(settled) > 300*time.Millisecond {
			break
		}
	}
	st := p.Status()
	t.Logf("at the limit: %d served, %d waiting, %d accepted", n, clients-n, st.ActiveConns)
	// 2 fds per connection, from the free ones and the loops' spares.
	if most := (free + 1 + len(p.loops)) / 2; n == 0 || n > most {
		t.Fatalf("%d clients served with %d fds free, want 1..%d", n, free, most)
	}
	if n == clients {
		t.Fatal("every client served: the limit did not bite")
	}

	// Closing the served clients lets the waiting ones in, in turn.
	done := make([]bool, clients)
	for deadline := time.Now().Add(20 * time.Second); ; {
		left := 0
		for i, c := range cs {
			if served[i] && !done[i] {
				c.close()
				done[i] = true
			}
			if !done[i] {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients still waiting after the others closed\n%s", left, logs)
		}
		poll(20 * time.Millisecond)
	}

	out := strings.Count(logs.String(), "out of file descriptors")
	if out == 0 || out > 3 {
		t.Errorf("%d 'out of file descriptors' warnings, want 1 (rate-limited)\n%s", out, logs)
	}
	if n := strings.Count(logs.String(), `"level":"warn"`); n > 6 {
		t.Errorf("%d warnings, want a few (rate-limited)\n%s", n, logs)
	}
	waitFor(t, "every connection closed", func() bool { return p.Status().ActiveConns == 0 })
}

// TestFDLimitParksClient: a client accepted when not even the loop's spare
// fd is left to make room for its server socket waits (parked) and is
// served once fds free up, instead of being closed.
func TestFDLimitParksClient(t *testing.T) {
	logs := &syncBuf{}
	p, _ := fdLimitProxy(t, zerolog.New(logs))

	// An accepted connection to hand to a loop, as acceptFrom would.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl := dial(t, ln.Addr().String())
	acc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := acc.(*net.TCPConn).SyscallConn()
	cfd := -1
	rc.Control(func(fd uintptr) { cfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	acc.Close()
	unix.SetNonblock(cfd, true)
	src := netip.MustParseAddrPort(cl.LocalAddr().String())

	lowerNoFile(t, 20)
	p.mu.Lock()
	fe := p.frontend("fe")
	p.mu.Unlock()
	l := p.loops[0]
	var parked bool
	var fillers int
	l.do(func(l *loop) {
		// No spare and no fd left: socket() for the server fails.
		unix.Close(l.spare)
		l.spare = -1
		var fill []int
		for range 1000 {
			fd, err := dupSpare(l.efd)
			if err != nil {
				break
			}
			fill = append(fill, fd)
		}
		fillers = len(fill)
		if !p.tryAdmit(fe) {
			t.Error("tryAdmit failed")
		}
		fe.total.Add(1)
		fe.active.Add(1)
		p.active.Add(1)
		c := &conn{fe: fe, cfd: int32(cfd), sfd: -1}
		c.setSource(src)
		l.load.Add(1)
		l.adopt(c)
		parked = c.flags&(fParked|fClosed) == fParked && len(l.parked) == 1 && l.fdRetryAt != 0
		for _, fd := range fill {
			unix.Close(fd)
		}
	})
	if !parked {
		t.Fatalf("client not parked (%d fillers)\n%s", fillers, logs)
	}
	if got := cl.greeting(t); got != "b" {
		t.Fatalf("greeting %q", got)
	}
	cl.echo(t, "served after waiting for an fd")
	var spare int
	var left []*conn
	l.do(func(l *loop) { spare, left = l.spare, l.parked })
	if spare < 0 || len(left) != 0 || p.fdShort.Load() != 0 {
		t.Errorf("after recovery: spare %d, parked %d, loops short %d; want a spare, none parked, 0", spare, len(left), p.fdShort.Load())
	}
	if !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("no EMFILE warning\n%s", logs)
	}
}

func TestRateWarn(t *testing.T) {
	var w rateWarn
	s := int64(time.Second)
	type step struct {
		at   int64
		ok   bool
		held int
	}
	for _, st := range []step{{0, true, 0}, {1 * s, false, 0}, {9 * s, false, 0}, {10 * s, true, 2}, {11 * s, false, 0}, {30 * s, true, 1}, {31 * s, false, 0}} {
		ok, held := w.allow(st.at)
		if ok != st.ok || held != st.held {
			t.Errorf("at %v: allow = %v, %d; want %v, %d", time.Duration(st.at), ok, held, st.ok, st.held)
		}
	}
}
