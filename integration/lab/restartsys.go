//go:build linux

package lab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The systems of the restart benchmark: how each is started as an HA
// pair and restarted.

func sysctlW(t testing.TB, h *Host, key string, v int) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", fmt.Sprintf("%s=%d", key, v)).CombinedOutput(); err != nil {
		t.Fatalf("sysctl %s in %s: %v: %s", key, h.NS, err, out)
	}
}

// transitions is the first instance's transition counter, -1 when the
// node does not answer.
func transitions(n *Node) int {
	st, err := n.Status()
	if err != nil || len(st.Instances) == 0 {
		return -1
	}
	return st.Instances[0].Transitions
}

// startVipdPair starts vipd on lb1 (150) and lb2 (100) serving VIP:6443
// from cp, and returns the restart of lb1 (lb2 with sc.OnBackup).
func startVipdPair(t testing.TB, l *Lab, sc RestartScenario, vip netip.Addr, cp *Host) *restartable {
	t.Helper()
	lb1, lb2 := l.Host("lb1"), l.Host("lb2")
	ns := l.StartNodes(t, PairOptions{VIP: vip, AdvertInterval: sc.Interval.String(), Backends: []*Host{cp},
		Check: `{ type = "tcp", interval = "1s", timeout = "500ms", rise = 1, fall = 3 }`},
		[]LBNode{N("lb1", lb1, 150), N("lb2", lb2, 100)})
	ns[0].AwaitState("MASTER", 15*time.Second)
	ns[1].AwaitState("BACKUP", 10*time.Second)
	node, peer, want := ns[0], ns[1], "MASTER"
	if sc.OnBackup {
		node, peer, want = ns[1], ns[0], "BACKUP"
	}
	settle := func() {
		node.AwaitState(want, 20*time.Second)
		AwaitHolder(t, vip, lb1, 10*time.Second, lb1, lb2)
	}
	r := &restartable{peer: func() int { return transitions(peer) }}
	if sc.System == SysVipdRestart {
		tr := TrackRestarts(t, node)
		r.pid = tr.Pid
		r.node = func() int { return transitions(node) }
		r.restart = func(int) (time.Duration, error) {
			took, err := tr.Restart()
			if err != nil {
				return took, err
			}
			if werr := WaitFor(20*time.Second, func() error {
				if s := node.State(); s != want {
					return fmt.Errorf("%s is %q, want %q", node.Name, s, want)
				}
				return nil
			}); werr != nil {
				t.Fatalf("after vipd restart: %v; %s", werr, diagnose(node, tr.Pid()))
			}
			settle()
			return took, nil
		}
		return r
	}
	// SIGTERM and a fresh start: the node's counter starts again with
	// each process, so the count of the processes gone is carried.
	var mu sync.Mutex
	gone := 0
	r.pid = node.Pid
	r.node = func() int {
		mu.Lock()
		defer mu.Unlock()
		return gone + transitions(node)
	}
	r.restart = func(int) (time.Duration, error) {
		mu.Lock()
		gone += transitions(node)
		mu.Unlock()
		start := time.Now()
		if err := node.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
			return 0, fmt.Errorf("vipd exit after SIGTERM: %w", err)
		}
		node.Start()
		settle()
		return time.Since(start), nil
	}
	return r
}

// diagnose describes a node process that stopped answering: its state in
// /proc, then a goroutine dump (SIGQUIT: the Go runtime prints every
// goroutine's stack to the log and exits), with the log kept in
// os.TempDir() for a look afterwards.
func diagnose(n *Node, pid int) string {
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	alive := n.isNodeProc(pid)
	_, serr := n.Status()
	_, sockErr := os.Stat(n.Socket)
	var trace []byte
	if alive {
		// What it does in the kernel for a second: syscalls by count.
		trace, _ = exec.Command("timeout", "3", "strace", "-c", "-f", "-p", strconv.Itoa(pid)).CombinedOutput()
		syscall.Kill(pid, syscall.SIGQUIT)
		time.Sleep(2 * time.Second)
	}
	keep := filepath.Join(os.TempDir(), fmt.Sprintf("vipd-restart-%s-%d.log", n.Name, pid))
	os.WriteFile(keep, append([]byte(n.Log()+"\n--- strace -c -f for 3 s before the dump ---\n"), trace...), 0o644)
	return fmt.Sprintf("process %d alive %v, status: %v, control socket %s: %v, stat %q, wchan %q; log (with a goroutine dump) kept in %s",
		pid, alive, serr, n.Socket, sockErr, strings.TrimSpace(string(stat)), wchan, keep)
}

// haproxyRestartConfig is HAProxy in `mode tcp` with timeouts longer than
// the run and a stats socket that hands its listeners over (expose-fd
// listeners), as a seamless reload needs.
func haproxyRestartConfig(bind, server netip.AddrPort, maxconn int, stats, extra string) string {
	return fmt.Sprintf(`global
    maxconn %d
    stats socket %s mode 600 level admin expose-fd listeners
%s
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend k8s
    bind %s
    default_backend apiservers

backend apiservers
    server cp1 %s
`, maxconn, stats, extra, bind, server)
}

var pidRE = regexp.MustCompile(`pid=(\d+)`)

// listenerPids lists the processes holding a listening socket on port in
// h's namespace (ss -ltnp).
func listenerPids(h *Host, port int) []int {
	out, _ := exec.Command("ip", "netns", "exec", h.NS, "ss", "-Hltnp", "sport", "=", ":"+strconv.Itoa(port)).Output()
	var pids []int
	for _, m := range pidRE.FindAllStringSubmatch(string(out), -1) {
		p, _ := strconv.Atoi(m[1])
		pids = append(pids, p)
	}
	return pids
}

// startKeepalivedPair starts keepalived (lb1 150, lb2 100) and HAProxy on
// both, and returns the restart of sc.System on lb1 (lb2 with
// sc.OnBackup): HAProxy's seamless reload or keepalived's stop + start.
func startKeepalivedPair(t testing.TB, l *Lab, sc RestartScenario, vip netip.Addr, cp *Host) *restartable {
	t.Helper()
	hosts := []*Host{l.Host("lb1"), l.Host("lb2")}
	bind, server := netip.AddrPortFrom(vip, 6443), netip.AddrPortFrom(cp.Addr, 6443)
	var has []*Proc
	var socks []string
	for i, h := range hosts {
		name := fmt.Sprintf("ha%d", i+1)
		sock := filepath.Join(l.Dir(), "haproxy-"+name, "admin.sock")
		socks = append(socks, sock)
		extra := ""
		if sc.System == SysHAProxyHard {
			extra = "    hard-stop-after 5s\n"
		}
		has = append(has, l.StartHAProxyConfig(t, h, name, haproxyRestartConfig(bind, server, 2*sc.Streams.N+2000, sock, extra)))
	}
	adv := strconv.FormatFloat(sc.Interval.Seconds(), 'f', -1, 64)
	k1 := l.StartKeepalived(t, hosts[0], "ka1", KeepalivedOptions{VIP: vip, Priority: 150, AdvertInt: adv})
	k2 := l.StartKeepalived(t, hosts[1], "ka2", KeepalivedOptions{VIP: vip, Priority: 100, AdvertInt: adv})
	k1.AwaitLog("Entering MASTER STATE", 0, 15*time.Second)
	k2.AwaitLog("Entering BACKUP STATE", 0, 10*time.Second)
	idx, k, peer, want := 0, k1, k2, "Entering MASTER STATE"
	if sc.OnBackup {
		idx, k, peer, want = 1, k2, k1, "Entering BACKUP STATE"
	}
	count := func(p *Proc) int { return strings.Count(p.Log(), "Entering ") }
	r := &restartable{peer: func() int { return count(peer.Proc) }}
	if sc.System == SysKeepalived {
		r.pid = k.Pid
		r.node = func() int { return count(k.Proc) }
		r.restart = func(int) (time.Duration, error) {
			start := time.Now()
			k.Stop(syscall.SIGTERM, 15*time.Second)
			mark := k.LogLen()
			k.Start()
			k.AwaitLog(want, mark, 20*time.Second)
			AwaitHolder(t, vip, hosts[0], 10*time.Second, hosts...)
			return time.Since(start), nil
		}
		return r
	}
	var mu sync.Mutex
	cur := has[idx]
	var olds []*oldProc
	r.node = func() int { return count(k.Proc) }
	r.pid = func() int { mu.Lock(); defer mu.Unlock(); return cur.Pid() }
	r.old = func() []*oldProc { mu.Lock(); defer mu.Unlock(); return append([]*oldProc(nil), olds...) }
	r.restart = func(i int) (time.Duration, error) {
		mu.Lock()
		old := cur
		mu.Unlock()
		start := time.Now()
		np := l.ReloadHAProxy(t, old, socks[idx], i)
		o := &oldProc{p: old, since: start}
		watchOld(o)
		mu.Lock()
		cur = np
		olds = append(olds, o)
		mu.Unlock()
		// Reloaded once only the new process holds the listener.
		err := WaitFor(20*time.Second, func() error {
			if !np.Running() {
				return fmt.Errorf("new HAProxy exited: %s", np.Log())
			}
			ps := listenerPids(hosts[idx], 6443)
			if len(ps) == 0 || !allEqual(ps, np.Pid()) {
				return fmt.Errorf("listener held by %v, want only %d", ps, np.Pid())
			}
			return nil
		})
		return time.Since(start), err
	}
	return r
}

func allEqual(ps []int, v int) bool {
	for _, p := range ps {
		if p != v {
			return false
		}
	}
	return true
}
