//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/control"
)

// Bin is the binary under test, built once in TestMain.
var Bin string

var labSeq atomic.Int32

// Lab is an L2 segment for one test: a bridge in its own namespace and one
// namespace per host, joined by veth pairs. Names carry a per-test id so
// parallel runs never collide; everything is deleted in t.Cleanup.
type Lab struct {
	t      testing.TB
	ID     string
	Subnet netip.Prefix // 10.77.N.0/24
	sw     string       // switch namespace holding the bridge
	hosts  map[string]*Host
	dir    string
}

// Host is one namespace on the lab segment.
type Host struct {
	Name string // short logical name: lb1, client, cp1
	NS   string // namespace name
	If   string // interface name inside NS (always "eth0")
	Addr netip.Addr
	peer string // veth end in the switch namespace
}

// RequireRoot skips a test that needs root: network namespaces, raw
// sockets, keepalived. Under -short (make unit) it always skips, so a unit
// run as root touches no namespace.
func RequireRoot(t testing.TB) {
	t.Helper()
	// testing.Short panics outside a test binary: the benchmark programs
	// (integration/bench*) drive the lab through a Bench.
	if testing.Testing() && testing.Short() {
		t.Skip("SKIP: needs root and network namespaces; -short skips it")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root (network namespaces, raw sockets)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: needs iproute2 (ip)")
	}
}

// NewLab creates the switch namespace and bridge.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	RequireRoot(t)
	n := labSeq.Add(1)
	id := fmt.Sprintf("%x%02d", os.Getpid()%0xfff, n%100)
	l := &Lab{
		t: t, ID: id, hosts: map[string]*Host{},
		Subnet: netip.MustParsePrefix(fmt.Sprintf("10.77.%d.0/24", 100+int(n)%150)),
		sw:     "vsw" + id,
		dir:    t.TempDir(),
	}
	l.IP("netns", "add", l.sw)
	t.Cleanup(func() { l.Close() })
	l.IPN(l.sw, "link", "add", "br0", "type", "bridge")
	// Forward immediately: no STP listening delay on a fresh bridge port.
	l.IPN(l.sw, "link", "set", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	l.IPN(l.sw, "link", "set", "br0", "up")
	l.IPN(l.sw, "link", "set", "lo", "up")
	return l
}

// Dir is a temporary directory for configs, sockets and logs.
func (l *Lab) Dir() string { return l.dir }

// AddHost adds a namespace with eth0 on the bridge at 10.77.N.octet.
func (l *Lab) AddHost(name string, octet int) *Host {
	l.t.Helper()
	h := &Host{
		Name: name, NS: "v" + name + l.ID, If: "eth0",
		Addr: netip.AddrFrom4([4]byte{10, 77, l.Subnet.Addr().As4()[2], byte(octet)}),
		peer: "p" + name + l.ID,
	}
	if len(h.peer) > 15 {
		l.t.Fatalf("interface name %q too long", h.peer)
	}
	l.IP("netns", "add", h.NS)
	l.hosts[name] = h
	tmp := "t" + name + l.ID
	l.IP("link", "add", tmp, "netns", h.NS, "type", "veth", "peer", "name", h.peer, "netns", l.sw)
	l.IPN(h.NS, "link", "set", tmp, "name", "eth0")
	l.IPN(h.NS, "addr", "add", h.Addr.String()+"/24", "dev", "eth0")
	l.IPN(h.NS, "link", "set", "eth0", "up")
	l.IPN(h.NS, "link", "set", "lo", "up")
	l.IPN(l.sw, "link", "set", h.peer, "master", "br0")
	l.IPN(l.sw, "link", "set", h.peer, "up")
	return h
}

// Host returns a host by logical name.
func (l *Lab) Host(name string) *Host { return l.hosts[name] }

// Addr returns the address with the given last octet on the lab subnet.
func (l *Lab) Addr(octet int) netip.Addr {
	a := l.Subnet.Addr().As4()
	a[3] = byte(octet)
	return netip.AddrFrom4(a)
}

// Cut partitions a host from the segment: its port leaves the bridge but
// keeps carrier, so the host's link stays up (a partition, not a cable
// pull: vipd goes FAULT on carrier loss). Heal puts the port back.
func (l *Lab) Cut(h *Host)  { l.IPN(l.sw, "link", "set", h.peer, "nomaster") }
func (l *Lab) Heal(h *Host) { l.IPN(l.sw, "link", "set", h.peer, "master", "br0") }

// Unplug takes the host's switch port down: the host loses carrier.
func (l *Lab) Unplug(h *Host) { l.IPN(l.sw, "link", "set", h.peer, "down") }

// Plug brings the host's switch port back up.
func (l *Lab) Plug(h *Host) { l.IPN(l.sw, "link", "set", h.peer, "up") }

// Close deletes every namespace (which deletes the veths and bridge).
func (l *Lab) Close() {
	for _, h := range l.hosts {
		exec.Command("ip", "netns", "del", h.NS).Run()
	}
	exec.Command("ip", "netns", "del", l.sw).Run()
}

// IP runs `ip ARGS` and fails the test on error.
func (l *Lab) IP(args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IPN runs `ip -n ns ARGS` and fails the test on error.
func (l *Lab) IPN(ns string, args ...string) string {
	l.t.Helper()
	return l.IP(append([]string{"-n", ns}, args...)...)
}

// Exec runs a command inside a host's namespace.
func (h *Host) Exec(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// HasAddr reports whether addr is configured on the host's eth0.
func (h *Host) HasAddr(addr netip.Addr) bool {
	out, err := exec.Command("ip", "-n", h.NS, "-j", "addr", "show", "dev", "eth0").Output()
	if err != nil {
		return false
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if json.Unmarshal(out, &links) != nil {
		return false
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Local == addr.String() {
				return true
			}
		}
	}
	return false
}

// Node is one real vipd process in a host namespace.
type Node struct {
	t       testing.TB
	Host    *Host
	Name    string
	Config  string
	Socket  string
	LogPath string
	cmd     *exec.Cmd
	done    chan error
	client  *control.Client
	bin     string   // the vipd binary
	wrap    []string // argv prefix between `ip netns exec NS` and bin
	// Env is added to the process's environment (NOTIFY_SOCKET for a
	// stand-in of systemd's notify socket, for example).
	Env []string
	// NoFile, when not 0, starts the process under
	// `prlimit --nofile=NoFile` (soft and hard).
	NoFile uint64
}

// StartNode runs `vipd run -c cfg --node name` in host's namespace.
func (l *Lab) StartNode(h *Host, name, cfgPath, socket string) *Node {
	l.t.Helper()
	return l.startNode(h, name, cfgPath, socket, Bin, 0, nil)
}

// startNode starts bin as a node; with a non-zero user it runs as that
// uid/gid with no capabilities but the binary's file capabilities, as a
// container runtime starts a non-root container (see RunAs); setup may
// set Env or NoFile first.
func (l *Lab) startNode(h *Host, name, cfgPath, socket, bin string, user int, setup func(*Node)) *Node {
	l.t.Helper()
	n := &Node{t: l.t, Host: h, Name: name, Config: cfgPath, Socket: socket,
		LogPath: filepath.Join(l.dir, name+".log"), client: control.NewClient(socket), bin: bin}
	if user != 0 {
		n.wrap = RunAs(user)
	}
	if setup != nil {
		setup(n)
	}
	n.Start()
	l.t.Cleanup(func() { n.Kill() })
	return n
}

// NetCaps are the capabilities vipd needs (the image's file capabilities
// and the pod's securityContext add them).
const NetCaps = "net_admin,net_raw,net_bind_service"

// RunAs is the argv prefix that starts a program as uid/gid user with
// the bounding set limited to NetCaps and no inheritable or ambient
// capabilities: after exec the program has only what its file
// capabilities grant within that bound, as in a non-root container.
func RunAs(user int) []string {
	id := fmt.Sprint(user)
	return []string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all,+" + strings.ReplaceAll(NetCaps, ",", ",+"), "--"}
}

// shareDir lets user create its control socket in the lab directory and
// reach the configs there (t.TempDir makes its directories 0700).
func (l *Lab) shareDir(user int) {
	l.t.Helper()
	for d := l.dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			l.t.Fatal(err)
		}
	}
	if err := os.Chown(l.dir, user, user); err != nil {
		l.t.Fatal(err)
	}
}

// Start (re)starts the process.
func (n *Node) Start() {
	n.t.Helper()
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	args := []string{"netns", "exec", n.Host.NS}
	if n.NoFile > 0 {
		args = append(args, "prlimit", fmt.Sprintf("--nofile=%d:%d", n.NoFile, n.NoFile), "--")
	}
	args = append(args, n.wrap...)
	n.cmd = exec.Command("ip", append(args, n.bin, "run", "-c", n.Config, "--node", n.Name)...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.Env = append(append(os.Environ(), "HOSTNAME="), n.Env...)
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan error, 1)
	cmd := n.cmd
	go func() { n.done <- cmd.Wait(); logf.Close() }()
}

// Pid is the vipd process id (`ip netns exec` and prlimit exec in place).
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Signal sends sig to the process.
func (n *Node) Signal(sig syscall.Signal) { n.cmd.Process.Signal(sig) }

// Stop sends sig and waits for the exit; it returns the exit error.
func (n *Node) Stop(sig syscall.Signal, timeout time.Duration) error {
	n.t.Helper()
	n.cmd.Process.Signal(sig)
	select {
	case err := <-n.done:
		n.done <- err
		return err
	case <-time.After(timeout):
		n.t.Fatalf("%s did not exit within %s after %s\n%s", n.Name, timeout, sig, n.Log())
		return nil
	}
}

// Running reports whether the process has not exited.
func (n *Node) Running() bool {
	select {
	case err := <-n.done:
		n.done <- err
		return false
	default:
		return true
	}
}

// Kill stops the process if it still runs (cleanup).
func (n *Node) Kill() {
	if n.cmd != nil && n.cmd.Process != nil && n.Running() {
		n.cmd.Process.Signal(syscall.SIGCONT)
		n.cmd.Process.Kill()
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// Log returns the node's log so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// Status asks the node over its control socket.
func (n *Node) Status() (control.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return n.client.Status(ctx)
}

// State is the first instance's state, or "" when unreachable.
func (n *Node) State() string {
	st, err := n.Status()
	if err != nil || len(st.Instances) == 0 {
		return ""
	}
	return st.Instances[0].State
}

// AwaitState polls until the node reports state.
func (n *Node) AwaitState(state string, timeout time.Duration) {
	n.t.Helper()
	err := WaitFor(timeout, func() error {
		if s := n.State(); s != state {
			return fmt.Errorf("%s is %q, want %q", n.Name, s, state)
		}
		return nil
	})
	if err != nil {
		n.t.Fatalf("%v\n--- %s log ---\n%s", err, n.Name, n.Log())
	}
}

// WaitFor polls f every 10 ms until it returns nil or timeout passes; it
// returns the last error.
func WaitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for i := 0; ; i++ {
		if err = f(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Holders lists the hosts that have addr configured.
func Holders(addr netip.Addr, hosts ...*Host) []string {
	var out []string
	for _, h := range hosts {
		if h.HasAddr(addr) {
			out = append(out, h.Name)
		}
	}
	return out
}

// AwaitHolder waits until exactly one host, want, holds addr.
func AwaitHolder(t testing.TB, addr netip.Addr, want *Host, timeout time.Duration, hosts ...*Host) {
	t.Helper()
	err := WaitFor(timeout, func() error {
		got := Holders(addr, hosts...)
		if len(got) != 1 || got[0] != want.Name {
			return fmt.Errorf("VIP %s held by %v, want only %s", addr, got, want.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
