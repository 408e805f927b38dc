//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// syncBuf is a log sink safe for the proxy's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runProxy builds a proxy and starts Run; done is closed when Run returns.
func runProxy(t *testing.T, cfg Config) (p *Proxy, cancel context.CancelFunc, done <-chan struct{}) {
	t.Helper()
	p, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() { p.Run(ctx); close(ch) }()
	return p, cancel, ch
}

// startProxy builds and runs a proxy; it is stopped in t.Cleanup.
func startProxy(t *testing.T, cfg Config, log zerolog.Logger) *Proxy {
	t.Helper()
	p, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return p
}

// serve runs p.Serve for frontend on a fresh 127.0.0.1:0 listener and
// returns its address once every loop accepts from it.
func serve(t *testing.T, p *Proxy, frontend string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lns := func() (n int) {
		for _, l := range p.loops {
			l.do(func(l *loop) { n += len(l.lns) })
		}
		return n
	}
	before := lns()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Serve(ctx, frontend, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Connections queued before Serve took the socket over would not
	// inherit its options.
	waitFor(t, "Serve to take the listener over", func() bool { return lns() == before+len(p.loops) })
	return ln.Addr().String()
}

// testServer is a backend: it greets each connection with its name and a
// newline, then echoes until EOF, then closes.
type testServer struct {
	name string
	ln   net.Listener
	ap   netip.AddrPort
	mu   sync.Mutex
	n    int
}

func newTestServer(t *testing.T, name string, handler func(net.Conn)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{name: name, ln: ln, ap: netip.MustParseAddrPort(ln.Addr().String())}
	if handler == nil {
		handler = func(c net.Conn) {
			io.WriteString(c, name+"\n")
			io.Copy(c, c)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.n++
			s.mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handler(c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return s
}

func (s *testServer) config() ServerConfig { return ServerConfig{Name: s.name, Addr: s.ap} }

// deadPort returns a loopback address where nothing listens.
func deadPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

// freePort returns a port free on 127.0.0.1 right now, below the
// ephemeral range (net.ipv4.ip_local_port_range, 32768 and up by
// default): a port from that range can be taken before the test binds it
// as the source port of any outgoing connection, the test's own included.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 100 {
		port := uint16(10000 + rand.IntN(22000))
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String())
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port below 32000 after 100 tries")
	return 0
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// greeting reads the server's name line.
func (c *client) greeting(t *testing.T) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read greeting: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

// echo checks a round trip.
func (c *client) echo(t *testing.T, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil || line != msg+"\n" {
		t.Fatalf("echo: got %q, %v; want %q", line, err, msg)
	}
}

// closedWithin checks the proxy closes the connection within d: the read
// returns EOF or a reset, not a timeout.
func (c *client) closedWithin(t *testing.T, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.r.ReadString('\n')
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection not closed within %v: %v", d, err)
	}
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not a wait for an event
	}
}

func oneBackend(balance string, servers ...ServerConfig) Config {
	return Config{
		Frontends: []FrontendConfig{{Name: "fe", Backend: "be"}},
		Backends:  []BackendConfig{{Name: "be", Servers: servers, Balance: balance}},
	}
}

// listening reports whether every named frontend (every one when none is
// named) is listening: Listen named it and Unlisten has not since (what
// Update consults before binding a frontend's new addresses).
func listening(p *Proxy, frontends ...string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	sel := p.selected(frontends)
	for _, fe := range sel {
		if !fe.listening {
			return false
		}
	}
	return len(sel) > 0
}

func serverStatus(p *Proxy, backend, server string) ServerStatus {
	for _, b := range p.Status().Backends {
		if b.Name == backend {
			for _, s := range b.Servers {
				if s.Name == server {
					return s
				}
			}
		}
	}
	return ServerStatus{}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
