//go:build linux

package netcfg

// Root-only tests in network namespaces created here. Code that must run
// inside a namespace runs in a child process, this test binary re-executed
// under "ip netns exec" with helperEnv set (TestHelper* below), so no test
// goroutine ever switches namespaces.

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

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: needs iproute2 (ip)")
	}
}

// isHelper skips unless this process is a helper started by runHelper.
func isHelper(t *testing.T) {
	t.Helper()
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process only")
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

// TestPermissionErrors runs the operations as root without capabilities
// and checks that callers can recognise the failure with os.ErrPermission.
func TestPermissionErrors(t *testing.T) {
	l := newLab(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("SKIP: needs setpriv (util-linux)")
	}
	runHelper(t, l.nsA, "Permission", l.env(), setpriv, "--bounding-set=-all", "--inh-caps=-all")
}

func TestAddresses(t *testing.T) {
	l := newLab(t)
	runHelper(t, l.nsA, "Addresses", l.env())
}

func TestWatchVIPs(t *testing.T) {
	l := newLab(t)
	runHelper(t, l.nsA, "WatchVIPs", l.env())
}

func TestWatchLink(t *testing.T) {
	l := newLab(t)
	runHelper(t, l.nsA, "WatchLink", l.env())
}

// TestAnnouncer sends a GARP burst from A and checks on B the frames on
// the wire and that B's stale neighbour entry for the VIP moved to A's MAC.
func TestAnnouncer(t *testing.T) {
	l := newLab(t)
	env := l.env("NC_VIP=" + l.addr(100).String())
	capture := startHelper(t, l.nsB, "ARPCapture", env)
	capture.awaitReady(t)
	runHelper(t, l.nsA, "ARPSend", env)
	capture.wait(t)
}

// TestVRRPMulticast: A and B exchange adverts over 224.0.0.18 through the
// bridge. B checks source, destination, TTL 255 and the IP header (TOS
// 0xc0, DF clear) of A's packet, and that a packet sent with TTL 254
// reports 254; A checks that it never hears its own packets.
func TestVRRPMulticast(t *testing.T) {
	l := newLab(t)
	// A holds a /32 VIP and sends without an explicit source: the kernel
	// must still pick the node address.
	ip(t, "-n", l.nsA, "addr", "add", l.addr(100).String()+"/32", "dev", l.ifA)
	env := l.env("NC_MODE=multicast", "NC_SRC_A="+l.addrA.String(), "NC_SRC_B="+l.addrB.String())
	recv := startHelper(t, l.nsB, "VRRPRecv", env)
	recv.awaitReady(t)
	runHelper(t, l.nsA, "VRRPSend", env)
	recv.wait(t)
}

// TestVRRPUnicast: the same exchange addressed to the peer. A holds a VIP
// and a second address, .3, which it names as VRRPConfig.Source: adverts
// must leave from .3, which the kernel would not pick by itself.
func TestVRRPUnicast(t *testing.T) {
	l := newLab(t)
	ip(t, "-n", l.nsA, "addr", "add", l.addr(100).String()+"/32", "dev", l.ifA)
	ip(t, "-n", l.nsA, "addr", "add", l.addr(3).String()+"/32", "dev", l.ifA)
	env := l.env("NC_MODE=unicast", "NC_SRC_A="+l.addr(3).String(), "NC_SRC_B="+l.addrB.String())
	recv := startHelper(t, l.nsB, "VRRPRecv", env)
	recv.awaitReady(t)
	runHelper(t, l.nsA, "VRRPSend", env)
	recv.wait(t)
}
