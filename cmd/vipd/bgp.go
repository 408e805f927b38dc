package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vipd/vipd/internal/control"
)

// cmdDrain is `vipd drain self [--undo]`: a BGP node withdraws every VIP
// the planned way (GRACEFUL_SHUTDOWN for drain_time, then withdrawn) and
// announces none until --undo. It returns once the VIPs are withdrawn.
func cmdDrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("drain", stderr)
	sock := clientFlags(fs)
	undo := fs.Bool("undo", false, "announce again (end the drain)")
	out := fs.String("o", "text", "output: text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || pos[0] != "self" {
		fmt.Fprintln(stderr, "usage: vipd drain self [--undo] [-o json]   (BGP mode: withdraw this node's VIPs the planned way, or announce them again)")
		return 2
	}
	path, err := sock()
	if err != nil {
		return fail(stderr, err)
	}
	// The daemon answers once the drain time has passed.
	ctx, cancel := context.WithTimeout(ctx, 11*time.Minute)
	defer cancel()
	res, err := control.NewClient(path).DrainSelf(ctx, control.DrainRequest{Undo: *undo})
	if err != nil {
		return fail(stderr, err)
	}
	if *out == "json" {
		printJSON(stdout, res)
		return 0
	}
	if *undo {
		fmt.Fprintln(stdout, "drain ended: the VIPs are announced again while their backends are healthy")
	} else {
		fmt.Fprintf(stdout, "drained in %.1f s: routers were told to prefer the other nodes (GRACEFUL_SHUTDOWN), then the VIPs were withdrawn\n", res.TookMs/1000)
	}
	for _, v := range res.VIPs {
		fmt.Fprintf(stdout, "  %s %s", v.VIP, v.State)
		if v.Reason != "" {
			fmt.Fprintf(stdout, ": %s", q(v.Reason))
		}
		fmt.Fprintln(stdout)
	}
	return 0
}

// printBGP renders the bgp section of the status: the sessions with each
// router and why each VIP is or is not announced.
func printBGP(w io.Writer, b *control.BGP) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := fmt.Sprintf("BGP: AS %d, router id %s", b.ASN, b.RouterID)
	if b.Drained {
		head += ", DRAINED (vipd drain self; undo with vipd drain self --undo)"
	}
	if b.Stopping {
		head += ", stopping"
	}
	if !b.DrillUntil.IsZero() {
		head += fmt.Sprintf(", drill holding back until %s", b.DrillUntil.Format(time.TimeOnly))
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(tw, "PEER\tASN\tSTATE\tUPTIME\tHOLD\tSENT\tRECEIVED\tFLAPS\tBFD\tLAST ERROR")
	for _, s := range b.Sessions {
		up := "-"
		if s.UptimeS > 0 {
			up = (time.Duration(s.UptimeS) * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%gs\t%d\t%d\t%d\t%s\t%s\n", s.Peer, s.ASN, s.State, up, s.HoldTimeS,
			s.PrefixesSent, s.PrefixesReceived, s.Flaps, q(orDash(s.BFD)), q(orDash(s.LastError)))
	}
	tw.Flush()
	fmt.Fprintln(tw, "VIP\tSTATE\tROUTERS\tFRONTENDS\tWHY")
	for _, v := range b.VIPs {
		why := v.Reason
		if v.State == "draining" && !v.WithdrawAt.IsZero() {
			why += fmt.Sprintf(" (withdrawn at %s)", v.WithdrawAt.Format(time.TimeOnly))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", v.VIP, strings.ToUpper(v.State), v.Peers, q(orDash(strings.Join(v.Frontends, ","))), q(orDash(why)))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// printBGPDrill is the text of a BGP drill's result.
func printBGPDrill(w io.Writer, res control.DrillResult) {
	kind := "planned withdrawal (GRACEFUL_SHUTDOWN for drain_time, then withdrawn)"
	if res.Hard {
		kind = "hard withdrawal (at once, as a crash or failed backends do)"
	}
	fmt.Fprintf(w, "drill (BGP): %s\n  from %s to %s\n  withdrawn after %.0f ms\n  client-visible gap %.0f ms, %d of %d probes failed (%s)\n",
		kind, res.From, res.To, res.TakeoverMs, res.GapMs, res.Failed, res.Probes, res.Probe)
	if res.Resumed {
		fmt.Fprintln(w, "  no other node answered through the routers: this node announced again at once")
	}
}
