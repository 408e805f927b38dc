//go:build linux

package proxy

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A short write left bytes in the proxy (the receiver does not read):
// they are exported, written first by the new proxy, and every byte
// arrives once and in order. Both directions.
func TestHandoffPendingBytes(t *testing.T) {
	for _, d := range []int{0, 1} {
		t.Run(dirName[d], func(t *testing.T) {
			testHandoffStream(t, d, 1000, true, func(c *conn) bool {
				return len(c.pending(d)) > 0 && c.pipes[d] == nil && c.flags&dirFlags[d].write == 0
			})
		})
	}
}

// Bytes sitting in a splice pipe (bulk stream, receiver not reading) are
// read out of the pipe into the Handoff: no pipe crosses over, no byte is
// lost. Both directions.
func TestHandoffSplicePipe(t *testing.T) {
	for _, d := range []int{0, 1} {
		t.Run(dirName[d], func(t *testing.T) {
			testHandoffStream(t, d, 1<<20, false, func(c *conn) bool {
				return c.pipes[d] != nil && c.pipes[d].n > 0 && c.flags&dirFlags[d].write == 0
			})
		})
	}
}

var dirName = [2]string{"client to server", "server to client"}

// testHandoffStream streams in direction d (0: client to server) to a
// receiver that reads nothing until the proxy is in the state stuck
// describes, freezes and resumes once (the bytes held move to the
// connection's buffer), hands over, lets the receiver read, and checks
// the checksum.
func testHandoffStream(t *testing.T, d, chunk int, paced bool, stuck func(*conn) bool) {
	ln := smallBufListener(t)
	release := make(chan struct{})
	got, sent := make(chan sum, 1), make(chan sum, 1)
	var stop atomic.Bool
	// send streams from c; recv reads c once released.
	send := func(c net.Conn) { sent <- <-writer(c, 1, chunk, 0, &stop, paced) }
	recv := func(c net.Conn) {
		<-release
		s, _ := readSum(c)
		got <- s
	}
	srvRole, cliRole := recv, send
	if d == 1 {
		srvRole, cliRole = send, recv
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		srvRole(c)
	}()
	cfg := hoConfig(t, ServerConfig{Name: "sink", Addr: mustAddrPort(ln.Addr().String())})
	old, _ := hoOld(t, cfg)
	c := smallBufDial(t, feAddr(cfg))
	go cliRole(c)
	waitFor(t, "bytes held in the proxy", func() bool { return anyConn(old, stuck) })
	stop.Store(true)

	held := func(h *Handoff) int { return len(h.Conns[0].ToServer) + len(h.Conns[0].ToClient) }
	h, files := freeze(t, old)
	if len(h.Conns) != 1 || held(h) == 0 {
		t.Fatalf("nothing held exported: %d conns", len(h.Conns))
	}
	closeFiles(files)
	if err := old.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	h, files = freeze(t, old)
	if len(h.Conns) != 1 || held(h) == 0 {
		t.Fatalf("after resume: %d conns exported", len(h.Conns))
	}
	// The loops are parked: their state can be read from here.
	for _, l := range old.loops {
		for _, c := range l.clients() {
			if c.pipes[0] != nil || c.pipes[1] != nil {
				t.Fatal("a connection kept a pipe through the freeze")
			}
		}
	}
	adopt(t, old, cfg, h, files)
	close(release)
	var want, have sum
	select {
	case want = <-sent:
	case <-time.After(20 * time.Second):
		t.Fatal("sender stuck")
	}
	select {
	case have = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("receiver stuck")
	}
	if have != want {
		t.Fatalf("received %d bytes (sha %x), sent %d (sha %x)", have.n, have.sha[:4], want.n, want.sha[:4])
	}
}

// smallRcvbuf sets a small receive buffer before listen or connect, so a
// receiver that does not read fills up fast.
func smallRcvbuf(_, _ string, rc syscall.RawConn) error {
	var err error
	rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	return err
}

// smallBufListener listens on 127.0.0.1 with a small receive buffer
// (inherited by accepted sockets).
func smallBufListener(t *testing.T) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: smallRcvbuf}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// smallBufDial connects with a small receive buffer.
func smallBufDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: smallRcvbuf}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
