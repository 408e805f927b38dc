//go:build linux

package lab

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Fault-injection helpers: nftables rules, segment loss, process stats,
// CPU quotas, dialing from inside a host's namespace, and killing a
// stand-in control plane. Everything acts only on namespaces and processes
// the lab created.

// SwitchNS is the namespace that holds the bridge and the hosts' peers.
func (l *Lab) SwitchNS() string { return l.sw }

// Peer is the host's veth end in the switch namespace.
func (h *Host) Peer() string { return h.peer }

// Nft loads an nftables script (nft -f -) in namespace ns.
func Nft(t testing.TB, ns, script string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s\n%s", ns, err, out, script)
	}
}

// RequireNft skips the test when nft is missing.
func RequireNft(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("SKIP: needs nftables (nft)")
	}
}

// NftCounter returns the packets counted by the first counter in table
// (family fam) of ns, or -1.
func NftCounter(ns, fam, table string) int {
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", fam, table).Output()
	if err != nil {
		return -1
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "packets" {
			n, err := strconv.Atoi(f[i+1])
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// SegmentLoss drops pct percent of the frames the bridge forwards, chosen
// at random per frame and per output port (so each receiver loses its own
// pct%), with an nftables bridge rule in the switch namespace. (The
// kernels we run on may lack sch_netem; nft numgen is always there.) It
// returns a function that removes the rule.
func (l *Lab) SegmentLoss(t testing.TB, pct int) func() {
	t.Helper()
	Nft(t, l.sw, fmt.Sprintf(`table bridge vipdloss {
	chain forward {
		type filter hook forward priority 0; policy accept;
		numgen random mod 100 < %d counter drop
	}
}
`, pct))
	return func() {
		exec.Command("ip", "netns", "exec", l.sw, "nft", "delete", "table", "bridge", "vipdloss").Run()
	}
}

// HasNetem reports whether the kernel has the netem qdisc (tc delay/loss).
func (l *Lab) HasNetem(h *Host) bool {
	err := exec.Command("tc", "-n", l.sw, "qdisc", "add", "dev", h.peer, "root", "netem", "delay", "1ms").Run()
	if err != nil {
		return false
	}
	exec.Command("tc", "-n", l.sw, "qdisc", "del", "dev", h.peer, "root").Run()
	return true
}

// ProcStats is what /proc says about one process.
type ProcStats struct {
	FDs     int
	Threads int
	RSSKB   int
}

func (s ProcStats) String() string {
	return fmt.Sprintf("fds=%d threads=%d rss=%dKiB", s.FDs, s.Threads, s.RSSKB)
}

// StatsOf reads fd count, threads and VmRSS of pid.
func StatsOf(pid int) (ProcStats, error) {
	var s ProcStats
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(ents)
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.Atoi(fs[0])
		switch k {
		case "Threads":
			s.Threads = n
		case "VmRSS":
			s.RSSKB = n
		}
	}
	return s, nil
}

// Stats is StatsOf the node's process.
func (n *Node) Stats() (ProcStats, error) { return StatsOf(n.Pid()) }

// SetNoFile sets the running node's RLIMIT_NOFILE (soft and hard) with
// prlimit(2).
func (n *Node) SetNoFile(limit uint64) error {
	rl := unix.Rlimit{Cur: limit, Max: limit}
	return unix.Prlimit(n.Pid(), unix.RLIMIT_NOFILE, &rl, nil)
}

// CPUQuota is a CPU cgroup (v2, or the v1 cpu controller) holding
// processes under a quota.
type CPUQuota struct {
	dir string
	v2  bool
}

// NewCPUQuota creates a cgroup allowing pct percent of one CPU. It skips
// the test, saying why, when no cgroup can be made here.
func NewCPUQuota(t testing.TB, name string, pct int) *CPUQuota {
	t.Helper()
	const period = 100000
	quota := period * pct / 100
	var fs unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
		ctl, _ := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
		if !strings.Contains(string(ctl), "cpu") {
			os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0o644)
		}
		dir := filepath.Join("/sys/fs/cgroup", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("SKIP: cannot create cgroup v2 %s: %v", dir, err)
		}
		q := &CPUQuota{dir: dir, v2: true}
		t.Cleanup(q.remove)
		if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, period)), 0o644); err != nil {
			t.Skipf("SKIP: cgroup v2 without the cpu controller (cpu.max: %v)", err)
		}
		return q
	}
	if unix.Statfs("/sys/fs/cgroup/cpu", &fs) == nil && fs.Type == unix.CGROUP_SUPER_MAGIC {
		dir := filepath.Join("/sys/fs/cgroup/cpu", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("SKIP: cannot create cgroup v1 %s: %v", dir, err)
		}
		q := &CPUQuota{dir: dir}
		t.Cleanup(q.remove)
		if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(period)), 0o644); err != nil {
			t.Skipf("SKIP: cgroup v1 cpu.cfs_period_us: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(quota)), 0o644); err != nil {
			t.Skipf("SKIP: cgroup v1 cpu.cfs_quota_us: %v", err)
		}
		return q
	}
	t.Skip("SKIP: neither cgroup v2 at /sys/fs/cgroup nor the v1 cpu controller is mounted")
	return nil
}

// Kind is "cgroup2" or "cgroup1".
func (q *CPUQuota) Kind() string {
	if q.v2 {
		return "cgroup2"
	}
	return "cgroup1"
}

// Add moves every thread of pid into the cgroup.
func (q *CPUQuota) Add(pid int) error {
	return os.WriteFile(filepath.Join(q.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// Throttled reports the throttled periods counted so far.
func (q *CPUQuota) Throttled() int {
	b, _ := os.ReadFile(filepath.Join(q.dir, "cpu.stat"))
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && (k == "nr_throttled") {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}

// remove moves the processes back to the root group and deletes the cgroup.
func (q *CPUQuota) remove() {
	root := filepath.Dir(q.dir)
	b, _ := os.ReadFile(filepath.Join(q.dir, "cgroup.procs"))
	for _, p := range strings.Fields(string(b)) {
		os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(p), 0o644)
	}
	for i := 0; i < 50; i++ {
		if os.Remove(q.dir) == nil || os.IsNotExist(os.Remove(q.dir)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DialFrom opens a TCP connection from inside host's network namespace
// (the socket is created there; the calling process stays where it is).
func DialFrom(h *Host, addr string, timeout time.Duration) (net.Conn, error) {
	return DialFromSource(h, netip.Addr{}, addr, timeout)
}

// DialFromSource is DialFrom from the source address src, one of h's
// addresses (the kernel chooses when src is not valid).
func DialFromSource(h *Host, src netip.Addr, addr string, timeout time.Duration) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/run/netns", h.NS))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		// The socket is created in the namespace of this thread.
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err := d.Dial("tcp", addr)
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: leave the thread locked so it exits with the goroutine
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Pid is the stand-in's process id (the test binary re-executed by
// `ip netns exec`, which execs in place).
func (c *ControlPlane) Pid() int { return c.cmd.Process.Pid }

// Kill SIGKILLs the stand-in (both its 6443 and 50000 services die at
// once, as when a control-plane node crashes) and waits until it is dead.
// The cleanup registered by StartControlPlane reaps it.
func (c *ControlPlane) Kill(t testing.TB) {
	t.Helper()
	pid := c.Pid()
	c.cmd.Process.Signal(syscall.SIGKILL)
	err := WaitFor(3*time.Second, func() error {
		if !zombie(pid) {
			return fmt.Errorf("stand-in %d still alive", pid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
