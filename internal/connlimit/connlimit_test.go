package connlimit

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestCap: max connections are handed out; the next is refused with the
// reject answer and never returned by Accept; closing one admits another.
func TestCap(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, 2, func(c net.Conn) { io.WriteString(c, "busy\n") })
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	a := <-accepted
	<-accepted
	if n := l.Open(); n != 2 {
		t.Fatalf("Open() = %d, want 2", n)
	}
	over := dial()
	over.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(over)
	if string(b) != "busy\n" || err != nil {
		t.Errorf("over the cap: read %q, %v; want the refusal and EOF", b, err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("Accept handed out %v over the cap", c.RemoteAddr())
	default:
	}
	a.Close()
	a.Close() // twice is harmless
	dial()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("no connection admitted after one closed")
	}
	if n := l.Open(); n != 2 {
		t.Errorf("Open() = %d, want 2", n)
	}
}
