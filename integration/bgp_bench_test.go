package integration

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// TestBGPBench measures what clients see when an LB leaves, in BGP mode
// through FRR and, in the same run, in VRRP mode on one L2 segment: a
// client connects to VIP:6443 every 10 ms (200 ms dial timeout) while one
// LB is drained, stopped, killed or dies. It is a measurement, not part
// of `make test`:
//
//	VIPD_BENCH_BGP=1 [VIPD_BENCH_REPS=5] [VIPD_BENCH_OUT=docs/benchmarks.md] \
//	  go test -count=1 -v -timeout 30m -run '^TestBGPBench$' ./integration/
//
// (make bench-bgp), which writes the "## BGP mode" section of
// docs/benchmarks.md.
func TestBGPBench(t *testing.T) {
	if os.Getenv("VIPD_BENCH_BGP") == "" {
		t.Skip("SKIP: measurement; set VIPD_BENCH_BGP=1 (make bench-bgp)")
	}
	lab.RequireFRR(t)
	lab.RequireNft(t)
	reps := 5
	if n, err := strconv.Atoi(os.Getenv("VIPD_BENCH_REPS")); err == nil && n > 0 {
		reps = n
	}
	started, loadStart := time.Now(), loadAvg()
	res := map[string][]benchRun{}
	for rep := 1; rep <= reps; rep++ {
		for _, sc := range bgpBenchScenarios {
			t.Run(fmt.Sprintf("rep%d %s", rep, sc.name), func(t *testing.T) {
				r := sc.run(t)
				t.Logf("%s: changed after %v, failed %d of %d, window %v, gap %v", sc.name,
					r.change.Round(time.Millisecond), r.failed, r.attempts, r.window.Round(time.Millisecond), r.gap.Round(time.Millisecond))
				if !t.Failed() {
					res[sc.name] = append(res[sc.name], r)
				}
			})
		}
	}
	var est string
	t.Run("established connections across a drain", func(t *testing.T) { est = drainEstablished(t) })
	md := bgpBenchReport(res, reps, time.Since(started), loadStart+" at the start, "+loadAvg()+" at the end") + est
	t.Logf("\n%s", md)
	if out := os.Getenv("VIPD_BENCH_OUT"); out != "" {
		if err := lab.WriteSection(out, "## BGP mode", md); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", out)
	}
}

// benchRun is one measured fault.
type benchRun struct {
	// change is the fault to the router dropping the LB (BGP), or to the
	// backup holding the VIP (VRRP).
	change time.Duration
	// failed connects of attempts made from the fault until the client is
	// served again for good; window is from the first failed connect to
	// the first success after the last one; gap is the longest run of
	// consecutive failed connects (lab.Gap).
	failed, attempts int
	window, gap      time.Duration
}

type benchScenario struct {
	name string
	run  func(t *testing.T) benchRun
}

var bgpBenchScenarios = []benchScenario{
	{"BGP: vipd drain self (drain_time 2 s)", func(t *testing.T) benchRun {
		return bgpBenchOne(t, lab.RouterOptions{}, lab.BGPOptions{DrainTime: "2s"}, func(r *lab.Routed, n []*lab.Node) func() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				if out, err := n[0].CLI("drain", "self"); err != nil {
					t.Errorf("drain self: %v: %s", err, out)
				}
			}()
			return func() { <-done } // it answers once withdrawn
		})
	}},
	{"BGP: SIGTERM (drain_time 2 s)", func(t *testing.T) benchRun {
		return bgpBenchOne(t, lab.RouterOptions{}, lab.BGPOptions{DrainTime: "2s"}, func(r *lab.Routed, n []*lab.Node) func() {
			n[0].Signal(syscall.SIGTERM)
			return func() { n[0].Stop(syscall.SIGTERM, 10*time.Second) } // it exits once withdrawn
		})
	}},
	{"BGP: SIGKILL of vipd", func(t *testing.T) benchRun {
		return bgpBenchOne(t, lab.RouterOptions{}, lab.BGPOptions{}, func(r *lab.Routed, n []*lab.Node) func() {
			n[0].Signal(syscall.SIGKILL)
			return nil
		})
	}},
	{"BGP: host dead, hold time 3 s", func(t *testing.T) benchRun {
		return bgpBenchOne(t, lab.RouterOptions{HoldTime: 3, Keepalive: 1}, lab.BGPOptions{HoldTime: "3s"}, func(r *lab.Routed, n []*lab.Node) func() {
			deadHost(t, r.LBs[0])
			return nil
		})
	}},
	{"BGP: host dead, BFD 300 ms x 3", func(t *testing.T) benchRun {
		return bgpBenchOne(t, lab.RouterOptions{BFD: true, BFDInterval: 300}, lab.BGPOptions{BFD: true, BFDInterval: "300ms"}, func(r *lab.Routed, n []*lab.Node) func() {
			deadHost(t, r.LBs[0])
			return nil
		})
	}},
	{"VRRP 200 ms: SIGTERM of the master", func(t *testing.T) benchRun {
		return vrrpBenchOne(t, func(l *lab.Lab, lb1 *lab.Host, n *lab.Node) { n.Signal(syscall.SIGTERM) })
	}},
	{"VRRP 200 ms: SIGKILL of the master", func(t *testing.T) benchRun {
		return vrrpBenchOne(t, func(l *lab.Lab, lb1 *lab.Host, n *lab.Node) { n.Signal(syscall.SIGKILL) })
	}},
	{"VRRP 200 ms: master host dead", func(t *testing.T) benchRun {
		return vrrpBenchOne(t, func(l *lab.Lab, lb1 *lab.Host, n *lab.Node) { deadHost(t, lb1) })
	}},
}

// bgpBenchOne builds the routed lab with vipd on two LBs (the router
// hashing on ports, so the client's connections spread over both), starts
// the prober, injects the fault on lb1 at a random phase, and waits until
// the router routes via lb2 only, then until the fault's own end (a
// planned withdrawal completes after its drain time) when it has one.
func bgpBenchOne(t *testing.T, ro lab.RouterOptions, bo lab.BGPOptions, fault func(*lab.Routed, []*lab.Node) (wait func())) benchRun {
	r, _, nodes := bgpLab(t, ro, bo)
	if ro.BFD {
		// BFD flaps once as the sessions come up (docs/bgp.md): let it
		// settle before measuring.
		time.Sleep(3 * time.Second)
		lab.AwaitNextHops(t, r.Router, r.VIPPrefix(), 15*time.Second, lbAddrs(r)...)
	}
	p := lab.StartProber(t, r.Client, vipTarget(r), false)
	time.Sleep(300*time.Millisecond + time.Duration(rand.Int64N(int64(time.Second))))
	at := time.Now()
	wait := fault(r, nodes)
	lab.AwaitNextHops(t, r.Router, r.VIPPrefix(), 15*time.Second, r.LBs[1].Addr)
	change := time.Since(at)
	if wait != nil {
		wait()
	}
	time.Sleep(500 * time.Millisecond)
	return measure(p.Stop(), at, change)
}

// vrrpBenchOne is the same client against a vipd VRRP pair (lb1 150, lb2
// 100, 200 ms adverts) on one L2 segment; it waits until lb2 holds the VIP.
func vrrpBenchOne(t *testing.T, fault func(*lab.Lab, *lab.Host, *lab.Node)) benchRun {
	l := lab.NewLab(t)
	lb1, lb2, client, cp := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("client", 100), l.AddHost("cp1", 31)
	lab.StartControlPlane(t, cp, lab.NewPKI(t, l.Addr(10)))
	vip := l.Addr(10)
	ns := l.StartNodes(t, lab.PairOptions{VIP: vip, Backends: []*lab.Host{cp}},
		[]lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
	ns[0].AwaitState("MASTER", 10*time.Second)
	ns[1].AwaitState("BACKUP", 5*time.Second)
	p := lab.StartProber(t, client, netip.AddrPortFrom(vip, 6443), false)
	time.Sleep(300*time.Millisecond + time.Duration(rand.Int64N(int64(time.Second))))
	at := time.Now()
	fault(l, lb1, ns[0])
	if err := lab.WaitFor(15*time.Second, func() error {
		if !lb2.HasAddr(vip) {
			return fmt.Errorf("lb2 does not hold the VIP")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	change := time.Since(at)
	time.Sleep(time.Second)
	return measure(p.Stop(), at, change)
}

func measure(samples []lab.ProbeSample, at time.Time, change time.Duration) benchRun {
	r := benchRun{change: change}
	var after []lab.ProbeSample
	for _, s := range samples {
		if !s.At.Before(at) {
			after = append(after, s)
		}
	}
	r.gap, _ = lab.Gap(after)
	first, last := -1, -1
	for i, s := range after {
		if !s.OK {
			r.failed++
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	r.attempts = len(after)
	if first >= 0 {
		end := after[len(after)-1].At
		for _, s := range after[last+1:] {
			if s.OK {
				end = s.At
				break
			}
		}
		r.window = end.Sub(after[first].At)
	}
	return r
}

// loadAvg is the 1-minute load average: the machine is shared, and a
// starved router or prober shows in the figures.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func bgpBenchReport(res map[string][]benchRun, reps int, took time.Duration, load string) string {
	var b strings.Builder
	frr, _ := exec.Command("dpkg-query", "-W", "-f", "${Version}", "frr").Output()
	kernel, _ := exec.Command("uname", "-r").Output()
	fmt.Fprintf(&b, "## BGP mode\n\n")
	fmt.Fprintf(&b, "Command (as root, in the repository): `make bench-bgp` (`VIPD_BENCH_BGP=1 VIPD_BENCH_OUT=docs/benchmarks.md go test -count=1 -v -timeout 30m -run '^TestBGPBench$' ./integration/`)  \n")
	fmt.Fprintf(&b, "Date: %s; machine: %d CPUs, kernel %s, %s; FRR %s; whole run %s; load average %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version(), string(frr), took.Round(time.Second), load)
	b.WriteString(`Setup: BGP rows use the FRR lab of docs/bgp.md: two LB namespaces on
their own subnets, each running vipd with a [bgp] table (eBGP, one ASN
per LB) towards an FRR 8.4 router (maximum-paths 8,
fib_multipath_hash_policy=1 so one client's connections spread over both
LBs), three stand-in control planes behind the router, and a client on
a third subnet connecting to VIP:6443 every 10 ms (200 ms dial timeout).
VRRP rows, in the same run: a vipd pair (lb1 150, lb2 100, 200 ms
adverts) on one L2 segment with the same client and stand-in. The fault
hits lb1 at a random phase (uniform over 1 s) of its timers.

- drain self / SIGTERM: the planned withdrawal (GRACEFUL_SHUTDOWN for
  drain_time, then withdraw, then CEASE).
- SIGKILL of vipd: the LB's kernel resets the BGP session; the VIP stays
  on its loopback with nobody listening until the router withdraws.
- host dead: every packet in and out of lb1 dropped (nftables), link up.
- change: fault to the router dropping lb1 from the route (BGP), or to
  lb2 holding the VIP (VRRP). For a planned withdrawal that is when
  GRACEFUL_SHUTDOWN takes effect; the prober runs on until the drain time
  is over, lb1 has withdrawn and closed its listeners.
- failed connects: of the attempts from the fault until the client is
  served for good; with the port hash about half of the BGP client's
  attempts meet lb1, all of the VRRP client's meet the master. window:
  first failed connect to the first success after the last one; gap:
  the longest run of consecutive failures.

| configuration | fault | runs | change median | failed connects (median / max per run) | window median (max) | gap median (max) |
|---|---|---|---|---|---|---|
`)
	for _, sc := range bgpBenchScenarios {
		runs := res[sc.name]
		if len(runs) == 0 {
			continue
		}
		mode, fault, _ := strings.Cut(sc.name, ": ")
		var change, window, gap []time.Duration
		var failed []int
		for _, r := range runs {
			change, window, gap, failed = append(change, r.change), append(window, r.window), append(gap, r.gap), append(failed, r.failed)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %d / %d | %s (%s) | %s (%s) |\n", mode, fault, len(runs),
			msText(median(change)), medianInt(failed), slices.Max(failed),
			msText(median(window)), msText(slices.Max(window)), msText(median(gap)), msText(slices.Max(gap)))
	}
	b.WriteString(bgpBenchRatios(res))
	if n := reps * len(bgpBenchScenarios); n > 0 {
		total := 0
		for _, runs := range res {
			total += len(runs)
		}
		if total < n {
			fmt.Fprintf(&b, "\n%d of %d runs failed and are not in the table (see the test log).\n", n-total, n)
		}
	}
	return b.String()
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(d []int) int {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func msText(d time.Duration) string {
	ms := d.Milliseconds()
	if ms >= 1000 {
		return fmt.Sprintf("%d,%03d ms", ms/1000, ms%1000)
	}
	return fmt.Sprintf("%d ms", ms)
}

// drainEstablished holds 64 connections through the router to VIP:50000
// (the stand-ins echo), spread over both LBs, drains lb1 and probes every
// connection when the router has moved off lb1 (GRACEFUL_SHUTDOWN taking
// effect) and again after lb1 withdrew: the planned withdrawal keeps new
// connections working, not lb1's established ones.
func drainEstablished(t *testing.T) string {
	r, _, nodes := bgpLab(t, lab.RouterOptions{}, lab.BGPOptions{DrainTime: "3s"})
	n := r.Subnet.Addr().As4()[2]
	var sources []string
	for i := 0; i < 8; i++ {
		a := netip.AddrFrom4([4]byte{10, 79, n, byte(10 + i)})
		r.IPN(r.Client.NS, "addr", "add", a.String()+"/24", "dev", "eth0")
		sources = append(sources, a.String())
	}
	flows := lab.StartFlows(t, r.Client, netip.AddrPortFrom(r.VIP, 50000).String(), sources, 8)
	active := func(node *lab.Node) int64 {
		st, err := node.Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range st.Frontends {
			if f.Name == "talos" {
				return f.ActiveConns
			}
		}
		return -1
	}
	on1, on2 := active(nodes[0]), active(nodes[1])
	if ok := flows.Probe(); countFalse(ok) != 0 {
		t.Fatalf("%d connections broken before the drain", countFalse(ok))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if out, err := nodes[0].CLI("drain", "self"); err != nil {
			t.Errorf("drain self: %v: %s", err, out)
		}
	}()
	lab.AwaitNextHops(t, r.Router, r.VIPPrefix(), 10*time.Second, r.LBs[1].Addr)
	atShift := countFalse(flows.Probe())
	<-done
	afterWithdrawal := countFalse(flows.Probe())
	t.Logf("established: lb1 carried %d, lb2 %d; broken once the router moved off lb1: %d; after the withdrawal: %d", on1, on2, atShift, afterWithdrawal)
	return fmt.Sprintf(`
Established connections across a planned withdrawal (one run; 64
connections to VIP:50000 through the router, echoing): lb1 carried %d and
lb2 %d. Once GRACEFUL_SHUTDOWN took effect (the router's route lost lb1),
%d were broken (reset by lb2, which has no socket for them); after lb1
withdrew and closed its listeners, %d in all. New connections never
failed (the rows above); lb1's established ones cannot be kept through
an ECMP router (docs/bgp.md).
`, on1, on2, atShift, afterWithdrawal)
}

// bgpBenchRatios words each BGP fault against its VRRP counterpart from the
// same run: failed connects for the planned ones, the window for the rest.
func bgpBenchRatios(res map[string][]benchRun) string {
	stat := func(name string, f func(benchRun) time.Duration) (time.Duration, bool) {
		runs := res[name]
		if len(runs) == 0 {
			return 0, false
		}
		var d []time.Duration
		for _, r := range runs {
			d = append(d, f(r))
		}
		return median(d), true
	}
	total := func(name string) (int, int) {
		failed, n := 0, 0
		for _, r := range res[name] {
			failed += r.failed
			n++
		}
		return failed, n
	}
	window := func(r benchRun) time.Duration { return r.window }
	var b strings.Builder
	b.WriteString("\n")
	for _, planned := range []string{"BGP: vipd drain self (drain_time 2 s)", "BGP: SIGTERM (drain_time 2 s)"} {
		if f, n := total(planned); n > 0 {
			vf, vn := total("VRRP 200 ms: SIGTERM of the master")
			fmt.Fprintf(&b, "- %s: %d failed connects in %d runs; VRRP SIGTERM %d in %d.\n", strings.TrimPrefix(planned, "BGP: "), f, n, vf, vn)
		}
	}
	for _, pair := range [][2]string{
		{"BGP: SIGKILL of vipd", "VRRP 200 ms: SIGKILL of the master"},
		{"BGP: host dead, hold time 3 s", "VRRP 200 ms: master host dead"},
		{"BGP: host dead, BFD 300 ms x 3", "VRRP 200 ms: master host dead"},
	} {
		bw, ok1 := stat(pair[0], window)
		vw, ok2 := stat(pair[1], window)
		if !ok1 || !ok2 || vw == 0 {
			continue
		}
		fmt.Fprintf(&b, "- %s: window %s vs VRRP %s = **%.2f**; failed connects median %d vs %d.\n",
			strings.TrimPrefix(pair[0], "BGP: "), msText(bw), msText(vw), float64(bw)/float64(vw),
			medianInt(failedOf(res[pair[0]])), medianInt(failedOf(res[pair[1]])))
	}
	return b.String()
}

func failedOf(runs []benchRun) []int {
	var out []int
	for _, r := range runs {
		out = append(out, r.failed)
	}
	return out
}
