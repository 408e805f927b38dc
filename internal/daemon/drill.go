package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/vrrp"
)

// Drill hands the VIP to the best backup (priority 0, or a simulated
// crash with Hard), holds back from preempting for req.Hold, probes the
// VIP from here every 10 ms and reports the measured gap beside the gap
// the timers predict.
func (d *Daemon) Drill(ctx context.Context, req control.DrillRequest) (control.DrillResult, error) {
	var res control.DrillResult
	if d.runner == nil {
		return res, fmt.Errorf("%w: single-LB mode has no peer to hand the VIP to", control.ErrRefused)
	}
	if !d.drillMu.TryLock() {
		return res, fmt.Errorf("%w: a drill is already running", control.ErrRefused)
	}
	defer d.drillMu.Unlock()
	cfg := d.config()
	rs := d.runner.Status()
	if rs.State != vrrp.StateMaster {
		who := "unknown"
		if rs.MasterAddr.IsValid() {
			who = rs.MasterAddr.String()
		}
		return res, fmt.Errorf("%w: this node is %s, not MASTER: run the drill on the master (%s); nothing was changed", control.ErrRefused, rs.State, who)
	}
	best, ok := d.peers.bestBackup(time.Now())
	if !ok && !req.Force {
		return res, fmt.Errorf("%w: no healthy backup is known (no fresh status beacon from a BACKUP peer that has completed its checks); nothing was changed. Check `vipd status` on the other nodes, or pass --force to drill anyway", control.ErrRefused)
	}
	if req.Hold <= 0 {
		req.Hold = 10 * time.Second
	}

	// What the timers predict for the client-visible gap: a planned
	// handover is make-before-break (0); a crash costs the backup's
	// Master_Down_Interval.
	interval := cfg.Instances[0].AdvertInterval
	prio := uint8(100)
	if ok {
		prio = uint8(best.EffectivePriority)
	}
	skew := time.Duration(256-int(prio)) * interval / 256
	expected := time.Duration(0)
	if req.Hard {
		expected = 3*interval + skew
	}

	var target netip.AddrPort
	if len(cfg.Frontends) > 0 && len(cfg.Instances[0].VIPs) > 0 {
		target = netip.AddrPortFrom(cfg.Instances[0].VIPs[0].Addr(), cfg.Frontends[0].Port)
	}
	pctx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	probes := make(chan probeResult, 4096)
	if target.IsValid() {
		go probeLoop(pctx, target, probes)
	}

	self := d.node.Address
	t0 := time.Now()
	if err := d.runner.Leave(ctx, req.Hold, req.Hard); err != nil {
		return res, fmt.Errorf("%w: %v", control.ErrRefused, err)
	}
	d.log.Info().Bool("hard", req.Hard).Dur("hold", req.Hold).Msg("drill: handing over the VIP")

	// Wait for the new master's advert, bounded.
	limit := time.Now().Add(3*interval + skew + 5*time.Second)
	var takeover time.Duration
	var newMaster netip.Addr
	for time.Now().Before(limit) {
		s := d.runner.Status()
		if s.State != vrrp.StateMaster && s.MasterAddr.IsValid() && s.MasterAddr != self && !s.LastTransition.Before(t0) {
			if sender, ok := lastHeard(s, s.MasterAddr); ok && sender.After(t0) {
				takeover = sender.Sub(t0)
				newMaster = s.MasterAddr
				break
			}
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	res = control.DrillResult{
		From: fmt.Sprintf("%s (%s)", d.node.Name, self), Hard: req.Hard, At: t0,
		ExpectedMs: ms(expected), TakeoverMs: ms(takeover),
	}
	if !newMaster.IsValid() {
		res.To = "nobody"
		d.log.Error().Msg("drill: no backup took over; this node will take the VIP back when its down timer expires")
	} else {
		res.To = d.peers.name(newMaster)
	}

	if target.IsValid() {
		res.Probe = "tcp " + target.String()
		// Keep probing until a success after the takeover, bounded.
		deadline := time.Now().Add(2 * time.Second)
		var results []probeResult
		for {
			done := false
			select {
			case p := <-probes:
				results = append(results, p)
				if p.ok && newMaster.IsValid() && p.at.After(t0.Add(takeover)) {
					done = true
				}
			case <-time.After(time.Until(deadline)):
				done = true
			}
			if done {
				break
			}
		}
		stopProbe()
		res.Probes = len(results)
		res.GapMs, res.Failed = gap(results)
	} else {
		res.Probe = "none (no frontend): gap is the takeover time"
		if req.Hard {
			res.GapMs = res.TakeoverMs
		}
	}
	d.mu.Lock()
	d.lastDrill = &res
	d.mu.Unlock()
	d.log.Info().Str("to", res.To).Float64("gap_ms", res.GapMs).Float64("expected_ms", res.ExpectedMs).
		Float64("takeover_ms", res.TakeoverMs).Msg("drill done")
	return res, nil
}

func lastHeard(s vrrp.RunnerStatus, a netip.Addr) (time.Time, bool) {
	for _, x := range s.Senders {
		if x.Addr == a {
			return x.LastSeen, true
		}
	}
	return time.Time{}, false
}

type probeResult struct {
	at time.Time
	ok bool
}

// probeLoop connects to target every 10 ms (each attempt bounded by
// 100 ms) until ctx is done.
func probeLoop(ctx context.Context, target netip.AddrPort, out chan<- probeResult) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for n := 0; n < 100000; n++ {
		start := time.Now()
		c, err := (&net.Dialer{Timeout: 100 * time.Millisecond}).DialContext(ctx, "tcp", target.String())
		if c != nil {
			c.Close()
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case out <- probeResult{at: start, ok: err == nil}:
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gap returns the longest client-visible outage in the probe results: from
// the first failed attempt to the next successful one.
func gap(rs []probeResult) (float64, int) {
	var longest time.Duration
	var failStart time.Time
	failed := 0
	for _, r := range rs {
		if !r.ok {
			failed++
			if failStart.IsZero() {
				failStart = r.at
			}
			continue
		}
		if !failStart.IsZero() {
			if g := r.at.Sub(failStart); g > longest {
				longest = g
			}
			failStart = time.Time{}
		}
	}
	if !failStart.IsZero() && len(rs) > 0 {
		if g := rs[len(rs)-1].at.Sub(failStart); g > longest {
			longest = g
		}
	}
	return ms(longest), failed
}
