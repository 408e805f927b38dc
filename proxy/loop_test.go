//go:build linux

package proxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// TestCommandWhileRunStarts: a command given to a loop while Run is
// starting it runs, and a Run cancelled at once returns. A command that
// came after a loop goroutine took ownership and before it said it was
// running used to wait for the loop to stop, forever: Listen right after
// Run (the daemon on becoming MASTER) could hang, and so could Run's own
// stop. The window is a few instructions wide; this caught it under
// `go test -race -cpu 1,2,4 -count 20 -run TestCommandWhileRunStarts`.
func TestCommandWhileRunStarts(t *testing.T) {
	cfg := oneBackend("", newTestServer(t, "a", nil).config())
	within := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not done within 5s", what)
		}
	}
	for i := range 300 {
		p, cancel, done := runProxy(t, cfg)
		if i%2 == 0 {
			within("a command while Run starts", func() { p.CloseConns() })
		}
		cancel()
		within("Run after cancel", func() { <-done })
	}
}

// A command and a handed-over connection take effect in the order they
// were given. Before, a loop adopted every handed-over connection before
// running its commands: "close server b's connections" (b put in
// maintenance) given while the loop slept closed a connection that another
// loop accepted afterwards, when b was ready again, and routed to b.
func TestInboxOrder(t *testing.T) {
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := Config{
		Frontends: []FrontendConfig{{Name: "fe", Backend: "be"}},
		Backends:  []BackendConfig{{Name: "be", Servers: []ServerConfig{{Name: "b", Addr: netip.MustParseAddrPort(srv.Addr().String())}}}},
	}
	p, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.closeLoops()
	p.mu.Lock()
	fe := p.frontend("fe")
	b := p.backends["be"].server("b")
	p.mu.Unlock()
	l := p.loops[0]
	// As if the loop ran and slept: commands and connections queue up.
	l.mu.Lock()
	l.running, l.sleeping = true, true
	l.mu.Unlock()
	closeB := func(l *loop) { l.closeAll(func(c *conn) bool { return c.srv == b }) }
	accepted := func() (*conn, int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !p.tryAdmit(fe) {
			t.Fatal("tryAdmit failed")
		}
		fe.active.Add(1)
		p.active.Add(1)
		return &conn{fe: fe, cfd: int32(fds[0]), sfd: -1}, fds[1]
	}
	take := func() []queued {
		l.mu.Lock()
		defer l.mu.Unlock()
		in := l.inbox
		l.inbox = nil
		return in
	}

	l.async(closeB)
	before, peer1 := accepted()
	defer unix.Close(peer1)
	l.post(before)
	l.runInbox(take())
	if before.flags&fClosed != 0 || before.srv != b {
		t.Fatalf("a connection handed over after the command was closed by it (flags %#x)", before.flags)
	}

	after, peer2 := accepted()
	defer unix.Close(peer2)
	l.post(after)
	l.async(closeB)
	l.runInbox(take())
	if after.flags&fClosed == 0 {
		t.Fatal("a command given after the connection was handed over did not act on it")
	}
	l.closeAll(nil)
}
