//go:build linux

package proxy

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// An idle connection moves to the new proxy and carries on; the new
// proxy's Status counts it and keeps the old totals; the old one logs no
// failure. With the connection's server gone from the new config, it is
// still served.
func TestHandoffIdle(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serverGone bool
	}{{"same config", false}, {"server gone", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, "s1", nil)
			cfg := hoConfig(t, srv.config())
			old, oldLog := hoOld(t, cfg)
			c := dial(t, feAddr(cfg))
			if got := c.greeting(t); got != "s1" {
				t.Fatalf("greeting %q", got)
			}
			c.echo(t, "before")
			ncfg := cfg
			if tc.serverGone {
				ncfg = hoConfig(t, ServerConfig{Name: "s2", Addr: deadPort(t)})
				ncfg.Frontends[0].Binds = cfg.Frontends[0].Binds
			}
			np, h := handover(t, old, ncfg)
			if len(h.Conns) != 1 || h.Conns[0].State != ConnEstablished || h.Conns[0].Server != "s1" {
				t.Fatalf("exported %+v", h.Conns)
			}
			c.echo(t, "after")
			st := np.Status()
			if st.ActiveConns != 1 || st.Frontends[0].ActiveConns != 1 || st.Frontends[0].TotalConns != 1 {
				t.Errorf("new status %+v", st)
			}
			want := int64(1)
			if tc.serverGone {
				want = 0 // s1 is not in the config: nothing to show it in
			}
			if got := st.Backends[0].Servers[0].ActiveConns; got != want {
				t.Errorf("server active %d, want %d", got, want)
			}
			c.Close()
			waitFor(t, "the adopted connection to close", func() bool { return np.Status().ActiveConns == 0 })
			noErrors(t, oldLog)
		})
	}
}

// Client to server half-closed (the client's FIN forwarded) before the
// handoff: the server's stream back still arrives whole, then EOF.
func TestHandoffHalfClosedClientToServer(t *testing.T) {
	ln := smallBufListener(t)
	gotEOF, release := make(chan sum, 1), make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, _ := readSum(c)
		gotEOF <- s
		<-release
		var stop atomic.Bool
		<-writer(c, 2, 4096, 256<<10, &stop, false)
	}()
	cfg := hoConfig(t, ServerConfig{Name: "s", Addr: mustAddrPort(ln.Addr().String())})
	old, _ := hoOld(t, cfg)
	c := dial(t, feAddr(cfg))
	var stop atomic.Bool
	sent := <-writer(c, 3, 4096, 64<<10, &stop, false)
	var at sum
	select {
	case at = <-gotEOF:
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no EOF")
	}
	if at != sent {
		t.Fatalf("server got %d bytes, client sent %d", at.n, sent.n)
	}
	np, h := handover(t, old, cfg)
	if hc := h.Conns[0]; !hc.ClientEOF || !hc.ServerShut || hc.ServerEOF || hc.ClientShut {
		t.Fatalf("half-close state exported: %+v", hc)
	}
	close(release)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	back, err := readSum(c)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if want := expectSum(2, 4096, 256<<10); back != want {
		t.Fatalf("client got %d bytes, server sent %d", back.n, want.n)
	}
	waitFor(t, "the connection to close", func() bool { return np.Status().ActiveConns == 0 })
}

// Server to client half-closed before the handoff: the client's stream to
// the server still arrives whole.
func TestHandoffHalfClosedServerToClient(t *testing.T) {
	ln := smallBufListener(t)
	got := make(chan sum, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var stop atomic.Bool
		<-writer(c, 4, 4096, 128<<10, &stop, false)
		s, _ := readSum(c)
		got <- s
	}()
	cfg := hoConfig(t, ServerConfig{Name: "s", Addr: mustAddrPort(ln.Addr().String())})
	old, _ := hoOld(t, cfg)
	c := dial(t, feAddr(cfg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if s, err := readSum(c); err != nil || s != expectSum(4, 4096, 128<<10) {
		t.Fatalf("before: %d bytes, %v", s.n, err)
	}
	np, h := handover(t, old, cfg)
	if hc := h.Conns[0]; hc.ClientEOF || hc.ServerShut || !hc.ServerEOF || !hc.ClientShut {
		t.Fatalf("half-close state exported: %+v", hc)
	}
	var stop atomic.Bool
	sent := <-writer(c, 5, 4096, 512<<10, &stop, false)
	select {
	case have := <-got:
		if have != sent {
			t.Fatalf("server got %d bytes, client sent %d", have.n, sent.n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server stuck")
	}
	waitFor(t, "the connection to close", func() bool { return np.Status().ActiveConns == 0 })
}

// expectSum is what writer sends with these arguments.
func expectSum(seed uint64, chunk int, max int64) sum {
	r, w := io.Pipe()
	go func() {
		g := newGen(seed)
		b := make([]byte, chunk)
		for n := int64(0); n < max; n += int64(chunk) {
			g.fill(b)
			w.Write(b)
		}
		w.Close()
	}()
	s, _ := readSum(r)
	return s
}

// A connection still connecting to its server (the server's accept queue
// is full, so the SYN waits for a retransmit) is exported as connecting;
// the new proxy finishes the connect and the connection works.
func TestHandoffConnecting(t *testing.T) {
	ln := backlogZeroListener(t)
	addr := ln.Addr().String()
	// Fill the accept queue (one entry): the proxy's SYN is dropped until
	// it drains, and retransmitted a second later.
	f, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cfg := hoConfig(t, ServerConfig{Name: "slow", Addr: mustAddrPort(addr)})
	cfg.Frontends[0].ConnectTimeout = 10 * time.Second
	old, _ := hoOld(t, cfg)
	c := dial(t, feAddr(cfg))
	waitFor(t, "the proxy to be connecting", func() bool {
		return anyConn(old, func(c *conn) bool { return c.flags&fConnecting != 0 })
	})
	np, h := handover(t, old, cfg)
	if len(h.Conns) != 1 || h.Conns[0].State != ConnConnecting || h.Conns[0].ConnectDeadline.IsZero() {
		t.Fatalf("exported %+v", h.Conns)
	}
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				io.Copy(s, s)
			}()
		}
	}()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo after the connect: %q, %v", line, err)
	}
	if s := serverStatus(np, "be", "slow"); s.ActiveConns != 1 || s.TotalConns != 1 || s.FailedConns != 0 {
		t.Errorf("server status %+v", s)
	}
}
