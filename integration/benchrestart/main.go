// Command benchrestart restarts an LB process under load, vipd's hitless
// `vipd restart` against what exists, in one run. On a lab of network
// namespaces (two LB hosts on a bridge, a stream server behind them, a
// client host) a client holds N checksummed streams through VIP:6443,
// each carrying its own byte sequence both ways (one in ten half-closed
// each way mid-run), and starts a new connection every 10 ms; a raw
// capture on the segment records every VRRP advert. One LB process is
// then restarted R times in a row:
//
//   - vipd restart on the master, and on the backup (hand the sockets and
//     the state to the binary on disk);
//   - vipd SIGTERM + start on the master (today: the planned handover);
//   - HAProxy's seamless reload on the master (-x stats socket with
//     expose-fd listeners, -sf), keepalived untouched, without and with
//     hard-stop-after 5s;
//   - keepalived stop + start on the master (systemctl restart
//     keepalived), HAProxy untouched.
//
// Measured: streams cut (reset), bytes lost or duplicated, failed new
// connections, VRRP transitions, the longest advert gap, time per
// restart, fds and RSS of the restarted process, HAProxy's old processes.
// Needs root.
//
//	go run ./integration/benchrestart -n 1000 -restarts 10 -out docs/benchmarks.md
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// run is one scenario of the benchmark.
type run struct {
	System   string `json:"system"`
	OnBackup bool   `json:"on_backup"`
}

var runs = []run{
	{lab.SysVipdRestart, false},
	{lab.SysVipdRestart, true},
	{lab.SysVipdTerm, false},
	{lab.SysHAProxy, false},
	{lab.SysHAProxyHard, false},
	{lab.SysKeepalived, false},
}

// opts are the benchmark's settings.
type opts struct {
	n        int
	restarts int
	dwell    time.Duration
	interval time.Duration
	every    time.Duration
	chunk    int
}

func main() {
	if role := os.Getenv("VIPD_TEST_HELPER"); role != "" {
		os.Exit(lab.HelperMain(role))
	}
	testing.Init()
	var o opts
	flag.IntVar(&o.n, "n", 1000, "established streams through the VIP")
	flag.IntVar(&o.restarts, "restarts", 10, "restarts in a row per scenario")
	flag.DurationVar(&o.dwell, "dwell", 2*time.Second, "traffic before the first restart and after each")
	flag.DurationVar(&o.interval, "interval", 200*time.Millisecond, "VRRP advert interval of both systems")
	flag.DurationVar(&o.every, "every", 200*time.Millisecond, "one chunk per stream and direction this often")
	flag.IntVar(&o.chunk, "chunk", 256, "bytes per chunk")
	on := flag.String("on", "", "run only the restarts of this node: master or backup")
	only := flag.String("only", "", "run only the scenarios whose system contains this (vipd restart, SIGTERM, HAProxy, keepalived)")
	out := flag.String("out", "", "markdown file whose \"## Hitless restart\" section is (re)written")
	data := flag.String("json", "", "also write the results as JSON to this file")
	vipdBin := flag.String("vipd", "", "vipd binary to run (default: built from this tree)")
	from := flag.String("from", "", "only print the section from a -json file of an earlier run (to check the report; the date and load printed are now's)")
	flag.Parse()
	if *from != "" {
		var rs []lab.RestartResult
		b, err := os.ReadFile(*from)
		if err == nil {
			err = json.Unmarshal(b, &rs)
		}
		if err != nil {
			fatal(err)
		}
		fmt.Println(report(rs, o, 0))
		return
	}
	root, err := lab.PrepareBench("vbr", *vipdBin)
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(root)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	started := time.Now()
	var results []lab.RestartResult
	for _, rn := range runs {
		if *only != "" && !strings.Contains(rn.System, *only) || *on != "" && *on != node(rn.OnBackup) {
			continue
		}
		select {
		case <-stop:
			fmt.Fprintln(os.Stderr, "benchrestart: interrupted; reporting the runs so far")
			rn.System = ""
		default:
		}
		if rn.System == "" {
			break
		}
		name := rn.System + " on " + nodeName(rn.OnBackup)
		t := lab.NewBench(name, root)
		sc := lab.RestartScenario{System: rn.System, OnBackup: rn.OnBackup, Restarts: o.restarts,
			Dwell: o.dwell, Interval: o.interval,
			Streams: lab.StreamOptions{N: o.n, Every: o.every, Chunk: o.chunk, ProbeEvery: 10 * time.Millisecond, Drain: 30 * time.Second}}
		r := lab.RestartResult{System: rn.System, OnBackup: rn.OnBackup}
		t.Run(func() { r = lab.RunRestartScenario(t, sc) })
		if t.Failed() && r.Err == "" {
			r.Err = t.FirstErr()
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "%-45s %s\n", name, oneLine(r))
	}
	md := report(results, o, time.Since(started))
	fmt.Println(md)
	if *data != "" {
		b, _ := json.MarshalIndent(results, "", " ")
		if err := os.WriteFile(*data, b, 0o644); err != nil {
			fatal(err)
		}
	}
	if *out != "" {
		if err := lab.WriteSection(*out, "## Hitless restart", md); err != nil {
			fatal(err)
		}
		fmt.Fprintln(os.Stderr, "wrote", *out)
	}
}

func nodeName(backup bool) string {
	if backup {
		return "the backup"
	}
	return "the master"
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchrestart:", err)
	os.Exit(1)
}

// oneLine is a run's figures on one line, for the progress output.
func oneLine(r lab.RestartResult) string {
	s := r.Streams
	return fmt.Sprintf("failed %d restarts %d cut %d (reset %d) lost %d dup %d corrupt %d probes failed %d/%d peer %d node %d wire %d resign %d gap %s took %s fds %d->%d rss %d->%d old %d linger %s %s",
		r.Failed, r.Restarts, s.Cut, s.Reset, s.LostBytes, s.DupBytes, s.Corrupt, r.Probe.Failed, r.Probe.Attempts, r.Peer, r.Node,
		r.WireChanges, r.Resigns, maxDur(r.Gaps), lab.Median(r.Took).Round(time.Millisecond), r.FDFirst, r.FDLast,
		r.RSSFirst, r.RSSLast, r.OldLeft, r.LingerMax.Round(time.Millisecond), r.Err)
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
