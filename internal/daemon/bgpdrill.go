package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/vipd/vipd/bgp"
	"github.com/vipd/vipd/internal/control"
)

// bgpNobodyAfter is how long a BGP drill waits, after this node withdrew,
// for a probe through the routers to succeed before it concludes that no
// other node serves the VIP and announces again at once.
const bgpNobodyAfter = 2 * time.Second

// runBGP is `vipd drill failover` in BGP mode: this node leaves the
// planned way (GRACEFUL_SHUTDOWN for drain_time, then withdrawn), or at
// once with --hard (what a crash or failed backends do), holds back for
// req.Hold and then announces again. Like the VRRP drill it probes the
// VIP from here every 10 ms: while the VIP is on this node the probes
// reach its own listener, once it is withdrawn and gone from the loopback
// they go through the routers to the other nodes. If none answers within
// 2 s of the withdrawal, nobody else serves the VIP: the drill ends the
// hold and this node announces again at once ("resumed").
func (dr *drills) runBGP(ctx context.Context, req control.DrillRequest) (control.DrillResult, error) {
	d := dr.d
	var res control.DrillResult
	b := d.bgpSide()
	if b == nil {
		return res, fmt.Errorf("%w: this node announces no [bgp] VIP (no [bgp] table, or no [[bgp.peer]] for it)", control.ErrRefused)
	}
	if !dr.running.TryLock() {
		return res, fmt.Errorf("%w: a drill is already running", control.ErrRefused)
	}
	defer dr.running.Unlock()
	cfg, node := d.config()
	if req.Hold <= 0 {
		req.Hold = 10 * time.Second
	}
	st, _ := b.runner.status()
	vips := announcedVIPs(st)
	if len(vips) == 0 {
		return res, fmt.Errorf("%w: this node announces no VIP now (%s); nothing was changed", control.ErrRefused, whyNot(st))
	}
	var target netip.AddrPort
	for _, f := range cfg.Frontends {
		if v, ok := cfg.BGPVIPOf(f); ok && v == vips[0] {
			target = netip.AddrPortFrom(v, f.Port)
			break
		}
	}
	pctx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	probes := make(chan probeResult, 4096)
	if target.IsValid() {
		go probeLoop(pctx, d.os.Probe, func() string { return "" }, target, probes)
	}

	t0 := time.Now()
	if err := b.runner.Drill(ctx, req.Hard, req.Hold); err != nil {
		if errors.Is(err, errNothingAnnounced) {
			err = fmt.Errorf("%w (%s)", err, whyNot(st))
		}
		return res, fmt.Errorf("%w: %v; nothing was changed", control.ErrRefused, err)
	}
	b.log.Info().Bool("hard", req.Hard).Dur("hold", req.Hold).Msg("drill: withdrawing this node's VIPs")

	// Wait, on state changes, until every drilled VIP is withdrawn.
	limit := time.NewTimer(b.currentDrainTime() + 5*time.Second)
	defer limit.Stop()
	var withdrawn time.Duration
wait:
	for {
		changed := d.changes.Wait()
		st, _ := b.runner.status()
		out := true
		for _, v := range st.VIPs {
			out = out && (v.State == bgp.Withdrawn || !contains(vips, v.VIP))
		}
		if out {
			withdrawn = time.Since(t0)
			break wait
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-limit.C:
			break wait
		case <-changed:
		}
	}
	var list []string
	for _, v := range vips {
		list = append(list, v.String())
	}
	res = control.DrillResult{
		From: fmt.Sprintf("%s (%s)", node.Name, strings.Join(list, ", ")), Hard: req.Hard, At: t0, Instance: "bgp", Mode: "bgp",
		To: "the other announcing nodes (through the routers)", TakeoverMs: ms(withdrawn),
	}
	if target.IsValid() {
		res.Probe = "tcp " + target.String()
		// Keep probing until a success through the routers after the
		// withdrawal; none within bgpNobodyAfter means nobody serves it.
		deadline := time.NewTimer(bgpNobodyAfter)
		defer deadline.Stop()
		var results []probeResult
		served := false
	collect:
		for {
			select {
			case p := <-probes:
				results = append(results, p)
				if p.ok() && withdrawn > 0 && p.at.After(t0.Add(withdrawn)) {
					served = true
					break collect
				}
			case <-deadline.C:
				break collect
			}
		}
		stopProbe()
		sort.Slice(results, func(i, j int) bool { return results[i].at.Before(results[j].at) })
		res.Probes = len(results)
		res.GapMs, res.Failed = gap(results)
		if !served {
			res.To, res.Resumed = "nobody", true
			b.runner.DrillEnd()
			b.log.Error().Dur("waited", bgpNobodyAfter).Msg("drill: no other node answered through the routers after the withdrawal; announcing again at once")
		}
	} else {
		res.Probe = "none (no frontend binds the VIP)"
	}
	dr.mu.Lock()
	dr.lastDone = &res
	dr.mu.Unlock()
	d.changes.Notify()
	b.log.Info().Str("to", res.To).Float64("gap_ms", res.GapMs).Int("failed_probes", res.Failed).
		Float64("withdrawn_after_ms", res.TakeoverMs).Bool("resumed", res.Resumed).Msg("drill done")
	return res, nil
}

// whyNot says why no VIP is announced, for a refusal.
func whyNot(st bgp.AnnouncerStatus) string {
	var out []string
	for _, v := range st.VIPs {
		out = append(out, fmt.Sprintf("%s %s: %s", v.VIP, v.State, v.Reason))
	}
	return strings.Join(out, "; ")
}

func contains(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}
