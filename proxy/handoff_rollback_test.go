//go:build linux

package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// backlogZeroListener listens on 127.0.0.1 with an accept queue of one:
// two unaccepted connections make it drop SYNs.
func backlogZeroListener(t *testing.T) net.Listener {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "backlog0")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// echoStream writes a seeded stream to an echo server through c and
// checks, byte for byte, that the same comes back. done gets the first
// difference or nil.
func echoStream(c net.Conn, seed uint64, chunk int, stop *atomic.Bool, progress *atomic.Int64) <-chan error {
	done := make(chan error, 1)
	go func() {
		w := writer(c, seed, chunk, 0, stop, false)
		g := newGen(seed)
		b, want := make([]byte, 64<<10), make([]byte, 64<<10)
		var n int64
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			k, err := c.Read(b)
			if k > 0 {
				g.fill(want[:k])
				if !bytes.Equal(b[:k], want[:k]) {
					done <- fmt.Errorf("stream %d: bytes differ at offset %d", seed, n)
					return
				}
				n += int64(k)
				progress.Add(int64(k))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				done <- fmt.Errorf("stream %d: after %d bytes: %w", seed, n, err)
				return
			}
		}
		if s := <-w; n != s.n {
			done <- fmt.Errorf("stream %d: sent %d, got back %d", seed, s.n, n)
			return
		}
		done <- nil
	}()
	return done
}

func echoServer(t *testing.T) *testServer {
	return newTestServer(t, "echo", func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
}

// Freeze then Resume, five times, under streaming traffic both ways (bulk
// streams through splice pipes, small ones through the buffer): no byte is
// lost or duplicated, and the proxy accepts again after each.
func TestHandoffFreezeResume(t *testing.T) {
	srv := echoServer(t)
	cfg := hoConfig(t, srv.config())
	old, oldLog := hoOld(t, cfg)
	var progress atomic.Int64
	var stop atomic.Bool
	defer stop.Store(true)
	var streams []<-chan error
	var local []string
	for i, chunk := range []int{1000, 4096, 256 << 10, 1 << 20} {
		c := dial(t, feAddr(cfg))
		local = append(local, c.LocalAddr().String())
		streams = append(streams, echoStream(c, uint64(10+i), chunk, &stop, &progress))
	}
	// A dial returns once the kernel has queued the connection; one still
	// in the listener's backlog at a freeze is the listener's, not a
	// connection to export (the first freeze saw 3 of 4 under -race).
	waitFor(t, "the proxy to hold every stream", func() bool {
		return countConns(old, func(c *conn) bool { return c.flags&fEstablished != 0 }) == len(streams)
	})
	for i := range 5 {
		before := progress.Load()
		waitFor(t, "bytes to move", func() bool { return progress.Load() > before })
		h, files := freeze(t, old)
		if want := 1 + 2*len(h.Conns); len(files) != want || len(h.Conns) < len(streams) {
			for _, hc := range h.Conns {
				t.Logf("conn %s: state %v, client fd %d, server fd %d, server %q, tried %q", hc.Client, hc.State, hc.ClientFD, hc.ServerFD, hc.Server, hc.Tried)
			}
			t.Fatalf("freeze %d: %d files, %d conns; the streams' clients: %v", i, len(files), len(h.Conns), local)
		}
		closeFiles(files)
		if err := old.Resume(); err != nil {
			t.Fatalf("Resume: %v", err)
		}
		c := dial(t, feAddr(cfg)) // accepting again
		c.echo(t, fmt.Sprint("after resume ", i))
		c.Close()
	}
	stop.Store(true)
	for _, s := range streams {
		select {
		case err := <-s:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("stream stuck")
		}
	}
	if err := old.Resume(); err == nil {
		t.Error("Resume without a freeze succeeded")
	}
	noErrors(t, oldLog)
}

// A client dialling every 2 ms through the freeze and the handoff is
// served: the ones that arrive while frozen wait in the backlog and the
// new proxy accepts them. None fails.
func TestHandoffListener(t *testing.T) {
	srv := newTestServer(t, "s1", nil)
	cfg := hoConfig(t, srv.config())
	old, _ := hoOld(t, cfg)
	var ok, failed, dialled atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Go(func() {
				c, err := net.DialTimeout("tcp4", feAddr(cfg), 5*time.Second)
				dialled.Add(1)
				if err != nil {
					failed.Add(1)
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				b := make([]byte, 3)
				if _, err := io.ReadFull(c, b); err != nil || string(b) != "s1\n" {
					failed.Add(1)
					return
				}
				ok.Add(1)
			})
		}
	})
	waitFor(t, "clients served", func() bool { return ok.Load() >= 5 })
	h, files := freeze(t, old)
	at := dialled.Load()
	waitFor(t, "clients dialling while frozen", func() bool { return dialled.Load() >= at+5 })
	np := adopt(t, old, cfg, h, files)
	n := ok.Load()
	waitFor(t, "clients served by the new proxy", func() bool { return ok.Load() >= n+20 })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d clients failed", failed.Load(), dialled.Load())
	}
	if !np.Status().Frontends[0].Listening {
		t.Error("new proxy not listening")
	}
	if len(h.Listeners) != 1 || h.Listeners[0].Frontend != "fe" {
		t.Errorf("listeners exported: %+v", h.Listeners)
	}
}

// After Abandon the old proxy holds no file descriptor: no loop, no
// listener, no connection, no pooled pipe.
func TestHandoffAbandonFds(t *testing.T) {
	srv := echoServer(t)
	cfg := hoConfig(t, srv.config())
	beforeList := openFds(t)
	before := nonPipeFds(beforeList)
	old, oldLog := hoOld(t, cfg)
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("tcp4", feAddr(cfg))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// A bulk round trip: pipes are taken and go back to the pool.
		msg := make([]byte, 1<<20)
		newGen(1).fill(msg)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go c.Write(msg)
		back := make([]byte, len(msg))
		if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, msg) {
			t.Fatalf("echo: %v", err)
		}
	}
	if old.pipes.Load() == 0 {
		t.Log("no pipe pooled")
	}
	h, files := freeze(t, old)
	closeFiles(files)
	held := proxyFds(old) // parked: readable from here
	if len(held) < 3*len(old.loops)+1+2*len(h.Conns) {
		t.Fatalf("only %d fds found in the old proxy", len(held))
	}
	old.Abandon()
	for fd, was := range held {
		if now := fdLink(fd); now == was {
			t.Errorf("fd %d (%s) still open after Abandon", fd, was)
		}
	}
	old.Abandon() // twice: nothing
	if err := old.Listen(); err != ErrClosed {
		t.Errorf("Listen after Abandon: %v, want ErrClosed", err)
	}
	for _, c := range conns {
		c.Close()
	}
	// At most as many as before: a descriptor an earlier test left may
	// close meanwhile, and fewer is no leak (one go test -count=3 of every
	// package saw 6 against 15, not seen again in 18 runs; the lists say
	// which next time). Each fd the old proxy held is checked by name
	// above.
	deadline := time.Now().Add(5 * time.Second)
	for countFds(t) > before && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond) // polling
	}
	if n := countFds(t); n > before {
		t.Logf("before the old proxy: %v", beforeList)
		t.Logf("now: %v", openFds(t))
		t.Fatalf("%d fds open, %d before the old proxy", n, before)
	} else if n < before {
		t.Logf("%d fds open, %d before the old proxy; before: %v; now: %v", n, before, beforeList, openFds(t))
	}
	noErrors(t, oldLog)
}
