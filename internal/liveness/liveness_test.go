package liveness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// These tests drive the real driver (goroutines, backoff, goodbyes) over
// in-memory connections under testing/synctest: the fake clock runs only
// when every goroutine waits. tcp_test.go does the same over real sockets.

var (
	selfNode = Node{Name: "lb1", Addr: netip.MustParseAddr("10.0.0.1")}
	peerNode = Node{Name: "lb2", Addr: netip.MustParseAddr("10.0.0.2")}
)

// fakePeer is the other end of one in-memory connection.
type fakePeer struct {
	c    net.Conn
	got  chan message
	done chan struct{}
}

func newFakePeer(c net.Conn) *fakePeer {
	f := &fakePeer{c: c, got: make(chan message, 256), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		r := bufio.NewReader(c)
		for {
			m, err := readMsg(r)
			if err != nil {
				return
			}
			select {
			case f.got <- m:
			default:
			}
		}
	}()
	return f
}

func (f *fakePeer) send(t *testing.T, m message) {
	t.Helper()
	if err := writeMsg(f.c, m); err != nil {
		t.Fatalf("fake peer send %v: %v", m.T, err)
	}
}

func (f *fakePeer) hello(t *testing.T, sources ...netip.Addr) {
	f.send(t, message{T: "hello", V: 1, Node: peerNode.Name, Sources: sources})
}

// received lists the types of the messages it got so far.
func (f *fakePeer) received() []string {
	var out []string
	for {
		select {
		case m := <-f.got:
			out = append(out, m.T+":"+m.Reason)
		default:
			return out
		}
	}
}

// resettable lets a test make the next read end as a RST would.
type resettable struct {
	net.Conn
	reset *atomic.Bool
}

func (r resettable) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if err != nil && r.reset.Load() {
		return n, fmt.Errorf("read tcp: %w", syscall.ECONNRESET)
	}
	return n, err
}

type harness struct {
	l       *Liveness
	cancel  context.CancelFunc
	done    chan struct{}
	peers   chan *fakePeer
	dials   atomic.Int32
	refuse  atomic.Bool
	reset   atomic.Bool
	verdict atomic.Int32
	probes  atomic.Int32

	mu   sync.Mutex
	gone []string
}

// start runs a Liveness for selfNode with one peer, which it dials (the
// lower address dials) over net.Pipe.
func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{peers: make(chan *fakePeer, 16), done: make(chan struct{})}
	h.verdict.Store(int32(Gone))
	cfg := Config{
		Self: selfNode, Peers: []Node{peerNode}, Port: 9602, Log: zerolog.Nop(), noListen: true,
		Gone: func(p Node, src []netip.Addr, reason string) {
			h.mu.Lock()
			h.gone = append(h.gone, fmt.Sprintf("%s %v %s", p.Name, src, reason))
			h.mu.Unlock()
		},
	}
	cfg.dial = func(ctx context.Context, p Node) (net.Conn, error) {
		h.dials.Add(1)
		if h.refuse.Load() {
			return nil, fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
		}
		a, b := net.Pipe()
		h.peers <- newFakePeer(b)
		return resettable{a, &h.reset}, nil
	}
	cfg.probe = func(ctx context.Context, p Node) Verdict {
		h.probes.Add(1)
		return Verdict(h.verdict.Load())
	}
	h.l = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); h.l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

func (h *harness) next(t *testing.T) *fakePeer {
	t.Helper()
	synctest.Wait()
	select {
	case f := <-h.peers:
		return f
	default:
		t.Fatal("no connection dialed")
		return nil
	}
}

func (h *harness) goneCalls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.gone...)
}

func (h *harness) state(t *testing.T) PeerStatus {
	t.Helper()
	st := h.l.Status()
	if len(st) != 1 {
		t.Fatalf("status %+v", st)
	}
	return st[0]
}

// up dials, exchanges hellos and returns the fake peer.
func (h *harness) up(t *testing.T) *fakePeer {
	t.Helper()
	f := h.next(t)
	f.hello(t, netip.MustParseAddr("fe80::2"))
	synctest.Wait()
	if st := h.state(t); st.State != "up" {
		t.Fatalf("state %+v, want up", st)
	}
	if got := f.received(); len(got) == 0 || got[0] != "hello:" {
		t.Fatalf("peer got %v, want a hello first", got)
	}
	return f
}

// A connection that ends with a FIN and no goodbye, confirmed by the
// host (port unreachable): reported once, with the sources the peer
// named in its hello; then the dialing side reconnects.
func TestCrashReportedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t)
		f := h.up(t)
		f.c.Close() // the kernel closes a dead process's socket
		synctest.Wait()
		got := h.goneCalls()
		if len(got) != 1 || !strings.HasPrefix(got[0], "lb2 [fe80::2] liveness: tcp/9602 closed (FIN) without a goodbye, udp/9602 port unreachable") {
			t.Fatalf("Gone calls %q", got)
		}
		if st := h.state(t); st.Crashes != 1 || st.State != "down" {
			t.Errorf("status %+v", st)
		}
		// Reconnects at once; the new connection comes up.
		h.up(t)
		if n := len(h.goneCalls()); n != 1 {
			t.Errorf("%d Gone calls after reconnecting", n)
		}
	})
}

// The peer's goodbye (a stop, a restart, a hitless restart) makes the end
// that follows a planned one: no question asked, nothing reported.
func TestGoodbyeIsNotACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t)
		f := h.up(t)
		f.send(t, message{T: "bye", Reason: "stopping (SIGTERM)"})
		synctest.Wait()
		f.c.Close()
		synctest.Wait()
		if got := h.goneCalls(); len(got) != 0 || h.probes.Load() != 0 {
			t.Fatalf("Gone %v, probes %d after a goodbye", got, h.probes.Load())
		}
		if st := h.state(t); st.Goodbyes != 1 || st.LastEnd != "goodbye: stopping (SIGTERM)" {
			t.Errorf("status %+v", st)
		}
	})
}

// A RST while the peer's vipd answers the UDP question (a firewall's
// `reject with tcp reset`): nothing reported, a problem in status naming
// the firewall; a RST with no answer at all: nothing reported either.
func TestResetWhileAliveIsAProblem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t)
		f := h.up(t)
		h.verdict.Store(int32(Alive))
		h.reset.Store(true)
		f.c.Close()
		synctest.Wait()
		if got := h.goneCalls(); len(got) != 0 {
			t.Fatalf("Gone %v although the peer answers", got)
		}
		st := h.state(t)
		if st.AliveAfterEnd != 1 || !strings.Contains(st.Problem, "firewall or middlebox is cutting tcp/9602") || !strings.Contains(st.LastEnd, "reset (RST)") {
			t.Errorf("status %+v", st)
		}
		h.reset.Store(false)
		f = h.up(t) // a good connection clears the problem
		if st := h.state(t); st.Problem != "" {
			t.Errorf("problem kept: %q", st.Problem)
		}
		h.verdict.Store(int32(Unknown))
		f.c.Close()
		synctest.Wait()
		if got := h.goneCalls(); len(got) != 0 || h.state(t).Unconfirmed != 1 {
			t.Fatalf("Gone %v / status %+v on an unconfirmed end", got, h.state(t))
		}
	})
}

// A peer that never completes a hello (keepalived's host refuses; some
// other service accepts) is never reported, whatever happens to it.
func TestNoHelloNeverReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t)
		f := h.next(t)
		f.c.Close()
		synctest.Wait()
		f = h.next(t)
		time.Sleep(helloTimeout + time.Millisecond) // silent: the hello times out
		synctest.Wait()
		if got := f.received(); len(got) < 2 || got[0] != "hello:" || got[len(got)-1] != "bye:protocol error" {
			t.Errorf("a silent peer got %v, want hello then a goodbye", got)
		}
		if got := h.goneCalls(); len(got) != 0 || h.probes.Load() != 0 {
			t.Errorf("Gone %v probes %d for a peer that never said hello", got, h.probes.Load())
		}
		h.refuse.Store(true)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if h.probes.Load() != 0 {
			t.Errorf("refused dials of a peer that never spoke liveness were asked about")
		}
		if st := h.state(t); st.State != "down" || !strings.Contains(st.DialError, "connection refused") {
			t.Errorf("status %+v", st)
		}
	})
}

// Reconnecting: refused dials back off 100 ms doubling to 2 s; once the
// peer listens again it is up within the backoff.
func TestReconnectBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t)
		f := h.up(t)
		h.refuse.Store(true)
		f.c.Close()
		synctest.Wait()
		base := h.dials.Load()
		time.Sleep(100*time.Millisecond*11/10 + 200*time.Millisecond*11/10 + 400*time.Millisecond*11/10 + time.Millisecond)
		synctest.Wait()
		// One at once after the end, then after ~100, ~200, ~400 ms.
		if n := h.dials.Load() - base; n < 3 || n > 4 {
			t.Errorf("%d dials in the first 770 ms of refusals, want 3-4", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := h.dials.Load() - base; n > 4+10*11/9+1 {
			t.Errorf("%d dials: the backoff does not cap at about 2 s", n)
		}
		h.refuse.Store(false)
		var waited time.Duration
		for len(h.peers) == 0 && waited < 2200*time.Millisecond {
			time.Sleep(10 * time.Millisecond)
			waited += 10 * time.Millisecond
			synctest.Wait()
		}
		if waited > 2200*time.Millisecond {
			t.Fatalf("not redialed within the 2 s cap")
		}
		f = <-h.peers
		f.hello(t)
		synctest.Wait()
		if st := h.state(t); st.State != "up" || st.Ups != 2 {
			t.Errorf("status %+v, want up a second time", st)
		}
	})
}

// Bye is sent at once on every connection (before the handover starts),
// and stopping closes them after a goodbye too; a peer connecting
// afterwards is told at once.
func TestByeAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t)
		f := h.up(t)
		h.l.Bye("stopping (SIGTERM)")
		synctest.Wait()
		if got := f.received(); len(got) != 1 || got[0] != "bye:stopping (SIGTERM)" {
			t.Errorf("peer got %v, want the goodbye", got)
		}
		h.cancel()
		<-h.done
		<-f.done // our end closed
		if got := f.received(); len(got) != 0 {
			t.Errorf("a second goodbye or more: %v", got)
		}

		h2 := start(t)
		f2 := h2.up(t)
		h2.cancel()
		<-h2.done
		<-f2.done
		if got := f2.received(); len(got) != 1 || got[0] != "bye:stopping" {
			t.Errorf("stop without Bye: peer got %v, want a goodbye", got)
		}
	})
}

// An accepted connection from a stranger is refused; one from the peer
// replaces the current connection (the peer restarted and our old one
// is half-open) with a goodbye on the old one, and no crash.
func TestAcceptedReplaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t)
		f := h.up(t)
		a, b := net.Pipe()
		if h.l.accepted(a, netip.MustParseAddr("10.0.0.9")) {
			t.Errorf("accepted a stranger")
		}
		a.Close()
		b.Close()
		a, b = net.Pipe()
		nf := newFakePeer(b)
		if !h.l.accepted(a, peerNode.Addr) {
			t.Fatalf("refused the peer")
		}
		synctest.Wait()
		if got := f.received(); len(got) != 1 || got[0] != "bye:replaced by a newer connection" {
			t.Errorf("old connection got %v", got)
		}
		nf.hello(t)
		synctest.Wait()
		if st := h.state(t); st.State != "up" || len(h.goneCalls()) != 0 {
			t.Errorf("status %+v gone %v", st, h.goneCalls())
		}
	})
}

// Bad input from a peer is a protocol error: a goodbye and a close, never
// a crash, never a panic, and no line longer than maxLine is buffered.
func TestProtocolErrors(t *testing.T) {
	for _, bad := range []string{"not json\n", strings.Repeat("x", 5000) + "\n", "{}\n"} {
		synctest.Test(t, func(t *testing.T) {
			h := start(t)
			f := h.up(t)
			go f.c.Write([]byte(bad))
			synctest.Wait()
			<-f.done
			if got := h.goneCalls(); len(got) != 0 {
				t.Errorf("%q: Gone %v", bad[:min(len(bad), 10)], got)
			}
			if got := f.received(); len(got) != 1 || got[0] != "bye:protocol error" {
				t.Errorf("%q: peer got %v", bad[:min(len(bad), 10)], got)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want End
	}{
		{fmt.Errorf("read: %w", errors.New("EOF")), EndOther},
		{fmt.Errorf("x: %w", syscall.ECONNRESET), EndReset},
		{fmt.Errorf("x: %w", syscall.ETIMEDOUT), EndOther},
		{net.ErrClosed, EndLocal},
	} {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
