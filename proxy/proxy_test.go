package proxy

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestEcho(t *testing.T) {
	s := newTestServer(t, "a", nil)
	p := startProxy(t, oneBackend("", s.config()), zerolog.New(zerolog.NewTestWriter(t)))
	addr := serve(t, p, "fe")
	for i := range 3 {
		c := dial(t, addr)
		if got := c.greeting(t); got != "a" {
			t.Fatalf("greeting %q", got)
		}
		c.echo(t, "hello")
		c.echo(t, string(make([]byte, 0))+"x")
		_ = i
	}
	st := p.Status()
	if st.Frontends[0].TotalConns != 3 {
		t.Errorf("total conns %d, want 3", st.Frontends[0].TotalConns)
	}
}

func TestHalfClose(t *testing.T) {
	t.Run("client closes write first", func(t *testing.T) {
		s := newTestServer(t, "a", func(c net.Conn) {
			b, _ := io.ReadAll(c) // until the client's FIN arrives through the proxy
			io.WriteString(c, "got "+string(b))
		})
		p := startProxy(t, oneBackend("", s.config()), zerolog.Nop())
		c := dial(t, serve(t, p, "fe"))
		io.WriteString(c, "request")
		c.Conn.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c.r)
		if err != nil || string(b) != "got request" {
			t.Fatalf("got %q, %v", b, err)
		}
	})
	t.Run("server closes write first", func(t *testing.T) {
		got := make(chan string, 1)
		s := newTestServer(t, "a", func(c net.Conn) {
			io.WriteString(c, "banner")
			c.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(c)
			got <- string(b)
		})
		p := startProxy(t, oneBackend("", s.config()), zerolog.Nop())
		c := dial(t, serve(t, p, "fe"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c.r)
		if err != nil || string(b) != "banner" {
			t.Fatalf("got %q, %v", b, err)
		}
		io.WriteString(c, "still here")
		c.Conn.(*net.TCPConn).CloseWrite()
		select {
		case g := <-got:
			if g != "still here" {
				t.Fatalf("server got %q", g)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server did not get the client's data after its own FIN")
		}
	})
}
