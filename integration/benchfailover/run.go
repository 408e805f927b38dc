package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// crashBin is vipd built with -tags vipd_crashtest (panic and leak
// triggers); only the OOM and panic runs use it.
var crashBin string

// result is one repetition.
type result struct {
	Config string `json:"config"`
	Fault  string `json:"fault"`
	Rep    int    `json:"rep"`
	// GapMs: the longest run of failed attempts, from the first failed
	// attempt's start to the next successful attempt's start.
	GapMs  float64 `json:"gap_ms"`
	Failed int     `json:"failed"`
	// TakeoverMs: fault -> the first ARP packet from lb2 for the VIP (its
	// gratuitous ARP), as a host on the segment sees it.
	TakeoverMs float64 `json:"takeover_ms"`
	// ARPStopMs: fault -> lb1's last ARP reply for the VIP; -1 when it
	// still answered at the end of the run. For an OOM kill the fault is
	// the start of the leak; the kill comes ExitMs later.
	ARPStopMs float64 `json:"arp_stop_ms"`
	// ExitMs and CleanupMs: fault -> the dead process reaped, and -> the
	// unit's ExecStopPost (vipd cleanup) done (vipd crash kinds).
	ExitMs    float64 `json:"exit_ms,omitempty"`
	CleanupMs float64 `json:"cleanup_ms,omitempty"`
	// Steady state before the fault, both nodes healthy: holder samples.
	Samples int    `json:"samples"`
	Dual    int    `json:"dual"`
	None    int    `json:"none"`
	Err     string `json:"err,omitempty"`
	// Timeline is kept for the run drawn in the plots.
	Timeline *timeline `json:"timeline,omitempty"`
}

func (r result) Gap() time.Duration { return time.Duration(r.GapMs * float64(time.Millisecond)) }
func (r result) Takeover() time.Duration {
	return time.Duration(r.TakeoverMs * float64(time.Millisecond))
}

type timeline struct {
	Probes []tlProbe `json:"probes"`
	Marks  []tlMark  `json:"marks"`
}

type tlProbe struct {
	TMs float64 `json:"t"`
	Res string  `json:"r"`           // ok, refused, timeout, error
	Who string  `json:"w,omitempty"` // lb1, lb2
}

type tlMark struct {
	TMs  float64 `json:"t"`
	What string  `json:"what"`
}

func msSince(t0, t time.Time) float64 { return float64(t.Sub(t0).Microseconds()) / 1000 }

func arpText(r result) string {
	switch {
	case r.ARPStopMs < 0:
		return "never"
	case r.Err != "":
		return "-"
	}
	return fmt.Sprintf("%.0fms", r.ARPStopMs)
}

// runOne builds a lab, elects lb1 (150) over lb2 (100), samples the VIP's
// holders in steady state, starts the client prober and the ARP monitor,
// injects the fault at a random phase and measures.
func runOne(t *lab.Bench, c config, f fault, steady time.Duration) result {
	var r result
	l := lab.NewLab(t)
	lb1, lb2, client, cp, mon := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("client", 100), l.AddHost("cp1", 21), l.AddHost("mon", 99)
	vip := l.Addr(10)
	startBackend(t, cp)
	backend := netip.AddrPortFrom(cp.Addr, 6443)
	target := netip.AddrPortFrom(vip, 6443)
	names := map[string]string{lb1.Addr.String(): "lb1", lb2.Addr.String(): "lb2", macOf(t, lb1): "lb1", macOf(t, lb2): "lb2"}

	// fire injects the fault; after runs what follows it (the reaping
	// and the unit's ExecStopPost, a restart) and adds marks.
	var fire func()
	var after func(t0 time.Time, marks *[]tlMark, r *result)
	var backAt func() bool // restart: lb1 holds the VIP again
	if c.Keep {
		ha1 := l.StartHAProxy(t, lb1, "haproxy1", target, backend)
		l.StartHAProxy(t, lb2, "haproxy2", target, backend)
		k1 := l.StartKeepalived(t, lb1, "ka1", lab.KeepalivedOptions{VIP: vip, Priority: 150, AdvertInt: c.Interval})
		k2 := l.StartKeepalived(t, lb2, "ka2", lab.KeepalivedOptions{VIP: vip, Priority: 100, AdvertInt: c.Interval})
		k1.AwaitLog("Entering MASTER STATE", 0, 15*time.Second)
		k2.AwaitLog("Entering BACKUP STATE", 0, 5*time.Second)
		child := k1.AwaitVRRPChild(5 * time.Second)
		switch f.Name {
		case "SIGKILL":
			// The master's LB stack crashes: HAProxy and keepalived,
			// signalled back to back before any waiting.
			fire = func() { ha1.Signal(syscall.SIGKILL); k1.Crash(); ha1.Kill() }
		case "restart":
			fire = func() { k1.Signal(syscall.SIGTERM) }
			after = func(t0 time.Time, marks *[]tlMark, r *result) {
				k1.Stop(syscall.SIGTERM, 10*time.Second)
				*marks = append(*marks, tlMark{msSince(t0, time.Now()), "keepalived exited"})
				k1.Start()
				*marks = append(*marks, tlMark{msSince(t0, time.Now()), "keepalived started"})
			}
		case "SIGSTOP":
			fire = func() {
				k1.Signal(syscall.SIGSTOP)
				syscall.Kill(child, syscall.SIGSTOP)
				ha1.Signal(syscall.SIGSTOP)
			}
			t.Cleanup(func() { syscall.Kill(child, syscall.SIGCONT); ha1.Signal(syscall.SIGCONT) })
		}
	} else {
		extra := ""
		if c.NoLive {
			extra = "liveness_port = 0\n"
		}
		if f.Name == "OOM kill" || f.Name == "panic" {
			real := lab.Bin
			lab.Bin = crashBin
			defer func() { lab.Bin = real }()
		}
		ns := l.StartNodes(t, lab.PairOptions{VIP: vip, AdvertInterval: c.Interval, Backends: []*lab.Host{cp}, VRRPExtra: extra,
			Check: `{ type = "tcp", interval = "500ms", timeout = "300ms", rise = 1, fall = 2 }`},
			[]lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
		n1 := ns[0]
		n1.AwaitState("MASTER", 10*time.Second)
		ns[1].AwaitState("BACKUP", 5*time.Second)
		if !c.NoLive {
			awaitLiveness(t, ns[1])
		}
		cleanup := func(t0 time.Time, marks *[]tlMark, r *result) {
			// What systemd does: reap, then ExecStopPost.
			for end := time.Now().Add(10 * time.Second); n1.Running() && time.Now().Before(end); {
				time.Sleep(time.Millisecond)
			}
			r.ExitMs = msSince(t0, time.Now())
			*marks = append(*marks, tlMark{r.ExitMs, "vipd exited (reaped)"})
			out, err := exec.Command("ip", "netns", "exec", lb1.NS, realBin(), "cleanup", "-c", n1.Config, "--node", "lb1").CombinedOutput()
			if err != nil {
				t.Errorf("cleanup: %v: %s", err, out)
			}
			r.CleanupMs = msSince(t0, time.Now())
			*marks = append(*marks, tlMark{r.CleanupMs, "ExecStopPost cleanup done"})
		}
		switch f.Name {
		case "SIGKILL":
			fire = func() { n1.Signal(syscall.SIGKILL) }
			after = cleanup
		case "panic":
			fire = func() { n1.Signal(syscall.SIGTTIN) } // crashtest build: a panic
			after = cleanup
		case "OOM kill":
			cg := newMemCgroup(t, "vbf"+l.ID)
			if err := cg.add(n1.Pid()); err != nil {
				t.Fatalf("cgroup: %v", err)
			}
			if err := cg.limit(16 << 20); err != nil {
				t.Fatalf("cgroup limit: %v", err)
			}
			fire = func() { n1.Signal(syscall.SIGUSR1) }
			after = func(t0 time.Time, marks *[]tlMark, r *result) {
				cleanup(t0, marks, r)
				if cg.ooms() == 0 {
					t.Errorf("vipd exited without an OOM kill (%s)", cg.dir)
				}
			}
		case "restart":
			fire = func() { n1.Signal(syscall.SIGTERM) }
			after = func(t0 time.Time, marks *[]tlMark, r *result) {
				cleanup(t0, marks, r)
				n1.Start()
				*marks = append(*marks, tlMark{msSince(t0, time.Now()), "vipd started"})
			}
		case "SIGSTOP":
			fire = func() { n1.Signal(syscall.SIGSTOP) }
		}
	}
	switch f.Name {
	case "dead host":
		fire = func() {
			exec.Command("ip", "-n", lb1.NS, "link", "set", "eth0", "down").Run()
			exec.Command("ip", "-n", lb1.NS, "link", "set", "lo", "down").Run()
		}
	case "cut cable":
		fire = func() { l.Unplug(lb1) }
	}
	if f.Name == "restart" {
		backAt = func() bool { return lb1.HasAddr(vip) && !lb2.HasAddr(vip) }
	}
	lab.AwaitHolder(t, vip, lb1, 5*time.Second, lb1, lb2)

	// Steady state, both nodes healthy: who holds the VIP, every 20 ms.
	tick := time.NewTicker(20 * time.Millisecond)
	for end := time.Now().Add(steady); time.Now().Before(end) && r.Samples < 100000; r.Samples++ {
		switch len(lab.Holders(vip, lb1, lb2)) {
		case 0:
			r.None++
		case 2:
			r.Dual++
		}
		<-tick.C
	}
	tick.Stop()

	arp := startARP(t, mon, vip)
	pr := startProbe(t, client, target)
	if err := lab.WaitFor(5*time.Second, func() error {
		if ok := countOK(pr.samples()); ok < 30 {
			return fmt.Errorf("%d successful probes", ok)
		}
		return nil
	}); err != nil {
		t.Fatalf("prober: %v", err)
	}
	// The harness's steps take nearly the same time in every run, which
	// would put the fault at the same phase of the master's advert timer
	// each time. A uniform delay over 1 s (a multiple of every interval
	// measured) makes the phase uniform, as for a real fault.
	<-time.After(time.Duration(rand.Int64N(int64(time.Second))))
	t0 := time.Now()
	fire()
	marks := []tlMark{{0, "fault: " + f.Name}}
	if after != nil {
		after(t0, &marks, &r)
	}
	if err := lab.WaitFor(15*time.Second, func() error {
		if backAt != nil {
			if !backAt() {
				return fmt.Errorf("lb1 does not hold the VIP again")
			}
			return nil
		}
		if !lb2.HasAddr(vip) {
			return fmt.Errorf("lb2 does not hold the VIP")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v", err)
	}
	settled := time.Now()
	if err := lab.WaitFor(10*time.Second, func() error {
		for _, s := range pr.samples() {
			if s.OK && s.At.After(settled.Add(100*time.Millisecond)) {
				return nil
			}
		}
		return fmt.Errorf("no successful connect since the takeover")
	}); err != nil {
		t.Fatalf("%v", err)
	}
	time.Sleep(300 * time.Millisecond) // the ARP monitor's tail
	probes := pr.stop()
	arps := arp.stop()
	r.GapMs, r.Failed = gapOf(probes)
	r.TakeoverMs, r.ARPStopMs = -1, -1
	var lastLB1 time.Time
	for _, a := range arps {
		if a.At.Before(t0) {
			continue
		}
		switch names[a.MAC] {
		case "lb2":
			if r.TakeoverMs < 0 {
				r.TakeoverMs = msSince(t0, a.At)
				marks = append(marks, tlMark{r.TakeoverMs, "lb2 claims the VIP (first ARP)"})
			}
		case "lb1":
			if a.Reply {
				lastLB1 = a.At
			}
		}
	}
	end := time.Now()
	if len(arps) > 0 {
		end = arps[len(arps)-1].At
	}
	switch {
	case lastLB1.IsZero():
		r.ARPStopMs = 0
	case end.Sub(lastLB1) > 100*time.Millisecond:
		r.ARPStopMs = msSince(t0, lastLB1)
		marks = append(marks, tlMark{r.ARPStopMs, "lb1's last ARP reply"})
	}
	tl := &timeline{Marks: marks}
	firstOK := false
	for _, s := range probes {
		who := names[s.Who]
		tl.Probes = append(tl.Probes, tlProbe{TMs: msSince(t0, s.At), Res: s.Res, Who: who})
		if !firstOK && s.OK && r.TakeoverMs >= 0 && msSince(t0, s.At) > 0 && (s.Who == lb2.Addr.String() || f.Name == "restart") && anyFailedBefore(probes, s.At, t0) {
			firstOK = true
			tl.Marks = append(tl.Marks, tlMark{msSince(t0, s.At), "first success after the gap"})
		}
	}
	slices.SortStableFunc(tl.Marks, func(a, b tlMark) int {
		if a.TMs < b.TMs {
			return -1
		}
		if a.TMs > b.TMs {
			return 1
		}
		return 0
	})
	r.Timeline = tl
	return r
}

func anyFailedBefore(ps []probeSample, at, t0 time.Time) bool {
	for _, p := range ps {
		if !p.OK && !p.At.Before(t0) && p.At.Before(at) {
			return true
		}
	}
	return false
}

func realBin() string {
	if strings.HasSuffix(lab.Bin, "-crashtest") {
		return strings.TrimSuffix(lab.Bin, "-crashtest")
	}
	return lab.Bin
}

func macOf(t *lab.Bench, h *lab.Host) string {
	out, err := exec.Command("ip", "netns", "exec", h.NS, "cat", "/sys/class/net/eth0/address").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// awaitLiveness waits until lb2's liveness connection to lb1 is up.
func awaitLiveness(t *lab.Bench, n *lab.Node) {
	err := lab.WaitFor(5*time.Second, func() error {
		st, err := n.Status()
		if err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.Name == "lb1" && p.Liveness != nil && p.Liveness.State == "up" {
				return nil
			}
		}
		return fmt.Errorf("lb2's liveness to lb1 is not up")
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
}

// memCgroup is a memory cgroup (v2, or the v1 memory controller) with a
// limit: a process in it that keeps allocating is OOM-killed.
type memCgroup struct {
	dir string
	v2  bool
}

func newMemCgroup(t *lab.Bench, name string) *memCgroup {
	var cg memCgroup
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "memory") {
		os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+memory"), 0o644)
		cg = memCgroup{dir: filepath.Join("/sys/fs/cgroup", name), v2: true}
	} else if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		cg = memCgroup{dir: filepath.Join("/sys/fs/cgroup/memory", name)}
	} else {
		t.Fatalf("no memory cgroup controller (v2 or v1) here")
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		t.Fatalf("cgroup: %v", err)
	}
	t.Cleanup(func() {
		parent := filepath.Dir(cg.dir)
		b, _ := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
		for _, p := range strings.Fields(string(b)) {
			os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(p), 0o644)
		}
		for i := 0; i < 100 && os.Remove(cg.dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	if cg.v2 {
		os.WriteFile(filepath.Join(cg.dir, "memory.oom.group"), []byte("1"), 0o644)
	}
	return &cg
}

func (c *memCgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// limit allows margin bytes above the current usage.
func (c *memCgroup) limit(margin int64) error {
	usageFile, limitFile := "memory.usage_in_bytes", "memory.limit_in_bytes"
	if c.v2 {
		usageFile, limitFile = "memory.current", "memory.max"
	}
	b, err := os.ReadFile(filepath.Join(c.dir, usageFile))
	if err != nil {
		return err
	}
	usage, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return os.WriteFile(filepath.Join(c.dir, limitFile), []byte(strconv.FormatInt(usage+margin, 10)), 0o644)
}

// ooms is how many OOM kills the cgroup saw.
func (c *memCgroup) ooms() int {
	file, key := "memory.oom_control", "oom_kill"
	if c.v2 {
		file = "memory.events"
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, file))
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
