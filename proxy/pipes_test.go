//go:build linux

package proxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The splice pipes open at once, pooled ones included, stay within
// MaxPipes (two descriptors each); past it bytes are copied, intact.
func TestPipeBudget(t *testing.T) {
	s := newTestServer(t, "a", func(c net.Conn) { io.Copy(c, c) })
	cfg := oneBackend("", s.config())
	cfg.MaxPipes = 1
	p := startProxy(t, cfg, zerolog.Nop())
	addr := serve(t, p, "fe")
	var most atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			if n := p.pipes.Load(); n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	const size = 8 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	var wg sync.WaitGroup
	for range 3 {
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		wg.Go(func() {
			go func() {
				c.Write(data)
				c.Conn.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c.r)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("echo: %d bytes, err %v; want %d intact", len(got), err, size)
			}
		})
	}
	wg.Wait()
	close(stop)
	if n := most.Load(); n > 1 {
		t.Errorf("%d pipes open at once, want at most MaxPipes = 1", n)
	}
	if n := most.Load(); n == 0 {
		t.Error("no pipe was ever used: the test measured nothing")
	}
}

// TestPipeBudgetLoops: loops taking pipes at the same moment stay within
// MaxPipes together.
func TestPipeBudgetLoops(t *testing.T) {
	p, err := New(Config{MaxPipes: 1}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.closeLoops()
	if len(p.loops) < 2 {
		t.Skip("SKIP: one event loop here (GOMAXPROCS 1)")
	}
	for round := range 2000 {
		start := make(chan struct{})
		got := make([]*pipe, len(p.loops))
		var wg sync.WaitGroup
		for i, l := range p.loops {
			wg.Go(func() { <-start; got[i] = l.getPipe() })
		}
		close(start)
		wg.Wait()
		if n := p.pipes.Load(); n > 1 {
			t.Fatalf("round %d: %d pipes open at once, want at most MaxPipes = 1", round, n)
		}
		for i, pp := range got {
			if pp != nil {
				pp.n = 1 // closed, not pooled
				p.loops[i].putPipe(pp)
			}
		}
	}
}
