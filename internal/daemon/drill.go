package daemon

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/vrrp"
)

// drills runs failover drills, one at a time, and keeps the last result.
type drills struct {
	d       *Daemon
	running sync.Mutex

	mu       sync.Mutex
	lastDone *control.DrillResult
}

func (dr *drills) last() *control.DrillResult {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	return dr.lastDone
}

// Drill hands the VIP of one instance to the best backup (priority 0, or a
// simulated crash with Hard), holds back from preempting for req.Hold,
// probes the VIP from here every 10 ms and reports the measured gap beside
// the gap the timers predict.
func (d *Daemon) Drill(ctx context.Context, req control.DrillRequest) (control.DrillResult, error) {
	return d.drills.run(ctx, req)
}

// pick chooses the instance a drill is for: the one named, else the one
// this node is MASTER of.
func (d *Daemon) pickDrillInstance(name string) (*instance, error) {
	insts := d.vrrpInstances()
	if len(insts) == 0 {
		return nil, fmt.Errorf("%w: single-LB mode has no peer to hand the VIP to", control.ErrRefused)
	}
	if name != "" {
		inst := d.instance(name)
		if inst == nil {
			var names []string
			for _, i := range insts {
				names = append(names, i.name)
			}
			return nil, fmt.Errorf("%w: no instance %q; instances: %s", control.ErrNotFound, name, strings.Join(names, ", "))
		}
		return inst, nil
	}
	if len(insts) == 1 {
		return insts[0], nil
	}
	var masters []*instance
	for _, inst := range insts {
		if inst.runner.Status().State == vrrp.StateMaster {
			masters = append(masters, inst)
		}
	}
	switch len(masters) {
	case 1:
		return masters[0], nil
	case 0:
		hint := ""
		if d.bgpSide() != nil {
			hint = " (to drill this node's BGP announcement, pass --bgp)"
		}
		return nil, fmt.Errorf("%w: this node is MASTER of no instance; run the drill on a master%s; nothing was changed", control.ErrRefused, hint)
	}
	var names []string
	for _, m := range masters {
		names = append(names, m.name)
	}
	return nil, fmt.Errorf("%w: this node is MASTER of %s; name one with --instance; nothing was changed", control.ErrRefused, strings.Join(names, ", "))
}

func (dr *drills) run(ctx context.Context, req control.DrillRequest) (control.DrillResult, error) {
	d := dr.d
	var res control.DrillResult
	if req.BGP || req.Instance == "" && len(d.vrrpInstances()) == 0 && d.bgpSide() != nil {
		return dr.runBGP(ctx, req)
	}
	inst, err := d.pickDrillInstance(req.Instance)
	if err != nil {
		return res, err
	}
	if !dr.running.TryLock() {
		return res, fmt.Errorf("%w: a drill is already running", control.ErrRefused)
	}
	defer dr.running.Unlock()
	cfg, node := d.config()
	rs := inst.runner.Status()
	if rs.State != vrrp.StateMaster {
		who := "unknown"
		if rs.MasterAddr.IsValid() {
			who = d.peers.name(rs.MasterAddr)
		}
		return res, fmt.Errorf("%w: this node is %s of %s, not MASTER: run the drill on the master (%s); nothing was changed", control.ErrRefused, rs.State, inst.name, who)
	}
	_, bestPrio, ok := d.peers.bestBackup(inst.name, inst.cfg.VRID, time.Now())
	if !ok && !req.Force {
		return res, fmt.Errorf("%w: no healthy backup is known (no fresh status beacon from a BACKUP peer that has completed its checks); nothing was changed. Check `vipd status` on the other nodes, or pass --force to drill anyway", control.ErrRefused)
	}
	if req.Hold <= 0 {
		req.Hold = 10 * time.Second
	}

	// What the timers predict for the client-visible gap: a planned
	// handover is make-before-break (0); a crash costs the backup's
	// Master_Down_Interval, computed by the same rule as the machine's.
	prio := uint8(100)
	if ok {
		prio = uint8(bestPrio)
	}
	expected := time.Duration(0)
	if req.Hard {
		expected = vrrp.DownInterval(uint8(inst.cfg.Version), prio, inst.cfg.AdvertInterval)
	}

	var target netip.AddrPort
	for _, f := range cfg.Frontends {
		if cfg.InstanceOf(f) != nil && cfg.InstanceOf(f).Name == inst.name {
			if binds := cfg.Binds(f); len(binds) > 0 {
				target = binds[0]
				break
			}
		}
	}
	pctx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	probes := make(chan probeResult, 4096)
	if target.IsValid() {
		go probeLoop(pctx, d.os.Probe, d.answeredBy(inst, target.Addr()), target, probes)
		// A little of the steady state before the fault, for the timeline.
		select {
		case <-time.After(drillLeadIn):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}

	t0 := time.Now()
	if err := inst.runner.Leave(ctx, req.Hold, req.Hard); err != nil {
		return res, fmt.Errorf("%w: %v", control.ErrRefused, err)
	}
	inst.log.Info().Bool("hard", req.Hard).Dur("hold", req.Hold).Msg("drill: handing over the VIP")

	// Wait, on state changes, for the new master's advert, or for this
	// node to resume (nobody took over), bounded.
	down := vrrp.DownInterval(uint8(inst.cfg.Version), prio, inst.cfg.AdvertInterval)
	limit := time.NewTimer(2*down + 5*time.Second)
	defer limit.Stop()
	var takeover time.Duration
	var newMaster netip.Addr
	resumed := false
wait:
	for {
		changed := d.changes.Wait()
		s := inst.runner.Status()
		switch {
		case s.State != vrrp.StateMaster && s.MasterAddr.IsValid() && s.MasterAddr != inst.src && !s.LastTransition.Before(t0):
			if sender, ok := lastHeard(s, s.MasterAddr); ok && sender.After(t0) {
				takeover = sender.Sub(t0)
				newMaster = s.MasterAddr
				break wait
			}
		case s.State == vrrp.StateMaster && !s.Leaving && !req.Hard:
			// Still MASTER and no longer handing over: nobody answered
			// within Down_Interval and the machine resumed.
			resumed = true
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
	res = control.DrillResult{
		From: fmt.Sprintf("%s (%s)", node.Name, inst.src), Hard: req.Hard, At: t0, Instance: inst.name,
		ExpectedMs: ms(expected), TakeoverMs: ms(takeover), Resumed: resumed,
	}
	switch {
	case newMaster.IsValid():
		res.To = d.peers.name(newMaster)
	case resumed:
		res.To = "nobody"
		inst.log.Error().Msg("drill: no backup took over within Down_Interval; this node resumed as MASTER without dropping the VIP")
	default:
		res.To = "nobody"
		inst.log.Error().Msg("drill: no backup took over; this node takes the VIP back when its down timer expires")
	}

	if target.IsValid() {
		res.Probe = "tcp " + target.String()
		// Keep probing until a success after the takeover, bounded.
		deadline := time.NewTimer(2 * time.Second)
		defer deadline.Stop()
		var results []probeResult
		// After the first success, attempts still in flight (a timeout
		// takes 100 ms) get the time to report.
		var tail <-chan time.Time
	collect:
		for {
			select {
			case p := <-probes:
				results = append(results, p)
				if tail == nil && p.ok() && (resumed || newMaster.IsValid() && p.at.After(t0.Add(takeover))) {
					tail = time.After(probeTimeout + 20*time.Millisecond)
				}
			case <-tail:
				break collect
			case <-deadline.C:
				break collect
			}
		}
		stopProbe()
		sort.Slice(results, func(i, j int) bool { return results[i].at.Before(results[j].at) })
		res.Probes = len(results)
		res.GapMs, res.Failed = gap(results)
		res.Samples = samplesOf(results, t0)
	} else {
		res.Probe = "none (no frontend): gap is the takeover time"
		if req.Hard {
			res.GapMs = res.TakeoverMs
		}
	}
	res.Marks = d.drillMarks(inst, node.Name, t0, res, newMaster)
	dr.mu.Lock()
	dr.lastDone = &res
	dr.mu.Unlock()
	d.changes.Notify()
	inst.log.Info().Str("to", res.To).Float64("gap_ms", res.GapMs).Float64("expected_ms", res.ExpectedMs).
		Float64("takeover_ms", res.TakeoverMs).Bool("resumed", resumed).Msg("drill done")
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
	at     time.Time
	result string // "ok", "refused", "timeout", "error"
	by     string // who answered
}

func (p probeResult) ok() bool { return p.result == "ok" }

// drillLeadIn is how long a drill probes before the fault; probeTimeout
// bounds one attempt (OS.Probe).
const (
	drillLeadIn  = 100 * time.Millisecond
	probeTimeout = 100 * time.Millisecond
)

// probeLoop starts a connect to target every 10 ms (each bounded by
// 100 ms, at most 16 at a time, so a timeout does not hide the attempts
// after it) until ctx is done, and notes who answered each attempt.
// Results arrive in completion order.
func probeLoop(ctx context.Context, probe func(context.Context, netip.AddrPort) error, by func() string, target netip.AddrPort, out chan<- probeResult) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	slots := make(chan struct{}, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	for n := 0; n < 100000; n++ {
		select {
		case slots <- struct{}{}:
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				start := time.Now()
				err := probe(ctx, target)
				if ctx.Err() != nil {
					return
				}
				r := probeResult{at: start, result: probeOutcome(err)}
				if r.result == "ok" || r.result == "refused" {
					r.by = by()
				}
				select {
				case out <- r:
				default:
				}
			}()
		default: // every slot waits on a timeout: skip this tick
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func probeOutcome(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(err.Error(), "connection refused"):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}

// answeredBy names the host a probe of addr reaches: this node while it
// holds the VIP, else the node whose MAC the neighbour table maps the VIP
// to (or that MAC, when no node claims it).
func (d *Daemon) answeredBy(inst *instance, addr netip.Addr) func() string {
	cfg, node := d.config()
	var vip netip.Prefix
	for _, p := range inst.cfg.VIPs {
		if p.Addr() == addr {
			vip = p
		}
	}
	var mu sync.Mutex
	macs := map[string]string{} // filled as needed: peers' neighbour entries
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		if has, err := d.os.Addrs.HasVIP(inst.ifname, vip); err == nil && has {
			return node.Name
		}
		mac := d.os.NeighMAC(inst.ifname, addr)
		if mac == "" {
			return ""
		}
		if n, ok := macs[mac]; ok {
			return n
		}
		for _, n := range cfg.Nodes {
			if n.Name != node.Name && d.os.NeighMAC(inst.ifname, n.Address) == mac {
				macs[mac] = n.Name
				return n.Name
			}
		}
		return mac
	}
}

func samplesOf(rs []probeResult, t0 time.Time) []control.DrillSample {
	out := make([]control.DrillSample, 0, len(rs))
	for _, r := range rs {
		out = append(out, control.DrillSample{TMs: round3(ms(r.at.Sub(t0))), Result: r.result, Node: r.by})
	}
	return out
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// drillMarks are the drill's events in time order: the fault, this node's
// transitions, the new master heard, the new master's own transition (on
// its clock, from its beacon), and the first success after the takeover.
func (d *Daemon) drillMarks(inst *instance, self string, t0 time.Time, res control.DrillResult, newMaster netip.Addr) []control.DrillMark {
	what := "fault: priority 0 (planned handover)"
	if res.Hard {
		what = "fault: hard leave (crash rehearsal)"
	}
	marks := []control.DrillMark{{TMs: 0, Node: self, What: what}}
	for _, t := range inst.runner.Status().Recent {
		if !t.At.Before(t0) {
			marks = append(marks, control.DrillMark{TMs: round3(ms(t.At.Sub(t0))), Node: self, What: t.From.String() + " → " + t.To.String()})
		}
	}
	if newMaster.IsValid() {
		name := d.peers.name(newMaster)
		marks = append(marks, control.DrillMark{TMs: res.TakeoverMs, Node: name, What: "new master heard"})
		// Its beacon goes out at once on the change; give it a moment.
		for i := 0; i < 20; i++ {
			if at, state := d.peers.since(newMaster, inst.name, inst.cfg.VRID); state == vrrp.StateMaster.String() && !at.Before(t0.Add(-time.Second)) {
				marks = append(marks, control.DrillMark{TMs: round3(ms(at.Sub(t0))), Node: name, What: "BACKUP → MASTER (its clock)"})
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	after := 0.0
	if newMaster.IsValid() {
		after = res.TakeoverMs
	}
	for _, sm := range res.Samples {
		if sm.Result == "ok" && sm.TMs >= after && sm.TMs >= 0 {
			marks = append(marks, control.DrillMark{TMs: sm.TMs, Node: sm.Node, What: "first success"})
			break
		}
	}
	sort.SliceStable(marks, func(i, j int) bool { return marks[i].TMs < marks[j].TMs })
	return marks
}

// gap returns the longest client-visible outage in the probe results: from
// the first failed attempt to the next successful one.
func gap(rs []probeResult) (float64, int) {
	var longest time.Duration
	var failStart time.Time
	failed := 0
	for _, r := range rs {
		if !r.ok() {
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
