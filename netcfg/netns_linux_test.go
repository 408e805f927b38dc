//go:build linux

package netcfg

// Root-only tests in network namespaces created here. Code that must run
// inside a namespace runs in a child process, this test binary re-executed
// under "ip netns exec" with helperEnv set (the TestHelper* functions), so
// no test goroutine ever switches namespaces. This file is the harness: the
// lab (two namespaces on a bridge), the helper processes and the small
// helpers both sides use.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const helperEnv = "VIPD_NETCFG_HELPER"

// needRoot skips a test that creates network namespaces: under -short
// (make unit), when not root, and without iproute2.
func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP: needs root and network namespaces; -short skips it")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: needs iproute2 (ip)")
	}
}

// isHelper skips unless this process is a helper started by runHelper.
func isHelper(t *testing.T) {
	t.Helper()
	if os.Getenv(helperEnv) != "1" {
		t.Skip("SKIP: runs only inside a namespace, started by the test that names it")
	}
}

// ip runs the ip command and fails the test on error.
func ip(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lab is two namespaces, A and B, each with one veth into a bridge that
// lives in a third namespace: 10.213.N.1/24 on A, .2 on B.
type lab struct {
	nsA, nsB, nsBr string
	ifA, ifB       string // the veth ends in A and B
	portA, portB   string // their peers, bridge ports in nsBr
	macA, macB     string
	addrA, addrB   netip.Addr
	n              int // the third octet
}

func newLab(t *testing.T) *lab {
	t.Helper()
	needRoot(t)
	id := fmt.Sprintf("%05x", rand.Uint32()&0xfffff)
	n := 1 + rand.IntN(250)
	l := &lab{
		nsA: "nc" + id + "a", nsB: "nc" + id + "b", nsBr: "nc" + id + "r",
		ifA: "nc" + id + "a", ifB: "nc" + id + "b",
		portA: "nc" + id + "pa", portB: "nc" + id + "pb",
		macA:  fmt.Sprintf("02:13:%02x:%s:%s:0a", n, id[1:3], id[3:5]),
		macB:  fmt.Sprintf("02:13:%02x:%s:%s:0b", n, id[1:3], id[3:5]),
		addrA: netip.AddrFrom4([4]byte{10, 213, byte(n), 1}),
		addrB: netip.AddrFrom4([4]byte{10, 213, byte(n), 2}),
		n:     n,
	}
	for _, ns := range []string{l.nsA, l.nsB, l.nsBr} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() {
			// Deleting the namespace destroys the links inside it.
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("cleanup: ip netns del %s: %v %s", ns, err, out)
			}
		})
	}
	ip(t, "-n", l.nsBr, "link", "add", "br"+id, "type", "bridge")
	ip(t, "-n", l.nsBr, "link", "set", "br"+id, "up")
	for _, e := range []struct{ ns, ifname, port, mac string }{
		{l.nsA, l.ifA, l.portA, l.macA},
		{l.nsB, l.ifB, l.portB, l.macB},
	} {
		ip(t, "-n", l.nsBr, "link", "add", e.port, "type", "veth", "peer", "name", e.ifname, "netns", e.ns)
		ip(t, "-n", l.nsBr, "link", "set", e.port, "master", "br"+id, "up")
		ip(t, "-n", e.ns, "link", "set", e.ifname, "address", e.mac)
		ip(t, "-n", e.ns, "link", "set", "lo", "up")
	}
	ip(t, "-n", l.nsA, "addr", "add", l.addrA.String()+"/24", "dev", l.ifA)
	ip(t, "-n", l.nsB, "addr", "add", l.addrB.String()+"/24", "dev", l.ifB)
	ip(t, "-n", l.nsA, "link", "set", l.ifA, "up")
	ip(t, "-n", l.nsB, "link", "set", l.ifB, "up")
	return l
}

// addr returns 10.213.N.host.
func (l *lab) addr(host byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 213, byte(l.n), host}) }

// env is the helper environment describing the lab.
func (l *lab) env(extra ...string) []string {
	return append([]string{
		"NC_IF_A=" + l.ifA, "NC_IF_B=" + l.ifB,
		"NC_ADDR_A=" + l.addrA.String(), "NC_ADDR_B=" + l.addrB.String(),
		"NC_MAC_A=" + l.macA, "NC_MAC_B=" + l.macB,
		"NC_NS_BR=" + l.nsBr, "NC_PORT_A=" + l.portA,
		fmt.Sprintf("NC_N=%d", l.n),
	}, extra...)
}

func newLab6(t *testing.T) *lab {
	t.Helper()
	l := newLab(t)
	ip(t, "-n", l.nsA, "-6", "addr", "add", l.addr6(1).String()+"/64", "dev", l.ifA, "nodad")
	ip(t, "-n", l.nsB, "-6", "addr", "add", l.addr6(2).String()+"/64", "dev", l.ifB, "nodad")
	// The link-local addresses run DAD (about a second): wait until both
	// are usable as a source.
	for _, e := range [][2]string{{l.nsA, l.ifA}, {l.nsB, l.ifB}} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			out := ip(t, "-n", e[0], "-6", "addr", "show", "dev", e[1], "scope", "link")
			if strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("link-local address on %s not ready:\n%s", e[1], out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return l
}

// addr6 returns fd77:N::host.
func (l *lab) addr6(host byte) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x77, 2: byte(l.n >> 8), 3: byte(l.n), 15: host})
}

func (l *lab) env6(extra ...string) []string {
	return l.env(append([]string{"NC_ADDR6_A=" + l.addr6(1).String(), "NC_ADDR6_B=" + l.addr6(2).String()}, extra...)...)
}

// helper is a child process running one TestHelper* inside a namespace.
type helper struct {
	name  string
	mu    sync.Mutex
	out   bytes.Buffer
	ready chan struct{}
	done  chan struct{}
	err   error // valid after done
}

func (h *helper) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// startHelper starts TestHelper<name> in namespace ns. The child prints a
// line "READY" when it is set up; the child is killed at cleanup at the
// latest.
func startHelper(t *testing.T, ns, name string, env []string, wrap ...string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	args := append(append([]string{"netns", "exec", ns}, wrap...), exe,
		"-test.run=^TestHelper"+name+"$", "-test.v", "-test.count=1", "-test.timeout=50s")
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(append(os.Environ(), helperEnv+"=1"), env...)
	h := &helper{name: name, ready: make(chan struct{}), done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start helper %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			h.mu.Lock()
			h.out.WriteString(sc.Text() + "\n")
			h.mu.Unlock()
			if sc.Text() == "READY" {
				once.Do(func() { close(h.ready) })
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		h.err = cmd.Wait()
		pw.Close()
		close(h.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	return h
}

// awaitReady waits until the helper printed READY.
func (h *helper) awaitReady(t *testing.T) {
	t.Helper()
	select {
	case <-h.ready:
	case <-h.done:
		t.Fatalf("helper %s exited before READY: %v\n%s", h.name, h.err, h.output())
	case <-time.After(20 * time.Second):
		t.Fatalf("helper %s not READY after 20s\n%s", h.name, h.output())
	}
}

// wait waits for the helper to exit and fails the test if it failed.
func (h *helper) wait(t *testing.T) {
	t.Helper()
	select {
	case <-h.done:
	case <-time.After(55 * time.Second):
		t.Fatalf("helper %s still running after 55s\n%s", h.name, h.output())
	}
	if h.err != nil {
		t.Fatalf("helper %s: %v\n%s", h.name, h.err, h.output())
	}
	if testing.Verbose() {
		t.Logf("helper %s:\n%s", h.name, h.output())
	}
}

// runHelper runs TestHelper<name> in ns to completion, under the command
// prefix wrap if given.
func runHelper(t *testing.T, ns, name string, env []string, wrap ...string) {
	t.Helper()
	startHelper(t, ns, name, env, wrap...).wait(t)
}

func env(t *testing.T, key string) string {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		t.Fatalf("helper: %s not set", key)
	}
	return v
}

func envAddr(t *testing.T, key string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(env(t, key))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// labAddr returns 10.213.N.host for the helper's lab.
func labAddr(t *testing.T, host byte) netip.Addr {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(env(t, "NC_N"), &n); err != nil {
		t.Fatal(err)
	}
	return netip.AddrFrom4([4]byte{10, 213, byte(n), host})
}

// await receives from ch within d.
func await[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
		panic("unreachable")
	}
}

// poll calls cond every 20ms until it returns true, failing after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, d)
		}
		<-tick.C
	}
}

func execIP(ctx context.Context, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, "ip", args...).CombinedOutput()
}

func runIP(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return execIP(ctx, args...)
}
