//go:build linux

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

// TestBulkIntegrity pushes data both ways at once through an echo server
// with a slow reader, so reads switch between the shared buffer and splice
// and writes hit backpressure; every byte must arrive in order.
func TestBulkIntegrity(t *testing.T) {
	s := newTestServer(t, "a", func(c net.Conn) { io.Copy(c, c) })
	p := startProxy(t, oneBackend("", s.config()), zerolog.Nop())
	c := dial(t, serve(t, p, "fe"))
	const size = 24 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		for off := 0; off < size; {
			n := min(1+off%70000, size-off) // odd sizes: small and large writes
			if _, err := c.Write(data[off : off+n]); err != nil {
				return
			}
			off += n
		}
		c.Conn.(*net.TCPConn).CloseWrite()
	}()
	got := make([]byte, 0, size)
	buf := make([]byte, 100000)
	for i := 0; len(got) < size && i < 10_000_000; i++ {
		n, err := c.r.Read(buf[:1+i%len(buf)])
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if len(got) != size {
		t.Fatalf("got %d bytes, want %d", len(got), size)
	}
	for i := range got {
		if got[i] != data[i] {
			t.Fatalf("byte %d differs", i)
		}
	}
	if _, err := c.r.Read(buf); err != io.EOF {
		t.Fatalf("after the echo: %v, want EOF", err)
	}
	st := p.Status().Frontends[0]
	if st.BytesIn != size || st.BytesOut != size {
		t.Errorf("bytes in/out %d/%d, want %d", st.BytesIn, st.BytesOut, size)
	}
}
