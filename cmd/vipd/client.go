package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
)

const defaultSocket = "/run/vipd/vipd.sock"

// clientFlags adds -c and --socket to fs and returns a function that
// resolves the socket path after parsing.
func clientFlags(fs *flag.FlagSet) func() (string, error) {
	cfgPath := fs.String("c", "", "config file (the socket path is read from [control] socket)")
	socket := fs.String("socket", "", "control socket path (default "+defaultSocket+")")
	return func() (string, error) {
		if *socket != "" {
			return *socket, nil
		}
		if *cfgPath != "" {
			cfg, err := config.Load(*cfgPath)
			if err != nil {
				return "", err
			}
			return cfg.Control.Socket, nil
		}
		return defaultSocket, nil
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%v\n", err)
	return 1
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	sock := clientFlags(fs)
	out := fs.String("o", "table", "output: table or json")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	path, err := sock()
	if err != nil {
		return fail(stderr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := control.NewClient(path).Status(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	if *out == "json" {
		printJSON(stdout, st)
		return 0
	}
	printStatus(stdout, st)
	return 0
}

// printStatus renders the status for a person at 3 a.m.: who holds the
// VIP, why the priority is what it is, and which servers take traffic.
func printStatus(w io.Writer, st control.Status) {
	fmt.Fprintf(w, "node %s (%s mode), vipd %s, up %s\n\n", q(st.Node), q(st.Mode), q(st.Version), time.Since(st.Started).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(st.Instances) > 0 {
		fmt.Fprintln(tw, "INSTANCE\tVRID\tSTATE\tPRIORITY\tMASTER\tVIPS\tTRANSITIONS\tVERSION\tLAST CHANGE")
		for _, in := range st.Instances {
			prio := fmt.Sprint(in.Priority)
			if in.EffectivePriority != in.Priority {
				prio = fmt.Sprintf("%d (base %d)", in.EffectivePriority, in.Priority)
			}
			last := "-"
			if !in.LastTransition.IsZero() {
				last = fmt.Sprintf("%s ago: %s", time.Since(in.LastTransition).Round(time.Second), in.LastReason)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\tv%d\t%s\n", q(in.Name), in.VRID, q(in.State), prio, q(orDash(in.MasterAddr)), q(strings.Join(in.VIPs, ",")), in.Transitions, in.Version, q(last))
		}
		tw.Flush()
		for _, in := range st.Instances {
			pre := ""
			if len(st.Instances) > 1 {
				pre = in.Name + ": "
			}
			if in.Fault != "" {
				fmt.Fprintf(w, "%sFAULT: %s (retrying at %s)\n", pre, q(in.Fault), in.RetryAt.Format(time.TimeOnly))
			}
			for _, p := range in.Problems {
				fmt.Fprintf(w, "%sPROBLEM: %s\n", pre, q(p))
			}
			if in.PriorityReason != "" {
				fmt.Fprintf(w, "%spriority: %s\n", pre, q(in.PriorityReason))
			}
			var drops []string
			for k, v := range in.Drops {
				drops = append(drops, fmt.Sprintf("%s=%d", q(k), v))
			}
			sort.Strings(drops)
			fmt.Fprintf(w, "%sadverts: sent %d, received %d, dropped {%s}\n", pre, in.AdvertsSent, in.AdvertsReceived, strings.Join(drops, " "))
			for _, s := range in.Senders {
				fmt.Fprintf(w, "%sheard: %s v%d priority %d every %gms, checksum %s, %s ago\n", pre, q(s.Addr), s.Version, s.Priority, s.Interval, q(orDash(s.Checksum)), time.Since(s.LastSeen).Round(time.Millisecond))
			}
		}
		fmt.Fprintln(w)
	}
	for _, f := range st.Findings {
		pre := ""
		if f.Instance != "" && len(st.Instances) > 1 {
			pre = f.Instance + ": "
		}
		fmt.Fprintf(w, "%s%s (%s): %s\n%s  fix: %s\n", pre, strings.ToUpper(f.Severity), f.Check, f.Seen, pre, f.Fix)
	}
	if len(st.Findings) > 0 {
		fmt.Fprintln(w, "(vipd doctor checks more: the firewall, the segment, the backends)")
		fmt.Fprintln(w)
	}
	if st.BGP != nil {
		printBGP(w, st.BGP)
	}
	if len(st.Peers) > 0 {
		fmt.Fprintln(tw, "PEER\tADDRESS\tSTATE\tPRIORITY\tREADY\tLAST SEEN\tLIVENESS")
		for _, p := range st.Peers {
			seen := time.Since(p.LastSeen).Round(time.Millisecond).String() + " ago"
			if !p.Fresh {
				seen += " (stale)"
			}
			if p.LastSeen.IsZero() {
				seen = "never"
			}
			state := "-"
			if p.State != "" {
				state = q(p.State)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%s\t%s\n", q(p.Name), q(p.Addr), state, p.EffectivePriority, p.Ready, seen, p.Liveness)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if len(st.Trackers) > 0 {
		fmt.Fprintln(tw, "TRACKER\tTYPE\tWEIGHT\tHEALTHY\tDETAIL")
		for _, t := range st.Trackers {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%s\n", q(t.Name), q(t.Type), t.Weight, t.Healthy, q(t.Detail))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	fmt.Fprintln(tw, "FRONTEND\tBIND\tLISTENING\tACTIVE\tTOTAL\tBACKEND\tHEALTHY")
	for _, f := range st.Frontends {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%s\t%d\n", q(f.Name), q(strings.Join(f.Binds, ",")), f.Listening, f.ActiveConns, f.TotalConns, q(f.Backend), f.Healthy)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "BACKEND\tSERVER\tADDRESS\tSTATE\tACTIVE\tTOTAL\tLAST CHECK")
	for _, b := range st.Backends {
		for _, s := range b.Servers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", q(b.Name), q(s.Name), q(s.Addr), q(s.State), s.ActiveConns, s.TotalConns, q(orDash(s.LastCheck)))
		}
	}
	tw.Flush()
	if d := st.LastDrill; d != nil {
		fmt.Fprintf(w, "\nlast drill %s: %s -> %s, gap %.0f ms (timers predict %.0f ms)\n", d.At.Format(time.RFC3339), q(d.From), q(d.To), d.GapMs, d.ExpectedMs)
	}
}

// q shows text from the daemon, which may carry a peer's or a backend's
// words, as it is when it is plain printable text, and Go-quoted (control
// characters escaped) otherwise: nothing from the network can move the
// cursor or recolour a cell, and a tab cannot shift the columns.
func q(s string) string {
	for _, r := range s {
		if r == '\t' || !unicode.IsPrint(r) && r != ' ' {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdDrill(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("drill", stderr)
	sock := clientFlags(fs)
	hard := fs.Bool("hard", false, "rehearse a crash: stop advertising without priority 0")
	instance := fs.String("instance", "", "the VRRP instance to drill (default: the one this node is MASTER of)")
	hold := fs.Duration("hold", 10*time.Second, "how long this node refrains from taking the VIP back")
	force := fs.Bool("force", false, "drill even when no healthy backup is known")
	bgpMode := fs.Bool("bgp", false, "drill the BGP announcement (automatic on a node without VRRP)")
	out := fs.String("o", "text", "output: text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || pos[0] != "failover" {
		fmt.Fprintln(stderr, "usage: vipd drill failover [--instance NAME] [--hard] [--hold 10s] [--force] [--bgp] [-o json]")
		return 2
	}
	path, err := sock()
	if err != nil {
		return fail(stderr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	res, err := control.NewClient(path).Drill(ctx, control.DrillRequest{Instance: *instance, Hard: *hard, Hold: *hold, Force: *force, BGP: *bgpMode})
	if err != nil {
		return fail(stderr, err)
	}
	if *out == "json" {
		printJSON(stdout, res)
		return 0
	}
	if res.Mode == "bgp" {
		printBGPDrill(stdout, res)
		return 0
	}
	kind := "planned handover (priority 0, make before break)"
	if res.Hard {
		kind = "crash rehearsal (adverts stopped, VIP dropped)"
	}
	fmt.Fprintf(stdout, "drill: %s\n  from %s to %s\n  new master heard after %.0f ms\n  client-visible gap %.0f ms (timers predict %.0f ms), %d of %d probes failed (%s)\n",
		kind, res.From, res.To, res.TakeoverMs, res.GapMs, res.ExpectedMs, res.Failed, res.Probes, res.Probe)
	if res.Resumed {
		fmt.Fprintln(stdout, "  no backup took over within Down_Interval: this node resumed as MASTER without dropping the VIP")
	}
	if len(res.Marks) > 0 {
		fmt.Fprintln(stdout, "  timeline (ms from the fault; -o json has every probe):")
		for _, m := range res.Marks {
			who := ""
			if m.Node != "" {
				who = " (" + m.Node + ")"
			}
			fmt.Fprintf(stdout, "  %8.1f  %s%s\n", m.TMs, m.What, who)
		}
	}
	return 0
}

func cmdServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("server", stderr)
	sock := clientFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 || !strings.Contains(pos[1], "/") {
		fmt.Fprintln(stderr, "usage: vipd server drain|maint|ready BACKEND/SERVER")
		return 2
	}
	backend, server, _ := strings.Cut(pos[1], "/")
	path, err := sock()
	if err != nil {
		return fail(stderr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := control.NewClient(path).Server(ctx, control.ServerRequest{Backend: backend, Server: server, Action: pos[0]}); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s/%s: %s\n", backend, server, pos[0])
	return 0
}

func cmdReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("reload", stderr)
	sock := clientFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	path, err := sock()
	if err != nil {
		return fail(stderr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := control.NewClient(path).Reload(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	if len(res.Applied) == 0 {
		fmt.Fprintln(stdout, "reloaded: no changes")
	} else {
		fmt.Fprintf(stdout, "reloaded: %s\n", strings.Join(res.Applied, ", "))
	}
	return 0
}
