package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/daemon"
	"github.com/vipd/vipd/internal/doctor"
)

// cmdDoctor is `vipd doctor -c FILE [--node NAME] [--listen 5s] [-o json]`:
// the preflight. Exit 0 when nothing is found, 1 with warnings, 2 with
// errors (and for bad flags or a config that does not load).
func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("doctor", stderr)
	cfgPath := fs.String("c", "/etc/vipd/vipd.toml", "config file")
	node := fs.String("node", "", "this node's [[node]] name (default: by hostname, then by local address)")
	listen := fs.Duration("listen", 5*time.Second, "how long to listen on the segment for adverts, beacons and answers to the probes")
	out := fs.String("o", "text", "output: text or json")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	if *listen <= 0 || *listen > 5*time.Minute {
		fmt.Fprintf(stderr, "vipd doctor: --listen %v: give a duration between 1ms and 5m (a few advert intervals; 5s by default)\n", *listen)
		return 2
	}
	if *out != "text" && *out != "json" {
		fmt.Fprintf(stderr, "vipd doctor: -o %s: give text or json\n", *out)
		return 2
	}
	plan, err := daemon.DoctorPlan(*cfgPath, *node)
	if err != nil {
		// A config that does not load is one finding per error, so
		// that -o json stays a report.
		r := doctor.Report{Node: *node, Config: *cfgPath, Checks: []string{doctor.CheckConfig}}
		for _, line := range strings.Split(err.Error(), "\n") {
			r.Findings = append(r.Findings, doctor.Finding{Check: doctor.CheckConfig, Severity: doctor.SevError, Seen: line,
				Fix: "fix the file (`vipd check -c FILE` lists every error), then run doctor again"})
		}
		printReport(stdout, r, *out)
		return 2
	}
	// A vipd running here answers on its socket: doctor then leaves its
	// listeners and VIP alone and uses what it knows (peers' beacons).
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	if st, err := control.NewClient(plan.Socket).Status(sctx); err == nil {
		plan.Running = &st
	}
	cancel()
	r := doctor.Run(ctx, plan, doctor.HostEnv(), *listen)
	printReport(stdout, r, *out)
	return r.ExitCode()
}

func printReport(w io.Writer, r doctor.Report, format string) {
	if format == "json" {
		if r.Findings == nil {
			r.Findings = []doctor.Finding{}
		}
		printJSON(w, r)
		return
	}
	r.WriteText(w)
}
