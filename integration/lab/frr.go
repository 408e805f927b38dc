//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FRRDir holds Debian's FRR daemons (package frr).
var FRRDir = "/usr/lib/frr"

// RequireFRR skips the test when FRR is not installed.
func RequireFRR(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	for _, d := range []string{"zebra", "bgpd"} {
		if _, err := os.Stat(filepath.Join(FRRDir, d)); err != nil {
			t.Skipf("SKIP: needs FRR (%s): apt-get install frr", filepath.Join(FRRDir, d))
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Skip("SKIP: needs FRR's vtysh: apt-get install frr")
	}
}

// FRR is one FRR router (zebra, bgpd and optionally bfdd) running in a
// host's namespace. Everything it writes (config, pid files, vty sockets,
// the zebra API socket, logs) is in Dir, so nothing touches /etc/frr or
// /run/frr of the machine; the daemons run in the foreground as children
// of the test and are stopped by PID.
type FRR struct {
	t       testing.TB
	Host    *Host
	Dir     string
	Config  string
	daemons []*Proc
}

// StartFRR writes conf (a frr.conf body; a "log file" line is added) and
// starts zebra, then bgpd, and bfdd when bfd is set, in h's namespace. It
// returns once bgpd answers on its vty socket.
//
// The daemons drop privileges to Debian's frr user as packaged (root is
// not in the frrvty group they check), so Dir and the directories above it
// are made traversable for that user.
func (l *Lab) StartFRR(t testing.TB, h *Host, conf string, bfd bool) *FRR {
	t.Helper()
	RequireFRR(t)
	dir := filepath.Join(l.Dir(), "frr-"+h.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup("frr")
	if err != nil {
		t.Skipf("SKIP: FRR's user frr is missing: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// t.TempDir makes 0700 directories; let the frr user reach dir.
	for p := filepath.Dir(dir); p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o011 != 0o011 {
			os.Chmod(p, st.Mode().Perm()|0o011)
		}
	}
	f := &FRR{t: t, Host: h, Dir: dir, Config: filepath.Join(dir, "frr.conf")}
	body := fmt.Sprintf("log file %s informational\n%s", filepath.Join(dir, "frr.log"), conf)
	if err := os.WriteFile(f.Config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	zserv := filepath.Join(dir, "zserv.api")
	common := func(name string) []string {
		return []string{filepath.Join(FRRDir, name), "-f", f.Config, "-i", filepath.Join(dir, name+".pid"),
			"-z", zserv, "--vty_socket", dir, "--log", "file:" + filepath.Join(dir, name+".log")}
	}
	t.Cleanup(f.Stop)
	f.start("zebra", common("zebra"))
	if err := WaitFor(10*time.Second, func() error {
		if _, err := os.Stat(zserv); err != nil {
			return fmt.Errorf("zebra has not opened %s", zserv)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, f.Logs())
	}
	if bfd {
		f.start("bfdd", append(common("bfdd"), "--bfdctl", filepath.Join(dir, "bfdd.sock")))
	}
	f.start("bgpd", common("bgpd"))
	if err := WaitFor(10*time.Second, func() error {
		_, err := f.Vtysh("show bgp summary")
		return err
	}); err != nil {
		t.Fatalf("bgpd does not answer: %v\n%s", err, f.Logs())
	}
	return f
}

func (f *FRR) start(name string, argv []string) {
	f.t.Helper()
	p := &Proc{t: f.t, Host: f.Host, Name: name, LogPath: filepath.Join(f.Dir, name+".out"), argv: argv}
	p.Start()
	f.daemons = append(f.daemons, p)
}

// Stop ends the daemons, bgpd first, by PID (SIGTERM, then SIGKILL).
func (f *FRR) Stop() {
	for i := len(f.daemons) - 1; i >= 0; i-- {
		p := f.daemons[i]
		if p.cmd == nil || p.cmd.Process == nil || !p.Running() {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(5 * time.Second):
			p.Kill()
		}
	}
	f.daemons = nil
}

// Logs returns the daemons' logs, for failure messages.
func (f *FRR) Logs() string {
	var b strings.Builder
	for _, n := range []string{"frr.log", "zebra.out", "bgpd.out", "bfdd.out"} {
		if data, err := os.ReadFile(filepath.Join(f.Dir, n)); err == nil && len(data) > 0 {
			fmt.Fprintf(&b, "--- %s ---\n%s", n, tail(string(data), 4000))
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Vtysh runs vtysh commands against this router.
func (f *FRR) Vtysh(cmds ...string) (string, error) {
	args := []string{"netns", "exec", f.Host.NS, "vtysh", "--vty_socket", f.Dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %q: %v: %s", cmds, err, out)
	}
	return string(out), nil
}

// NeighborState is bgpd's state of the session with addr ("Established",
// "Active", ...), "" when unknown.
func (f *FRR) NeighborState(addr netip.Addr) string {
	out, err := f.Vtysh("show bgp neighbors " + addr.String() + " json")
	if err != nil {
		return ""
	}
	var m map[string]struct {
		BGPState string `json:"bgpState"`
	}
	if json.Unmarshal([]byte(out), &m) != nil {
		return ""
	}
	return m[addr.String()].BGPState
}

// AwaitEstablished waits until bgpd has every session in addrs up.
func (f *FRR) AwaitEstablished(timeout time.Duration, addrs ...netip.Addr) {
	f.t.Helper()
	err := WaitFor(timeout, func() error {
		for _, a := range addrs {
			if s := f.NeighborState(a); s != "Established" {
				return fmt.Errorf("session with %s is %q", a, s)
			}
		}
		return nil
	})
	if err != nil {
		out, _ := f.Vtysh("show bgp summary")
		f.t.Fatalf("%v\n%s\n%s", err, out, f.Logs())
	}
}

// BGPPath is one path bgpd has for a prefix.
type BGPPath struct {
	NextHop     string
	Best        bool
	Multipath   bool
	LocalPref   int
	MED         int64
	Communities string
}

// Paths is what bgpd has for prefix ("show bgp ipv4 unicast PREFIX json").
func (f *FRR) Paths(prefix netip.Prefix) ([]BGPPath, error) {
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	out, err := f.Vtysh(fmt.Sprintf("show bgp %s unicast %s json", afi, prefix))
	if err != nil {
		return nil, err
	}
	var r struct {
		Paths []struct {
			Bestpath *struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
			Multipath bool  `json:"multipath"`
			LocPrf    int   `json:"locPrf"`
			Metric    int64 `json:"metric"`
			Community *struct {
				String string `json:"string"`
			} `json:"community"`
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("show bgp: %v: %s", err, out)
	}
	var ps []BGPPath
	for _, p := range r.Paths {
		bp := BGPPath{Best: p.Bestpath != nil && p.Bestpath.Overall, Multipath: p.Multipath, LocalPref: p.LocPrf, MED: p.Metric}
		if len(p.Nexthops) > 0 {
			bp.NextHop = p.Nexthops[0].IP
		}
		if p.Community != nil {
			bp.Communities = p.Community.String
		}
		ps = append(ps, bp)
	}
	return ps, nil
}

// KernelNextHops lists the gateways of the kernel route to prefix in h's
// namespace (what packets use), sorted; nil when there is no route.
func KernelNextHops(h *Host, prefix netip.Prefix) ([]netip.Addr, error) {
	out, err := exec.Command("ip", "-n", h.NS, "-j", "route", "show", "exact", prefix.String()).Output()
	if err != nil {
		return nil, fmt.Errorf("ip route show %s in %s: %v", prefix, h.NS, err)
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("ip -j route: %v: %s", err, out)
	}
	var gws []netip.Addr
	for _, r := range routes {
		if r.Gateway != "" {
			if a, err := netip.ParseAddr(r.Gateway); err == nil {
				gws = append(gws, a)
			}
		}
		for _, n := range r.Nexthops {
			if a, err := netip.ParseAddr(n.Gateway); err == nil {
				gws = append(gws, a)
			}
		}
	}
	sortAddrs(gws)
	return gws, nil
}

func sortAddrs(a []netip.Addr) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].Less(a[j-1]); j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// AwaitNextHops waits until the kernel route to prefix in h uses exactly
// want (in any order; none means no route) and returns how long it took.
func AwaitNextHops(t testing.TB, h *Host, prefix netip.Prefix, timeout time.Duration, want ...netip.Addr) time.Duration {
	t.Helper()
	w := append([]netip.Addr(nil), want...)
	sortAddrs(w)
	start := time.Now()
	err := WaitFor(timeout, func() error {
		got, err := KernelNextHops(h, prefix)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			return fmt.Errorf("route to %s in %s via %v, want %v", prefix, h.Name, got, w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}
