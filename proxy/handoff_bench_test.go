package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkFreezeResume measures a Freeze (stop every loop, export and
// duplicate every socket) and its Resume, with n idle connections: the
// time the proxy's traffic stands still in a rollback, and the part of a
// handoff's pause the proxy adds.
func BenchmarkFreezeResume(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint(n, "conns"), func(b *testing.B) {
			p, addr := benchEchoProxy(b)
			benchConns(b, addr, n)
			b.ResetTimer()
			for range b.N {
				h, files, err := p.Freeze(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if len(h.Conns) != n {
					b.Fatalf("%d conns exported, want %d", len(h.Conns), n)
				}
				for _, f := range files {
					f.Close()
				}
				if err := p.Resume(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchEchoProxy runs a proxy to an echo server and returns it with its
// address.
func benchEchoProxy(b *testing.B) (*Proxy, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); io.Copy(c, c) })
		}
	})
	p, err := New(oneBackend("", ServerConfig{Name: "s", Addr: mustAddrPort(ln.Addr().String())}), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sdone := make(chan struct{})
	go func() { p.Serve(ctx, "fe", pln); close(sdone) }()
	// Cleanups run last-in first-out: the connections close first.
	b.Cleanup(func() { cancel(); <-sdone; <-done; ln.Close(); wg.Wait() })
	return p, pln.Addr().String()
}

// benchConns opens n connections through addr, each checked by an echo.
func benchConns(b *testing.B, addr string, n int) {
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
	}
}
