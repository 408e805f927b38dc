package liveness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Over real sockets on loopback (127.0.0.1 is lb1, 127.0.0.2 is lb2, both
// on one port): the kernel's FIN, RST and ICMP port unreachable are the
// signals, as between two hosts.

var (
	lo1 = Node{Name: "lb1", Addr: netip.MustParseAddr("127.0.0.1")}
	lo2 = Node{Name: "lb2", Addr: netip.MustParseAddr("127.0.0.2")}
)

func TestMain(m *testing.M) {
	if os.Getenv("LIVENESS_TEST_PEER") != "" {
		os.Exit(peerMain())
	}
	os.Exit(m.Run())
}

// peerMain is lb2 in its own process until killed.
func peerMain() int {
	port, _ := strconv.Atoi(os.Getenv("LIVENESS_TEST_PEER"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	up := make(chan struct{}, 1)
	l := New(Config{Self: lo2, Peers: []Node{lo1}, Port: uint16(port), Log: zerolog.Nop(),
		Changed: func() {
			select {
			case up <- struct{}{}:
			default:
			}
		}})
	go func() {
		for range up {
			if st := l.Status(); len(st) == 1 && st[0].State == "up" {
				fmt.Println("up")
				return
			}
		}
	}()
	l.Run(ctx)
	return 0
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := true
		for _, a := range []string{"127.0.0.1", "127.0.0.2"} {
			for _, nw := range []string{"tcp", "udp"} {
				var c interface{ Close() error }
				var err error
				if nw == "tcp" {
					c, err = net.Listen(nw, fmt.Sprintf("%s:%d", a, port))
				} else {
					c, err = net.ListenPacket(nw, fmt.Sprintf("%s:%d", a, port))
				}
				if err != nil {
					ok = false
				} else {
					c.Close()
				}
			}
		}
		if ok {
			return uint16(port)
		}
	}
	t.Fatal("no free port on 127.0.0.1 and 127.0.0.2")
	return 0
}

type recorder struct {
	mu   sync.Mutex
	gone []time.Time
	why  []string
	ch   chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 64)} }

func (r *recorder) cfg(self Node, peers []Node, port uint16) Config {
	return Config{Self: self, Peers: peers, Port: port, Log: zerolog.Nop(),
		Gone: func(p Node, src []netip.Addr, reason string) {
			r.mu.Lock()
			r.gone = append(r.gone, time.Now())
			r.why = append(r.why, fmt.Sprintf("%s %v %s", p.Name, src, reason))
			r.mu.Unlock()
			r.ch <- struct{}{}
		},
		Changed: func() {
			select {
			case r.ch <- struct{}{}:
			default:
			}
		}}
}

func (r *recorder) calls() ([]time.Time, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.gone...), append([]string(nil), r.why...)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isUp(l *Liveness) bool {
	st := l.Status()
	return len(st) == 1 && st[0].State == "up"
}

func runL(t *testing.T, l *Liveness) (context.CancelFunc, chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel, done
}

// The other vipd's process is SIGKILLed: its kernel closes the connection
// and then answers the UDP question with port unreachable. Reported once,
// within milliseconds.
func TestRealProcessKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts a process (-short)")
	}
	port := freePort(t)
	rec := newRecorder()
	l := New(rec.cfg(lo1, []Node{lo2}, port))
	runL(t, l)
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "LIVENESS_TEST_PEER="+strconv.Itoa(int(port)))
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "up" {
		t.Fatalf("peer process said %q", line)
	}
	waitUntil(t, 5*time.Second, "up", func() bool { return isUp(l) })
	killed := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	waitUntil(t, 2*time.Second, "reported gone", func() bool { g, _ := rec.calls(); return len(g) > 0 })
	gone, why := rec.calls()
	t.Logf("SIGKILL -> reported gone after %v: %s", gone[0].Sub(killed).Round(time.Microsecond), why[0])
	if !strings.HasPrefix(why[0], "lb2 [127.0.0.2] liveness: tcp/") {
		t.Errorf("reason %q", why[0])
	}
	time.Sleep(300 * time.Millisecond) // redials are refused meanwhile
	if g, _ := rec.calls(); len(g) != 1 {
		t.Errorf("reported %d times", len(g))
	}
}

// Two real nodes: a planned stop (Bye, then close) is never a crash, on
// either side.
func TestRealGoodbye(t *testing.T) {
	port := freePort(t)
	r1, r2 := newRecorder(), newRecorder()
	l1, l2 := New(r1.cfg(lo1, []Node{lo2}, port)), New(r2.cfg(lo2, []Node{lo1}, port))
	runL(t, l1)
	cancel2, done2 := runL(t, l2)
	waitUntil(t, 5*time.Second, "up on both", func() bool { return isUp(l1) && isUp(l2) })
	l2.Bye("stopping (SIGTERM)")
	cancel2()
	<-done2
	waitUntil(t, 2*time.Second, "down", func() bool { return !isUp(l1) })
	time.Sleep(100 * time.Millisecond)
	if g, why := r1.calls(); len(g) != 0 {
		t.Fatalf("a planned stop was reported as a crash: %v", why)
	}
	if st := l1.Status()[0]; st.Goodbyes != 1 {
		t.Errorf("lb1 saw %+v, want one goodbye", st)
	}
}

// A RST from a firewall or middlebox (here the peer's socket aborted
// with SO_LINGER 0) while the peer's vipd answers on UDP: not a crash,
// and a problem that says why.
func TestRealResetWhileAlive(t *testing.T) {
	port := freePort(t)
	// A peer that speaks liveness by hand: TCP on lo2, and the echo.
	ln, err := net.Listen("tcp", netip.AddrPortFrom(lo2.Addr, port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo2.Addr, port)))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go serveEcho(pc, "lb2", func(a netip.Addr) bool { return a == lo1.Addr })

	rec := newRecorder()
	l := New(rec.cfg(lo1, []Node{lo2}, port))
	runL(t, l)
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	writeMsg(c, message{T: "hello", V: 1, Node: "lb2"})
	waitUntil(t, 3*time.Second, "up", func() bool { return isUp(l) })
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // RST
	waitUntil(t, 2*time.Second, "the reset judged", func() bool { return l.Status()[0].AliveAfterEnd == 1 })
	if g, why := rec.calls(); len(g) != 0 {
		t.Fatalf("a reset while the peer answers was reported: %v", why)
	}
	st := l.Status()[0]
	if !strings.Contains(st.LastEnd, "reset (RST) without a goodbye, but lb2's vipd answers") || !strings.Contains(st.Problem, "firewall") {
		t.Errorf("status %+v", st)
	}
	// The UDP question alone, against a closed port: port unreachable.
	pc.Close()
	if v := probeUDP(context.Background(), lo1.Addr, netip.AddrPortFrom(lo2.Addr, port)); v != Gone {
		t.Errorf("probe of a closed port: %v, want %v", v, Gone)
	}
}
