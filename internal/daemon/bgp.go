package daemon

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/bgp"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/safetext"
)

// bgpNode is the node's BGP side: the runner that owns the one speaker,
// its effects, and the health verdicts behind each announced VIP. A node
// runs it beside its VRRP instances (for other VIPs) or alone.
type bgpNode struct {
	log    zerolog.Logger
	cfg    bgp.Config
	vips   []netip.Addr
	runner *bgpRunner
	fx     *bgpEffects
	sp     Speaker

	mu        sync.Mutex // verdicts are computed and posted under it
	ready     bool       // the health checks completed a round
	last      map[netip.Addr]bgpVerdict
	drainTime time.Duration
}

// openBGP builds the BGP side of node, or returns nil when no
// [[bgp.peer]] applies to it (it announces nothing). Nothing touches the
// host or the network until the runner runs.
func (d *Daemon) openBGP(cfg *config.Config, node *config.Node) (*bgpNode, error) {
	if cfg.BGP == nil {
		return nil, nil
	}
	log := d.log.With().Str("component", "bgp").Logger()
	spCfg, attrs, ok := cfg.BGP.Speaker(node.Name, node.Address)
	if !ok {
		log.Info().Msg("no [[bgp.peer]] applies to this node: it announces no [bgp] VIP")
		return nil, nil
	}
	sp, err := d.os.NewSpeaker(spCfg, log)
	if err != nil {
		return nil, err
	}
	b := &bgpNode{log: log, cfg: spCfg, sp: sp, drainTime: cfg.BGP.DrainTime}
	for _, p := range cfg.BGP.VIPs {
		b.vips = append(b.vips, p.Addr())
	}
	m, err := bgp.NewAnnouncer(bgp.AnnouncerConfig{VIPs: b.vips, DrainTime: cfg.BGP.DrainTime})
	if err != nil {
		return nil, err
	}
	b.fx = &bgpEffects{log: log, os: &d.os, px: d.proxy, sp: sp,
		frontends: bgpFrontends(cfg), attrs: attrs, held: map[netip.Addr]bool{}}
	b.runner = newBGPRunner(log, m, sp, b.fx, d.changes.Notify)
	return b, nil
}

// setReady is called once the health checks completed a round: from then
// on the verdicts reach the announcer.
func (b *bgpNode) setReady(d *Daemon) {
	b.mu.Lock()
	b.ready = true
	b.mu.Unlock()
	d.pushBGPVerdicts()
}

// pushBGPVerdicts recomputes every VIP's verdict from the proxy's view of
// healthy servers and hands them to the runner, under one lock so that the
// latest always wins. It is called whenever a server's health or
// administrative state changed, and after a reload.
func (d *Daemon) pushBGPVerdicts() {
	b := d.bgpSide()
	if b == nil {
		return
	}
	cfg, _ := d.config()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ready {
		return
	}
	v := bgpVerdicts(cfg, b.vips, d.proxy.Healthy)
	if maps.Equal(v, b.last) {
		return // every check result lands here; only news goes on
	}
	b.last = v
	b.runner.SetVerdicts(v)
}

// bgpVerdicts is the health gate of each announced VIP: every frontend
// that binds it must have at least min_healthy healthy servers (the
// largest min_healthy of the backends trackers on that frontend, else 1).
// A VIP no frontend binds is never announced: the routers would send
// clients to a port nobody listens on.
func bgpVerdicts(cfg *config.Config, vips []netip.Addr, healthy func(frontend string) int) map[netip.Addr]bgpVerdict {
	servers := map[string]int{}
	for _, be := range cfg.Backends {
		servers[be.Name] = len(be.Servers)
	}
	out := map[netip.Addr]bgpVerdict{}
	for _, v := range vips {
		ok := true
		var parts []string
		for _, f := range cfg.Frontends {
			if fv, bgpf := cfg.BGPVIPOf(f); !bgpf || fv != v {
				continue
			}
			need := 1
			for _, t := range cfg.Tracks {
				if t.Type == config.TrackBackends && t.Frontend == f.Name {
					need = max(need, t.MinHealthy)
				}
			}
			n := healthy(f.Name)
			if n < need {
				ok = false
			}
			parts = append(parts, fmt.Sprintf("%d of %d healthy behind %s (need %d)", n, servers[f.Backend], f.Name, need))
		}
		if len(parts) == 0 {
			out[v] = bgpVerdict{ok: false, reason: fmt.Sprintf("no [[frontend]] has vip = %q", v)}
			continue
		}
		out[v] = bgpVerdict{ok: ok, reason: strings.Join(parts, "; ")}
	}
	return out
}

// reconfigure takes a reloaded config: the frontends of each VIP (an
// announced VIP binds the ones added), the path attributes (announced VIPs
// are sent again when they changed) and the drain time. What needs a
// restart was refused before (config.Changes.Restart).
func (b *bgpNode) reconfigure(cfg *config.Config, node *config.Node) {
	_, attrs, _ := cfg.BGP.Speaker(node.Name, node.Address)
	gained, changed := b.fx.reconfigure(bgpFrontends(cfg), attrs)
	b.mu.Lock()
	b.drainTime = cfg.BGP.DrainTime
	b.mu.Unlock()
	b.runner.Reconfigure(bgp.Reconfigure{DrainTime: cfg.BGP.DrainTime, Reannounce: changed})
	for _, v := range gained {
		b.runner.Relisten(v)
	}
}

func (b *bgpNode) currentDrainTime() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.drainTime
}

// bgpSide is the node's BGP side, or nil (none, or before Run set it up).
func (d *Daemon) bgpSide() *bgpNode {
	if !d.up.Load() {
		return nil
	}
	return d.bgp
}

// bgpStatus is the "bgp" section of the status: the runner's published
// view of each VIP and the speaker's sessions.
func (b *bgpNode) status() *control.BGP {
	ann, _ := b.runner.status()
	sp := b.sp.Status()
	st := &control.BGP{
		ASN: sp.ASN, RouterID: sp.RouterID, Drained: ann.Drained, Stopping: ann.Stopping,
		DrainTimeMs: ms(b.currentDrainTime()), Sessions: []control.BGPSession{}, VIPs: []control.BGPVIP{},
	}
	if ann.Drill {
		st.DrillUntil = ann.DrillUntil
	}
	for _, p := range sp.Peers {
		st.Sessions = append(st.Sessions, control.BGPSession{
			Peer: p.Address, ASN: p.ASN, State: p.State, Since: p.Since,
			UptimeS: p.Uptime.Seconds(), HoldTimeS: p.HoldTime.Seconds(),
			PrefixesSent: p.PrefixesSent, PrefixesReceived: p.PrefixesReceived,
			// The last error can carry the router's NOTIFICATION text.
			Flaps: p.Flaps, LastError: safetext.Clean(p.LastError), BFD: p.BFD,
		})
	}
	prefixes := map[string]bgp.PrefixStatus{}
	for _, p := range sp.Prefixes {
		prefixes[p.Prefix] = p
	}
	for _, v := range ann.VIPs {
		cv := control.BGPVIP{
			VIP: v.VIP.String(), State: v.State, Reason: v.Reason, Since: v.Since,
			WithdrawAt: v.WithdrawAt, RetryAt: v.RetryAt, Frontends: b.fx.frontendsOf(v.VIP), Failures: v.Failures,
		}
		if cv.Frontends == nil {
			cv.Frontends = []string{}
		}
		if p, ok := prefixes[hostPrefix(v.VIP).String()]; ok && v.State != bgp.Withdrawn {
			cv.Peers, cv.MED, cv.Communities = p.Peers, p.MED, p.Communities
		}
		st.VIPs = append(st.VIPs, cv)
	}
	return st
}

// DrainSelf is `vipd drain self`: every VIP this node announces leaves the
// planned way (GRACEFUL_SHUTDOWN for drain_time, then withdrawn) and none
// is announced again until `vipd drain self --undo` (or a restart). It
// answers once every VIP is withdrawn; --undo answers at once.
func (d *Daemon) DrainSelf(ctx context.Context, req control.DrainRequest) (control.DrainResult, error) {
	var res control.DrainResult
	b := d.bgpSide()
	if b == nil {
		return res, fmt.Errorf("%w: this node announces no [bgp] VIP (no [bgp] table, or no [[bgp.peer]] for it); drain self is for BGP mode. For a VRRP master, hand the VIP over with vipd drill failover", control.ErrRefused)
	}
	t0 := time.Now()
	b.runner.SetDrained(!req.Undo)
	d.log.Info().Bool("undo", req.Undo).Msg("drain self requested by the operator")
	limit := time.NewTimer(b.currentDrainTime() + 10*time.Second)
	defer limit.Stop()
	for {
		changed := d.changes.Wait()
		st, _ := b.runner.status()
		done := st.Drained == !req.Undo
		if done && !req.Undo {
			for _, v := range st.VIPs {
				done = done && v.State == bgp.Withdrawn
			}
		}
		if done {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-limit.C:
			return res, fmt.Errorf("the drain did not complete within %v; see vipd status", b.currentDrainTime()+10*time.Second)
		case <-b.runner.Done():
			return res, fmt.Errorf("%w: vipd stopped", control.ErrRefused)
		case <-changed:
		}
	}
	st := b.status()
	res = control.DrainResult{Drained: st.Drained, TookMs: ms(time.Since(t0)), VIPs: st.VIPs}
	return res, nil
}

// announcedVIPs lists the VIPs announced (not draining), sorted.
func announcedVIPs(st bgp.AnnouncerStatus) []netip.Addr {
	var out []netip.Addr
	for _, v := range st.VIPs {
		if v.State == bgp.Announced {
			out = append(out, v.VIP)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
