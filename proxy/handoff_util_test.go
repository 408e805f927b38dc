//go:build linux

package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Helpers of the handoff tests: an old proxy, a second Proxy in the same
// process standing for the new one, byte streams checked end to end.

// hoConfig is one frontend on a free 127.0.0.1 port to backend be.
func hoConfig(t *testing.T, servers ...ServerConfig) Config {
	t.Helper()
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))
	return Config{
		Frontends: []FrontendConfig{{Name: "fe", Backend: "be", Binds: []netip.AddrPort{ap}}},
		Backends:  []BackendConfig{{Name: "be", Servers: servers}},
	}
}

func feAddr(cfg Config) string { return cfg.Frontends[0].Binds[0].String() }

// hoOld starts the old proxy, listening; its log goes to the returned
// buffer.
func hoOld(t *testing.T, cfg Config) (*Proxy, *syncBuf) {
	t.Helper()
	buf := &syncBuf{}
	p := startProxy(t, cfg, zerolog.New(buf))
	if err := p.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	return p, buf
}

// freeze freezes p and checks the Handoff survives JSON.
func freeze(t *testing.T, p *Proxy) (*Handoff, []*os.File) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, files, err := p.Freeze(ctx)
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	t.Cleanup(func() { p.Resume() }) // a test that failed while frozen
	// A test that failed before closing them: a duplicate held here keeps
	// the socket open after the proxy closes its own, and a backend's
	// cleanup would wait forever for the connection to end.
	t.Cleanup(func() { closeFiles(files) })
	data, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("marshal Handoff: %v", err)
	}
	var back Handoff
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("unmarshal Handoff: %v", err)
	}
	return &back, files
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// handover freezes old, adopts into a new Proxy built from cfg (Adopt,
// Listen, CloseAdopted, Run: the new process's order), then abandons old.
// It returns the new proxy and what was handed over.
func handover(t *testing.T, old *Proxy, cfg Config) (*Proxy, *Handoff) {
	t.Helper()
	h, files := freeze(t, old)
	return adopt(t, old, cfg, h, files), h
}

// adopt is handover after the freeze.
func adopt(t *testing.T, old *Proxy, cfg Config, h *Handoff, files []*os.File) *Proxy {
	t.Helper()
	np := adoptOnly(t, cfg, h, files)
	if err := np.Listen(); err != nil {
		t.Fatalf("Listen after Adopt: %v", err)
	}
	np.CloseAdopted()
	runAndAbandon(t, np, old)
	return np
}

// adoptOnly is the new process up to Adopt: not listening, not running.
func adoptOnly(t *testing.T, cfg Config, h *Handoff, files []*os.File) *Proxy {
	t.Helper()
	np, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := np.Adopt(h, files); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	return np
}

// runAndAbandon runs np (stopped at the test's end) and then lets old go.
func runAndAbandon(t *testing.T, np, old *Proxy) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { np.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("new proxy's Run did not return")
		}
	})
	old.Abandon()
}

// anyConn reports whether some connection of p satisfies f, looked at
// from its loop.
func anyConn(p *Proxy, f func(c *conn) bool) bool { return countConns(p, f) > 0 }

// countConns counts the connections of p that satisfy f, looked at from
// their loops.
func countConns(p *Proxy, f func(c *conn) bool) int {
	n := 0
	for _, l := range p.loops {
		l.do(func(l *loop) {
			for _, c := range l.clients() {
				if f(c) {
					n++
				}
			}
		})
	}
	return n
}

// gen is a reproducible byte stream.
type gen struct {
	r   *rand.Rand
	buf [8]byte
	i   int
}

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, 7))} }

func (g *gen) fill(b []byte) {
	for k := range b {
		if g.i == 0 {
			binary.LittleEndian.PutUint64(g.buf[:], g.r.Uint64())
		}
		b[k] = g.buf[g.i]
		g.i = (g.i + 1) % 8
	}
}

// sum is a byte count and a SHA-256.
type sum struct {
	n   int64
	sha [32]byte
}

// writer writes seeded chunks to c until stop is set (or max bytes), then
// half-closes it; done delivers what it wrote.
func writer(c net.Conn, seed uint64, chunk int, max int64, stop *atomic.Bool, paced bool) <-chan sum {
	if cl, ok := c.(*client); ok {
		c = cl.Conn
	}
	done := make(chan sum, 1)
	go func() {
		g, h := newGen(seed), sha256.New()
		b := make([]byte, chunk)
		var n int64
		for !stop.Load() && (max == 0 || n < max) {
			g.fill(b)
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			w, err := c.Write(b)
			h.Write(b[:w])
			n += int64(w)
			if err != nil {
				break
			}
			if paced {
				// One chunk at a time: the proxy reads each one alone, so
				// it stays in buffer mode (no splice).
				for !stop.Load() && outq(c) > 0 {
					time.Sleep(20 * time.Microsecond) // polling the socket's queue
				}
			}
		}
		c.(*net.TCPConn).CloseWrite()
		var s sum
		s.n = n
		copy(s.sha[:], h.Sum(nil))
		done <- s
	}()
	return done
}

// outq is the bytes of c not yet acknowledged by the peer (SIOCOUTQ).
func outq(c net.Conn) int {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) })
	return n
}

// readSum reads r to EOF.
func readSum(r io.Reader) (sum, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var s sum
	s.n = n
	copy(s.sha[:], h.Sum(nil))
	return s, err
}

// noErrors fails if the log holds a warning or an error.
func noErrors(t *testing.T, log *syncBuf) {
	t.Helper()
	for line := range strings.SplitSeq(log.String(), "\n") {
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
			t.Errorf("old proxy logged: %s", line)
		}
	}
}

// countFds counts this process's open file descriptors but pipes.
func countFds(t *testing.T) int {
	t.Helper()
	return nonPipeFds(openFds(t))
}

// nonPipeFds counts the fds in an openFds map that are not pipes (Go's
// io.Copy keeps a pool of splice pipes that come and go with the garbage
// collector).
func nonPipeFds(fds map[int]string) int {
	n := 0
	for _, l := range fds {
		if !strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// fdLink returns what fd refers to (/proc/self/fd).
func fdLink(fd int) string {
	l, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return l
}

// proxyFds lists every fd p holds (its loops must be parked or stopped):
// epoll, eventfd, spare, listeners, connections, pooled pipes.
func proxyFds(p *Proxy) map[int]string {
	fds := map[int]string{}
	add := func(fd int) {
		if fd >= 0 {
			fds[fd] = fdLink(fd)
		}
	}
	for _, l := range p.loops {
		add(l.epfd)
		add(l.efd)
		add(l.spare)
		for _, ls := range l.lns {
			add(int(ls.fd))
		}
		for _, c := range l.clients() {
			add(int(c.cfd))
			add(int(c.sfd))
		}
		for _, pp := range l.free {
			add(pp.r)
			add(pp.w)
		}
	}
	return fds
}

// openFds maps this process's open file descriptors to what each refers
// to (/proc/self/fd). The directory's own fd is closed before its entries
// are read, so it is not in the map.
func openFds(t *testing.T) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := make(map[int]string, len(ents))
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		if l := fdLink(fd); l != "" {
			fds[fd] = l
		}
	}
	return fds
}
