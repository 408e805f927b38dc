//go:build linux

package proxy

import (
	"net/netip"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// tcpOpts are the socket options the proxy sets on both sides of a
// connection (inheritedOpts).
type tcpOpts struct{ Keepalive, KeepIdle, NoDelay int }

var wantOpts = tcpOpts{Keepalive: 1, KeepIdle: keepAliveIdle, NoDelay: 1}

func readOpts(t *testing.T, fd int) tcpOpts {
	t.Helper()
	get := func(level, opt int) int {
		v, err := unix.GetsockoptInt(fd, level, opt)
		if err != nil {
			t.Fatalf("getsockopt %d/%d on fd %d: %v", level, opt, fd, err)
		}
		return v
	}
	return tcpOpts{
		Keepalive: get(unix.SOL_SOCKET, unix.SO_KEEPALIVE),
		KeepIdle:  get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE),
		NoDelay:   get(unix.IPPROTO_TCP, unix.TCP_NODELAY),
	}
}

// sideOpts returns the options of every established connection's client
// and server socket, read on the loop that owns them.
func sideOpts(t *testing.T, p *Proxy) (client, server []tcpOpts) {
	t.Helper()
	for _, l := range p.loops {
		l.do(func(l *loop) {
			for _, c := range l.clients() {
				if c.flags&fEstablished != 0 {
					client = append(client, readOpts(t, int(c.cfd)))
					server = append(server, readOpts(t, int(c.sfd)))
				}
			}
		})
	}
	return client, server
}

// TestSocketOptions: accepted sockets carry keepalive and TCP_NODELAY
// inherited from the listener, whether it was made by Listen or taken
// over by Serve, and server sockets carry the same, set before connect.
func TestSocketOptions(t *testing.T) {
	for _, how := range []string{"Listen", "Serve"} {
		t.Run(how, func(t *testing.T) {
			s := newTestServer(t, "a", nil)
			cfg := oneBackend("", s.config())
			var addr string
			if how == "Listen" {
				cfg.Frontends[0].Binds = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))}
				addr = cfg.Frontends[0].Binds[0].String()
			}
			p := startProxy(t, cfg, zerolog.Nop())
			if how == "Listen" {
				if err := p.Listen(); err != nil {
					t.Fatal(err)
				}
			} else {
				addr = serve(t, p, "fe")
			}
			for range 3 {
				c := dial(t, addr)
				c.greeting(t)
			}
			client, server := sideOpts(t, p)
			if len(client) != 3 {
				t.Fatalf("%d established connections, want 3", len(client))
			}
			for i := range client {
				if client[i] != wantOpts {
					t.Errorf("accepted socket: %+v, want %+v", client[i], wantOpts)
				}
				if server[i] != wantOpts {
					t.Errorf("server socket: %+v, want %+v", server[i], wantOpts)
				}
			}
		})
	}
}
