//go:build linux

package proxy

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// blackhole returns a 127.0.0.1 address where connects hang: a listener
// with backlog 0 that never accepts, its accept queue filled, so the kernel
// drops further SYNs (the client retransmits them, as towards a host that
// does not answer).
func blackhole(t *testing.T) netip.AddrPort {
	t.Helper()
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_abort_on_overflow"); err == nil && strings.TrimSpace(string(b)) != "0" {
		t.Skip("tcp_abort_on_overflow is set: a full accept queue answers with RST")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := sockaddrToAddrPort(sa)
	// Fill the accept queue until a connect hangs (bounded).
	for i := 0; ; i++ {
		if i == 8 {
			t.Fatal("accept queue never filled")
		}
		c, err := net.DialTimeout("tcp", ap.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return ap
}

func TestConnectTimeout(t *testing.T) {
	hole := ServerConfig{Name: "hole", Addr: blackhole(t)}
	const timeout = 200 * time.Millisecond

	t.Run("closes the client", func(t *testing.T) {
		cfg := oneBackend("", hole)
		cfg.Frontends[0].ConnectTimeout = timeout
		p := startProxy(t, cfg, zerolog.Nop())
		c := dial(t, serve(t, p, "fe"))
		start := time.Now()
		c.closedWithin(t, 3*time.Second)
		if el := time.Since(start); el < timeout*3/4 || el > timeout+500*time.Millisecond {
			t.Errorf("closed after %v, want about %v", el, timeout)
		}
		waitFor(t, "failed connect counted", func() bool { return serverStatus(p, "be", "hole").FailedConns == 1 })
		waitFor(t, "no active connection", func() bool {
			return p.Status().ActiveConns == 0 && serverStatus(p, "be", "hole").ActiveConns == 0
		})
	})

	t.Run("tries the next server", func(t *testing.T) {
		live := newTestServer(t, "live", nil)
		cfg := oneBackend(BalanceRoundRobin, hole, live.config())
		cfg.Frontends[0].ConnectTimeout = timeout
		p := startProxy(t, cfg, zerolog.Nop())
		addr := serve(t, p, "fe")
		timedOut := 0
		for range 2 { // round robin: at least one starts with the hole
			c := dial(t, addr)
			start := time.Now()
			if got := c.greeting(t); got != "live" {
				t.Fatalf("greeting %q", got)
			}
			if time.Since(start) >= timeout*3/4 {
				timedOut++
			}
			c.echo(t, "after a connect timeout")
		}
		if timedOut == 0 {
			t.Error("no connection waited for the connect timeout")
		}
		if f := serverStatus(p, "be", "hole").FailedConns; f != int64(timedOut) {
			t.Errorf("hole FailedConns %d, want %d", f, timedOut)
		}
	})

	t.Run("default is 5s", func(t *testing.T) {
		p := startProxy(t, oneBackend("", hole), zerolog.Nop())
		c := dial(t, serve(t, p, "fe"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.r.ReadByte(); !isTimeout(err) {
			t.Fatalf("closed before the default connect timeout: %v", err)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	s := newTestServer(t, "a", nil)
	const idle = 150 * time.Millisecond
	cfg := Config{
		Frontends: []FrontendConfig{
			{Name: "fe", Backend: "be"},                       // no idle timeout: the default
			{Name: "short", Backend: "be", IdleTimeout: idle}, // closes idle tunnels
		},
		Backends: []BackendConfig{{Name: "be", Servers: []ServerConfig{s.config()}}},
	}
	p := startProxy(t, cfg, zerolog.Nop())
	keep := dial(t, serve(t, p, "fe"))
	keep.greeting(t)
	short := serve(t, p, "short")

	// Traffic resets the idle clock: a tunnel used every idle/3 lives on.
	busy := dial(t, short)
	busy.greeting(t)
	for range 6 {
		time.Sleep(idle / 3)
		busy.echo(t, "still busy")
	}

	// An idle tunnel is closed, both sides, about idle after its last byte.
	c := dial(t, short)
	c.greeting(t)
	start := time.Now()
	c.closedWithin(t, 2*time.Second)
	if el := time.Since(start); el < idle*3/4 || el > idle+400*time.Millisecond {
		t.Errorf("idle tunnel closed after %v, want about %v", el, idle)
	}
	busy.closedWithin(t, 2*time.Second)
	waitFor(t, "server side closed too", func() bool { return serverStatus(p, "be", "a").ActiveConns == 1 })

	// Without IdleTimeout nothing closes an idle tunnel.
	keep.echo(t, "idle for "+time.Since(start).String()+" and more")
	time.Sleep(2 * idle)
	keep.echo(t, "no idle timeout by default")
}
