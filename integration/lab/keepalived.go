//go:build linux

package lab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// KeepalivedBin and HAProxyBin are the Debian packages' binaries.
var (
	KeepalivedBin = "/usr/sbin/keepalived"
	HAProxyBin    = "/usr/sbin/haproxy"
)

// RequireKeepalived skips the test when keepalived is not installed.
func RequireKeepalived(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat(KeepalivedBin); err != nil {
		t.Skipf("SKIP: needs keepalived (%s): apt-get install keepalived", KeepalivedBin)
	}
}

// KeepalivedOptions shape one keepalived node's vrrp_instance.
type KeepalivedOptions struct {
	VRID      int        // default 51
	VIP       netip.Addr // added as VIP/32 dev eth0
	Priority  int
	AdvertInt string // advert_int, seconds: "1" (default), "0.1"
	Version   int    // vrrp_version, default 3
	NoPreempt bool
	AuthPass  string // authentication { auth_type PASS auth_pass ... } (VRRPv2)
	// UnicastSrc and UnicastPeers switch the instance to unicast
	// (unicast_src_ip, unicast_peer { }).
	UnicastSrc   netip.Addr
	UnicastPeers []netip.Addr
	Extra        string // appended verbatim inside vrrp_instance
}

// Proc is a foreground daemon (keepalived, HAProxy) run in a host's
// namespace with its output captured to LogPath. Only processes started
// here are signalled, by PID.
type Proc struct {
	t       testing.TB
	Host    *Host
	Name    string
	LogPath string
	argv    []string
	cmd     *exec.Cmd
	done    chan error
}

// Keepalived is one keepalived process tree (parent + VRRP child).
type Keepalived struct {
	*Proc
	Config      string
	PidFile     string
	VRRPPidFile string
	Opts        KeepalivedOptions
}

// KeepalivedConfig renders the keepalived.conf for o.
func KeepalivedConfig(name string, o KeepalivedOptions) string {
	if o.VRID == 0 {
		o.VRID = 51
	}
	if o.AdvertInt == "" {
		o.AdvertInt = "1"
	}
	if o.Version == 0 {
		o.Version = 3
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n    router_id %s\n    vrrp_version %d\n}\n\n", name, o.Version)
	fmt.Fprintf(&b, "vrrp_instance VI_%d {\n    state BACKUP\n    interface eth0\n    virtual_router_id %d\n    priority %d\n    advert_int %s\n",
		o.VRID, o.VRID, o.Priority, o.AdvertInt)
	if o.NoPreempt {
		b.WriteString("    nopreempt\n")
	}
	fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s/32 dev eth0\n    }\n", o.VIP)
	if o.AuthPass != "" {
		fmt.Fprintf(&b, "    authentication {\n        auth_type PASS\n        auth_pass %s\n    }\n", o.AuthPass)
	}
	if o.UnicastSrc.IsValid() {
		fmt.Fprintf(&b, "    unicast_src_ip %s\n    unicast_peer {\n", o.UnicastSrc)
		for _, p := range o.UnicastPeers {
			fmt.Fprintf(&b, "        %s\n", p)
		}
		b.WriteString("    }\n")
	}
	b.WriteString(o.Extra)
	b.WriteString("}\n")
	return b.String()
}

// StartKeepalived runs keepalived in the foreground in h's namespace with
// its own config, pid files and log in the lab's directory:
//
//	keepalived --dont-fork --log-console --log-detail --no-syslog --vrrp
//	  -f CONF -p PID -r VRRP_PID -c CHECKERS_PID -i NAME
func (l *Lab) StartKeepalived(t testing.TB, h *Host, name string, o KeepalivedOptions) *Keepalived {
	t.Helper()
	k := l.StartKeepalivedConf(t, h, name, KeepalivedConfig(name, o))
	k.Opts = o
	return k
}

// StartKeepalivedConf is StartKeepalived with a keepalived.conf written
// by the caller (vrrp_script, several instances, a guide's file as is).
func (l *Lab) StartKeepalivedConf(t testing.TB, h *Host, name, conf string) *Keepalived {
	t.Helper()
	dir := filepath.Join(l.Dir(), "keepalived-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k := &Keepalived{Config: filepath.Join(dir, "keepalived.conf"), PidFile: filepath.Join(dir, "keepalived.pid"),
		VRRPPidFile: filepath.Join(dir, "vrrp.pid")}
	if err := os.WriteFile(k.Config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Proc = &Proc{t: t, Host: h, Name: name, LogPath: filepath.Join(dir, "keepalived.log"),
		argv: []string{KeepalivedBin, "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
			"-f", k.Config, "-p", k.PidFile, "-r", k.VRRPPidFile, "-c", filepath.Join(dir, "checkers.pid"),
			"-b", filepath.Join(dir, "bfd.pid"), "-i", name}}
	k.Start()
	t.Cleanup(func() { k.Kill() })
	return k
}

// StartHAProxy runs HAProxy (mode tcp, foreground) in h's namespace bound
// to bind and forwarding to server. It sets net.ipv4.ip_nonlocal_bind=1 in
// that namespace (per network namespace), as a keepalived + HAProxy host
// needs to bind the VIP while it does not hold it.
func (l *Lab) StartHAProxy(t testing.TB, h *Host, name string, bind, server netip.AddrPort) *Proc {
	t.Helper()
	return l.StartHAProxyConfig(t, h, name, fmt.Sprintf(`global
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend k8s
    bind %s
    default_backend apiservers

backend apiservers
    server cp1 %s
`, bind, server))
}

// StartHAProxyConfig runs HAProxy in h's namespace with the configuration
// body, after setting net.ipv4.ip_nonlocal_bind=1 there (see StartHAProxy).
func (l *Lab) StartHAProxyConfig(t testing.TB, h *Host, name, body string) *Proc {
	t.Helper()
	if _, err := os.Stat(HAProxyBin); err != nil {
		t.Skipf("SKIP: needs HAProxy (%s)", HAProxyBin)
	}
	if out, err := exec.Command("ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl ip_nonlocal_bind in %s: %v: %s", h.NS, err, out)
	}
	dir := filepath.Join(l.Dir(), "haproxy-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, Host: h, Name: name, LogPath: filepath.Join(dir, "haproxy.log"),
		argv: []string{HAProxyBin, "-db", "-f", cfg}}
	p.Start()
	t.Cleanup(func() { p.Kill() })
	return p
}

// Start (re)starts the process.
func (p *Proc) Start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", p.Host.NS}, p.argv...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatal(err)
	}
	p.done = make(chan error, 1)
	cmd := p.cmd
	go func() { p.done <- cmd.Wait(); logf.Close() }()
}

// Pid is the process id (`ip netns exec` execs in place).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { p.cmd.Process.Signal(sig) }

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	if p.done == nil {
		return false
	}
	select {
	case err := <-p.done:
		p.done <- err
		return false
	default:
		return true
	}
}

// Stop sends sig and waits for the exit; it returns the exit error.
func (p *Proc) Stop(sig syscall.Signal, timeout time.Duration) error {
	p.t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s after %s\n%s", p.Name, timeout, sig, p.Log())
		return nil
	}
}

// Kill stops the process if it still runs (cleanup).
func (p *Proc) Kill() {
	if p.cmd != nil && p.cmd.Process != nil && p.Running() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// Log returns the output so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// AwaitLog polls the log until it contains substr (after skipping the
// first `from` bytes, see LogLen).
func (p *Proc) AwaitLog(substr string, from int, timeout time.Duration) {
	p.t.Helper()
	err := WaitFor(timeout, func() error {
		l := p.Log()
		if from <= len(l) && strings.Contains(l[from:], substr) {
			return nil
		}
		return fmt.Errorf("%s log has no %q", p.Name, substr)
	})
	if err != nil {
		p.t.Fatalf("%v\n--- %s log ---\n%s", err, p.Name, p.Log())
	}
}

// LogLen is the current length of the log, a mark for AwaitLog.
func (p *Proc) LogLen() int { return len(p.Log()) }

// VRRPPid is the pid of keepalived's VRRP child, verified to be a child of
// the keepalived process started here; 0 when there is none.
func (k *Keepalived) VRRPPid() int {
	b, err := os.ReadFile(k.VRRPPidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || ppid(pid) != k.Pid() {
		return 0
	}
	return pid
}

// AwaitVRRPChild waits until the VRRP child wrote its pid file.
func (k *Keepalived) AwaitVRRPChild(timeout time.Duration) int {
	k.t.Helper()
	var pid int
	err := WaitFor(timeout, func() error {
		if pid = k.VRRPPid(); pid == 0 {
			return fmt.Errorf("%s: no VRRP child yet", k.Name)
		}
		return nil
	})
	if err != nil {
		k.t.Fatalf("%v\n%s", err, k.Log())
	}
	return pid
}

// Crash simulates a crash of keepalived: the parent is stopped (so it
// cannot respawn or clean up), then the VRRP child and the parent are
// killed with SIGKILL. The VIP stays on the interface, as after a real
// crash.
func (k *Keepalived) Crash() {
	k.t.Helper()
	if !k.Running() {
		return
	}
	child := k.VRRPPid()
	k.cmd.Process.Signal(syscall.SIGSTOP)
	if child != 0 {
		syscall.Kill(child, syscall.SIGKILL)
	}
	k.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-k.done:
		k.done <- nil
	case <-time.After(5 * time.Second):
		k.t.Fatalf("%s: keepalived did not die after SIGKILL", k.Name)
	}
	if child != 0 {
		WaitFor(2*time.Second, func() error {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", child)); err == nil && ppid(child) >= 0 && !zombie(child) {
				return fmt.Errorf("VRRP child %d alive", child)
			}
			return nil
		})
	}
}

// Kill ends keepalived and its VRRP child (cleanup): SIGTERM first so it
// releases the VIP, SIGKILL after 5 s.
func (k *Keepalived) Kill() {
	if !k.Running() {
		return
	}
	child := k.VRRPPid()
	k.cmd.Process.Signal(syscall.SIGCONT)
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-k.done:
		k.done <- err
		return
	case <-time.After(5 * time.Second):
	}
	if child != 0 && ppid(child) == k.Pid() {
		syscall.Kill(child, syscall.SIGKILL)
	}
	k.Proc.Kill()
}

// ppid returns the parent pid of pid, or -1.
func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}
