//go:build linux

package proxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// benchTargets returns the direct address of a backend and the proxied one.
func benchTargets(b *testing.B, handler func(net.Conn)) map[string]string {
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
			wg.Go(func() { defer c.Close(); handler(c) })
		}
	})
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	srv := ServerConfig{Name: "s", Addr: mustAddrPort(ln.Addr().String())}
	p, err := New(oneBackend("", srv), zerolog.Nop())
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
	b.Cleanup(func() { cancel(); <-sdone; <-done })
	return map[string]string{"direct": ln.Addr().String(), "proxy": pln.Addr().String()}
}

// BenchmarkProxyThroughput streams 128 KiB writes to a sink, direct and
// through the proxy; compare the MB/s of the two sub-benchmarks.
func BenchmarkProxyThroughput(b *testing.B) {
	targets := benchTargets(b, func(c net.Conn) { io.Copy(io.Discard, c) })
	for _, name := range []string{"direct", "proxy"} {
		b.Run(name, func(b *testing.B) {
			c, err := net.DialTimeout("tcp", targets[name], 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 128<<10)
			b.SetBytes(int64(len(buf)))
			c.SetWriteDeadline(time.Now().Add(time.Minute))
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConnRate opens a connection, moves one byte each way and closes
// it, direct and through the proxy, from 8 parallel clients.
func BenchmarkConnRate(b *testing.B) {
	targets := benchTargets(b, func(c net.Conn) { io.Copy(c, c) })
	for _, name := range []string{"direct", "proxy"} {
		b.Run(name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				one := []byte{1}
				for pb.Next() {
					c, err := net.DialTimeout("tcp", targets[name], 5*time.Second)
					if err != nil {
						b.Error(err)
						return
					}
					c.SetDeadline(time.Now().Add(5 * time.Second))
					c.Write(one)
					if _, err := io.ReadFull(c, one); err != nil {
						b.Error(err)
					}
					c.Close()
				}
			})
		})
	}
}
