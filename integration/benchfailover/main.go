// Command benchfailover measures the client-visible failover gap of vipd
// against keepalived + HAProxy in one run, on a lab of network namespaces:
// two LB hosts, a stand-in control plane, a client that starts a TCP
// connection to VIP:6443 every 10 ms and reads the backend's banner, and a
// monitor host that asks who has the VIP (ARP) every 5 ms. Each fault is
// injected -reps times into each configuration, alternating, at a random
// phase of the master's advert timer. Needs root.
//
//	go run ./integration/benchfailover -reps 10 -out docs/benchmarks.md -plots docs
//
// The faults: the master's vipd (or keepalived and HAProxy) SIGKILLed,
// OOM-killed by a cgroup memory limit, panicking (a test-only trigger in a
// binary built with -tags vipd_crashtest), restarted as `systemctl
// restart` does (SIGTERM, ExecStopPost cleanup, start), and, unchanged
// from the RFC timers, a dead host (all of the master namespace's links
// down at once), a cut cable (the switch port down) and SIGSTOP. For vipd
// the unit's ExecStopPost (`vipd cleanup`) runs as systemd would, after
// the dead process was reaped.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// config is one system under test.
type config struct {
	Name     string `json:"name"`
	Keep     bool   `json:"keepalived"` // keepalived + HAProxy instead of vipd
	Interval string `json:"interval"`   // vipd advert_interval or keepalived advert_int
	NoLive   bool   `json:"no_liveness"`
	Short    string `json:"short"` // legend name in plots
}

var configs = []config{
	{Name: "vipd, defaults (200 ms adverts, liveness on)", Interval: "200ms", Short: "vipd"},
	{Name: "vipd, 200 ms adverts, liveness_port = 0", Interval: "200ms", NoLive: true, Short: "vipd, liveness off"},
	{Name: "keepalived VRRPv3, 1 s (default) + HAProxy", Keep: true, Interval: "1", Short: "keepalived 1 s + HAProxy"},
	{Name: "keepalived VRRPv3, 100 ms + HAProxy", Keep: true, Interval: "0.1", Short: "keepalived 100 ms + HAProxy"},
}

// fault is one way the master goes away.
type fault struct {
	Name  string `json:"name"`
	Crash bool   `json:"crash"` // the process dies while its host lives
	// VipdOnly faults have no keepalived counterpart of their own: an OOM
	// kill is the kernel's SIGKILL, a Go panic is vipd's.
	VipdOnly bool   `json:"vipd_only"`
	What     string `json:"what"`
}

var faults = []fault{
	{Name: "SIGKILL", Crash: true, What: "kill -9 of the master's vipd (keepalived: keepalived and HAProxy)"},
	{Name: "OOM kill", Crash: true, VipdOnly: true, What: "vipd leaks (test trigger) in a memory cgroup until the kernel's OOM killer kills it"},
	{Name: "panic", Crash: true, VipdOnly: true, What: "a Go panic on a goroutine (test trigger)"},
	{Name: "restart", What: "systemctl restart: SIGTERM, wait for the exit, ExecStopPost cleanup, start (keepalived: SIGTERM, start; HAProxy keeps running)"},
	{Name: "dead host", What: "every link of the master's namespace down at once"},
	{Name: "cut cable", What: "the master's switch port down"},
	{Name: "SIGSTOP", What: "the master's vipd (keepalived: keepalived and HAProxy) stopped for the rest of the run"},
}

func main() {
	if role := os.Getenv("VIPD_TEST_HELPER"); role != "" {
		os.Exit(lab.HelperMain(role))
	}
	switch {
	case os.Getenv("VIPD_BENCH_BACKEND") != "":
		os.Exit(backendMain())
	case os.Getenv("VIPD_BENCH_PROBE") != "":
		os.Exit(probeMain())
	case os.Getenv("VIPD_BENCH_ARP") != "":
		os.Exit(arpMain())
	}
	// The lab asks testing.Short(); register the test flags it reads.
	testing.Init()
	reps := flag.Int("reps", 10, "repetitions per configuration and fault")
	out := flag.String("out", "", "markdown file whose \"## Failover\" section is (re)written")
	plots := flag.String("plots", "", "directory for the SVG plots and the run data (benchmarks-failover.json)")
	replot := flag.String("replot", "", "only redraw the plots and the section from this data file")
	steady := flag.Duration("steady", time.Second, "steady-state holder sampling per repetition (every 20 ms)")
	only := flag.String("only", "", "run only configurations whose name contains this")
	onlyFault := flag.String("fault", "", "run only faults whose name contains this")
	flag.Parse()
	if *replot != "" {
		var d benchData
		b, err := os.ReadFile(*replot)
		if err == nil {
			err = json.Unmarshal(b, &d)
		}
		if err != nil {
			fatal(err)
		}
		finish(&d, *out, *plots)
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "benchfailover: needs root (network namespaces)")
		os.Exit(1)
	}
	for _, bin := range []string{lab.KeepalivedBin, lab.HAProxyBin} {
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(os.Stderr, "benchfailover: %s missing (apt-get install keepalived haproxy)\n", bin)
			os.Exit(1)
		}
	}
	root, err := os.MkdirTemp("", "vbf")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(root)
	lab.Bin = filepath.Join(root, "vipd")
	crashBin = filepath.Join(root, "vipd-crashtest")
	for _, b := range []struct{ out, tags string }{{lab.Bin, ""}, {crashBin, "vipd_crashtest"}} {
		build := exec.Command("go", "build", "-tags", b.tags, "-o", b.out, "github.com/vipd/vipd/cmd/vipd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatal(fmt.Errorf("build vipd: %w", err))
		}
	}

	load, _ := os.ReadFile("/proc/loadavg")
	d := benchData{Args: strings.Join(os.Args[1:], " "), Started: time.Now().UTC(), LoadBefore: strings.TrimSpace(string(load)),
		Configs: configs, Faults: faults, Reps: *reps}
	// Ctrl-C / SIGTERM: finish the current run (its cleanups remove the
	// namespaces and processes), then report what was measured.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	interrupted := func() bool {
		select {
		case <-stop:
			fmt.Fprintln(os.Stderr, "benchfailover: interrupted; reporting the runs so far")
			signal.Stop(stop)
			close(stop)
			return true
		default:
			return false
		}
	}
	done := false
	for r := 1; r <= *reps && !done; r++ {
		for _, f := range faults {
			if *onlyFault != "" && !strings.Contains(f.Name, *onlyFault) {
				continue
			}
			for _, c := range configs {
				if *only != "" && !strings.Contains(c.Name, *only) || c.Keep && f.VipdOnly {
					continue
				}
				if done = done || interrupted(); done {
					break
				}
				name := fmt.Sprintf("rep%d %s %s", r, f.Name, c.Short)
				t := lab.NewBench(name, root)
				var rr result
				t.Run(func() { rr = runOne(t, c, f, *steady) })
				if t.Failed() {
					rr.Err = t.FirstErr()
				}
				rr.Config, rr.Fault, rr.Rep = c.Name, f.Name, r
				d.Runs = append(d.Runs, rr)
				fmt.Fprintf(os.Stderr, "%-50s gap %6s failed %3d takeover %6s arp %6s dual %d/%d %s\n", name,
					rr.Gap().Round(time.Millisecond), rr.Failed, rr.Takeover().Round(time.Millisecond), arpText(rr), rr.Dual, rr.Samples, rr.Err)
			}
		}
	}
	d.Took = time.Since(d.Started).Round(time.Second).String()
	load, _ = os.ReadFile("/proc/loadavg")
	d.LoadAfter = strings.TrimSpace(string(load))
	finish(&d, *out, *plots)
}

// finish writes the data, the plots and the markdown section.
func finish(d *benchData, out, plots string) {
	if plots != "" {
		b, _ := json.MarshalIndent(d.compact(), "", " ")
		if err := os.WriteFile(filepath.Join(plots, "benchmarks-failover.json"), b, 0o644); err != nil {
			fatal(err)
		}
		if err := writePlots(d, plots); err != nil {
			fatal(err)
		}
	}
	md := report(d, plots)
	fmt.Println(md)
	if out != "" {
		if err := lab.WriteSection(out, "## Failover", md); err != nil {
			fatal(err)
		}
		fmt.Fprintln(os.Stderr, "wrote", out)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchfailover:", err)
	os.Exit(1)
}
