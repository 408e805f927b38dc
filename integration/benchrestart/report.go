package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond)/time.Millisecond)
}

// ratio is a/b as "1.02×", "–" when b is not positive.
func ratio(a, b float64) string {
	if b <= 0 || a < 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func mib(kib int64) string {
	if kib < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// report is the "## Hitless restart" section.
func report(rs []lab.RestartResult, o opts, took time.Duration) string {
	var b strings.Builder
	kernel, kav, hav := lab.Versions()
	load, _ := os.ReadFile("/proc/loadavg")
	b.WriteString("## Hitless restart\n\n")
	fmt.Fprintf(&b, "Command (as root, in the repository): `go run ./integration/benchrestart %s` (also `make bench-restart`)  \n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&b, "Date: %s; machine: %d CPUs (nproc), kernel %s, %s; %s, %s; load average at the end %s; whole run %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), kernel, runtime.Version(), kav, hav,
		strings.Join(strings.Fields(string(load))[:3], " "), took.Round(time.Second))
	fmt.Fprintf(&b, `Setup: network namespaces on a bridge: two LB hosts (lb1 priority 150
holds the VIP, lb2 100; both advertise every %s), a stream server behind
them and a client host. The client holds %d connections through VIP:6443,
each carrying a checksummed stream both ways (a deterministic byte
sequence per connection and direction, %d bytes every %s each way, checked
byte by byte by the receiver, so a lost or repeated byte shows); one in
ten shuts its client-to-server direction and one in ten its
server-to-client direction halfway through the restarts, the other
direction carrying on. A new connection (connect, exchange, close) starts
every 10 ms. A raw socket in the client's namespace records every VRRP
advert on the segment. One LB process is restarted %d times in a row, %s of
traffic before the first and after each. keepalived is paired with HAProxy
(`+"`mode tcp`"+`, timeouts of an hour, a stats socket with `+"`expose-fd listeners`"+`);
HAProxy's reload is the seamless one (a new process with
`+"`-x <stats socket> -sf <old pid>`"+`); keepalived's restart is SIGTERM, exit, start, as
`+"`systemctl restart keepalived`"+` does. A stream is *cut* when it did not end in
order (a reset, an EOF its sender never sent, an error); bytes *lost* were
written by one side and never received by the other (for a cut stream,
also what its sender wrote before it saw the cut). VRRP transitions are
the status JSON's `+"`transitions`"+` (keepalived: its "Entering ... STATE" log
lines); on the wire, a master change is the sender of the adverts
changing (a backup's last advert after a preempting master's first counts
twice). The advert gap is the longest time between two adverts on the
segment, from any router, around a restart (from its start to two
intervals after it is done); the longest between restarts, beside it, is
what the loaded machine alone does to the adverts.

`, o.interval, o.n, o.chunk, o.every, o.restarts, o.dwell)
	b.WriteString("| restart | node | restarts done | streams cut (reset) | bytes lost / duplicated (of bytes sent) | half-closed streams ended in order | new connections failed |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		s := r.Streams
		fmt.Fprintf(&b, "| %s | %s | %d of %d%s | %d of %d (%d) | %d / %d (of %d) | %d of %d | %d of %d |\n",
			r.System, node(r.OnBackup), r.Restarts, o.restarts, errNote(r), s.Cut, s.Streams, s.Reset,
			s.LostBytes, s.DupBytes, s.SentC2S+s.SentS2C, s.HalfClosed, o.n/5, r.Probe.Failed, r.Probe.Attempts)
	}
	b.WriteString("\n| restart | node | VRRP transitions: peer / restarted node | on the wire: master changes / priority-0 adverts | longest advert gap around a restart (× interval); between restarts | time per restart, median (max) | restarted process fds after restart 1 → last | RSS after restart 1 → last | old processes left after the last restart (longest lived) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		gap := maxDur(r.Gaps)
		nodeTr := fmt.Sprint(r.Node)
		if r.NodeFresh {
			nodeTr += " (counter reset)"
		}
		old := "–"
		if r.System == lab.SysHAProxy || r.System == lab.SysHAProxyHard {
			old = fmt.Sprintf("%d (%s)", r.OldLeft, ms(r.LingerMax))
		}
		fmt.Fprintf(&b, "| %s | %s | %d / %s | %d / %d | %s (%s); %s | %s (%s) | %d → %d (%s) | %s → %s (%s) | %s |\n",
			r.System, node(r.OnBackup), r.Peer, nodeTr, r.WireChanges, r.Resigns, ms(gap), ratio(float64(gap), float64(o.interval)), ms(r.Steady),
			ms(lab.Median(r.Took)), ms(maxDur(r.Took)), r.FDFirst, r.FDLast, ratio(float64(r.FDLast), float64(r.FDFirst)),
			mib(r.RSSFirst), mib(r.RSSLast), ratio(float64(r.RSSLast), float64(r.RSSFirst)), old)
	}
	b.WriteString("\n")
	b.WriteString(summary(rs, o))
	b.WriteString(targets(rs, o))
	for _, r := range rs {
		if r.SteadyChanges > 0 {
			fmt.Fprintf(&b, "\n%s on %s: %d master changes on the wire in the %s before the first restart (no restart: the loaded machine's noise).\n",
				r.System, node(r.OnBackup), r.SteadyChanges, o.dwell)
		}
		if len(r.WireLog) > 0 && r.System == lab.SysVipdRestart {
			fmt.Fprintf(&b, "\n%s on %s, on the wire (after the first restart began): %s.\n", r.System, node(r.OnBackup), strings.Join(r.WireLog, "; "))
		}
		if r.Err != "" || len(r.Streams.Why) > 0 {
			fmt.Fprintf(&b, "\n%s on %s: ", r.System, node(r.OnBackup))
			if r.Err != "" {
				fmt.Fprintf(&b, "first failure: %s. ", oneLineText(r.Err))
			}
			if len(r.Streams.Why) > 0 {
				fmt.Fprintf(&b, "First cut: %s.", oneLineText(r.Streams.Why[0]))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func node(backup bool) string {
	if backup {
		return "backup"
	}
	return "master"
}

func errNote(r lab.RestartResult) string {
	switch {
	case r.Failed > 0 && r.System == lab.SysVipdRestart:
		return fmt.Sprintf(" (%d rolled back)", r.Failed)
	case r.Failed > 0:
		return fmt.Sprintf(" (%d failed)", r.Failed)
	case r.Err != "":
		return " (stopped)"
	}
	return ""
}

func oneLineText(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}

// targets checks issue 13's targets on vipd restart's rows.
func targets(rs []lab.RestartResult, o opts) string {
	var b strings.Builder
	for _, r := range rs {
		if r.System != lab.SysVipdRestart {
			continue
		}
		s := r.Streams
		checks := []struct {
			what string
			ok   bool
		}{
			{fmt.Sprintf("%d restarts in a row done", o.restarts), r.Restarts == o.restarts && r.Err == ""},
			{"0 streams cut", s.Cut == 0 && s.Streams == o.n},
			{"0 bytes lost or duplicated", s.LostBytes == 0 && s.DupBytes == 0 && s.Corrupt == 0},
			{"0 failed new connections", r.Probe.Failed == 0 && r.Probe.Attempts > 0},
			{"0 VRRP transitions on the peer", r.Peer == 0},
			{"advert gap ≤ one interval (+10%)", maxDur(r.Gaps) <= o.interval+o.interval/10},
			{"fds and RSS after the last restart as after the first (±10%)", within(r.FDLast, r.FDFirst, 0.1) && within(int(r.RSSLast), int(r.RSSFirst), 0.1)},
		}
		var met, missed []string
		for _, c := range checks {
			if c.ok {
				met = append(met, c.what)
			} else {
				missed = append(missed, c.what)
			}
		}
		fmt.Fprintf(&b, "Targets (issue 13), vipd restart on the %s: ", node(r.OnBackup))
		if len(missed) == 0 {
			b.WriteString("all met (" + strings.Join(met, ", ") + ").\n")
		} else {
			fmt.Fprintf(&b, "**not met: %s**; met: %s.\n", strings.Join(missed, ", "), strings.Join(met, ", "))
		}
	}
	return b.String()
}

func within(a, b int, frac float64) bool {
	if a <= 0 || b <= 0 {
		return false
	}
	d := float64(a-b) / float64(b)
	return d <= frac && d >= -frac
}

// summary compares the rows in words, with ratios.
func summary(rs []lab.RestartResult, o opts) string {
	find := func(sys string, backup bool) *lab.RestartResult {
		for i := range rs {
			if rs[i].System == sys && rs[i].OnBackup == backup && rs[i].Restarts > 0 {
				return &rs[i]
			}
		}
		return nil
	}
	kept := func(r *lab.RestartResult) string {
		return fmt.Sprintf("%d of %d streams", r.Streams.Streams-r.Streams.Cut, r.Streams.Streams)
	}
	var parts []string
	v, ha, term, ka := find(lab.SysVipdRestart, false), find(lab.SysHAProxy, false), find(lab.SysVipdTerm, false), find(lab.SysKeepalived, false)
	if v != nil {
		parts = append(parts, fmt.Sprintf("On the master, vipd restart kept %s through %d restarts (%d rolled back) with %d failed new connections and %d VRRP transitions on the peer; a restart took %s (median)",
			kept(v), v.Restarts+v.Failed, v.Failed, v.Probe.Failed, v.Peer, ms(lab.Median(v.Took))))
	}
	if term != nil {
		parts = append(parts, fmt.Sprintf("SIGTERM + start kept %s (%d transitions on the peer, %s per restart)", kept(term), term.Peer, ms(lab.Median(term.Took))))
	}
	if ha != nil {
		s := fmt.Sprintf("HAProxy's seamless reload kept %s too, but each reload leaves the old process serving its connections until they end: %d still ran after the last reload, the longest for %s (the rest of the run)",
			kept(ha), ha.OldLeft, ms(ha.LingerMax))
		if v != nil && lab.Median(ha.Took) > 0 {
			s += fmt.Sprintf("; vipd restart / HAProxy reload time: %s", ratio(float64(lab.Median(v.Took)), float64(lab.Median(ha.Took))))
		}
		parts = append(parts, s)
	}
	if h := find(lab.SysHAProxyHard, false); h != nil {
		parts = append(parts, fmt.Sprintf("with hard-stop-after 5s the old process is gone after %s and %s are left", ms(h.LingerMax), kept(h)))
	}
	if ka != nil && ka.Probe.Attempts > 0 {
		parts = append(parts, fmt.Sprintf("keepalived's restart is a failover and back: %d transitions on the peer, %s left, %d of %d new connections failed (%.1f%%)",
			ka.Peer, kept(ka), ka.Probe.Failed, ka.Probe.Attempts, 100*float64(ka.Probe.Failed)/float64(ka.Probe.Attempts)))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + ".\n\n"
}
