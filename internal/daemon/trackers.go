package daemon

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/verify"
	"github.com/vipd/vipd/vrrp"
)

// trackers holds every tracker's state and turns it into the effective
// priority with keepalived's weight semantics (vrrp.EffectivePriority).
type trackers struct {
	mu    sync.Mutex
	base  uint8
	list  []*trackerState
	prio  uint8
	fault bool
}

type trackerState struct {
	cfg     config.Track
	healthy bool
	detail  string
}

func newTrackers(cfg *config.Config, node *config.Node) *trackers {
	t := &trackers{base: node.Priority}
	if cfg.VRRP != nil {
		// The VRRP interface itself is always tracked with weight 0, as
		// keepalived does: with its link down a node is FAULT and lets go
		// of the VIP instead of claiming MASTER on a dead port.
		ifname := vrrpInterface(cfg, node)
		t.list = append(t.list, &trackerState{
			cfg:     config.Track{Name: ownLinkTracker(ifname), Type: config.TrackInterface, Interface: ifname},
			healthy: true, detail: "link " + ifname,
		})
	}
	for _, c := range cfg.Tracks {
		// Unknown counts as healthy: until the first result arrives the
		// startup hold keeps a fresh node from preempting anyway.
		t.list = append(t.list, &trackerState{cfg: c, healthy: true, detail: "no result yet"})
	}
	t.prio, t.fault, _ = t.effectiveLocked()
	return t
}

func (t *trackers) effectiveLocked() (uint8, bool, string) {
	states := make([]vrrp.TrackerState, 0, len(t.list))
	for _, s := range t.list {
		states = append(states, vrrp.TrackerState{Name: s.cfg.Name, Weight: s.cfg.Weight, Healthy: s.healthy})
	}
	return vrrp.EffectivePriority(t.base, states)
}

// set records a tracker result and reports whether the effective
// priority or fault changed.
func (t *trackers) set(name string, healthy bool, detail string) (prio uint8, fault bool, reason string, changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.list {
		if s.cfg.Name == name {
			s.healthy, s.detail = healthy, detail
		}
	}
	prio, fault, reason = t.effectiveLocked()
	changed = prio != t.prio || fault != t.fault
	t.prio, t.fault = prio, fault
	return prio, fault, reason, changed
}

func (t *trackers) ofType(typ string) []config.Track {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []config.Track
	for _, s := range t.list {
		if s.cfg.Type == typ {
			out = append(out, s.cfg)
		}
	}
	return out
}

func (t *trackers) status() ([]control.Tracker, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []control.Tracker
	for _, s := range t.list {
		out = append(out, control.Tracker{Name: s.cfg.Name, Type: s.cfg.Type, Weight: s.cfg.Weight, Healthy: s.healthy, Detail: s.detail})
	}
	_, _, reason := t.effectiveLocked()
	return out, reason
}

// setTracker records a result and feeds a changed priority to the runner.
func (d *Daemon) setTracker(ctx context.Context, name string, healthy bool, detail string) {
	prio, fault, reason, changed := d.trk.set(name, healthy, detail)
	if !changed || d.runner == nil {
		return
	}
	d.log.Info().Str("component", "track").Str("tracker", name).Bool("healthy", healthy).Str("detail", detail).
		Int("effective_priority", int(prio)).Bool("fault", fault).Msg("tracker moved the priority: " + reason)
	if err := d.runner.SetPriority(ctx, prio, fault, fmt.Sprintf("tracker %s: %s", name, reason)); err != nil && ctx.Err() == nil {
		d.log.Warn().Err(err).Msg("set priority")
	}
}

// updateBackendTrackers re-evaluates every "backends" tracker from the
// proxy's view of healthy servers.
func (d *Daemon) updateBackendTrackers(ctx context.Context) {
	for _, t := range d.trk.ofType("backends") {
		n := d.proxy.Healthy(t.Frontend)
		ok := n >= t.MinHealthy
		d.setTracker(ctx, t.Name, ok, fmt.Sprintf("%d healthy servers behind %s (need %d)", n, t.Frontend, t.MinHealthy))
	}
}

const (
	serverPrefix = "server/"
	trackPrefix  = "track/"
)

// restartHealth stops the running checks and starts the ones cfg asks for:
// every backend server and every script tracker, on every node (a backup
// takes over warm). Link trackers restart with them.
func (d *Daemon) restartHealth(ctx context.Context, cfg *config.Config) {
	d.stopHealth()
	g := health.NewGroup()
	n := 0
	for _, b := range cfg.Backends {
		if b.Check.Type == "none" {
			continue
		}
		for _, s := range b.Servers {
			spec := verify.CheckSpec(b, s)
			probe, err := health.NewProbe(spec)
			if err != nil {
				d.log.Error().Err(err).Str("backend", b.Name).Str("server", s.Name).Msg("health check cannot start; server keeps its state")
				continue
			}
			g.Add(&health.Checker{
				Name: serverPrefix + b.Name + "/" + s.Name, Probe: probe,
				Interval: b.Check.Interval, Timeout: b.Check.Timeout, Rise: b.Check.Rise, Fall: b.Check.Fall,
			})
			n++
		}
	}
	for _, t := range cfg.Tracks {
		if t.Type != "script" {
			continue
		}
		g.Add(&health.Checker{
			Name: trackPrefix + t.Name, Probe: health.ScriptProbe(t.Command),
			Interval: t.Interval, Timeout: t.Timeout, Rise: t.Rise, Fall: t.Fall,
		})
		n++
	}
	hctx, cancel := context.WithCancel(ctx)
	d.healthMu.Lock()
	d.healthGroup, d.healthCancel = g, cancel
	d.healthMu.Unlock()

	eg, ectx := errgroup.WithContext(hctx)
	eg.Go(func() error { return g.Run(ectx, d.healthEvents) })
	if d.runner != nil {
		for _, t := range cfg.Tracks {
			if t.Type != "interface" {
				continue
			}
			t := t
			eg.Go(func() error {
				err := d.os.WatchLink(ectx, t.Interface, func(up bool) {
					d.setTracker(ectx, t.Name, up, fmt.Sprintf("link %s %s", t.Interface, map[bool]string{true: "up", false: "down"}[up]))
				})
				if err != nil && ectx.Err() == nil {
					d.log.Error().Err(err).Str("tracker", t.Name).Msg("interface tracker stopped")
				}
				return nil
			})
		}
		go func() {
			select {
			case <-g.FirstRoundDone():
				if n > 0 {
					d.log.Info().Msg("health checks completed one round: preemption allowed")
				}
				d.runner.SetReady(hctx)
			case <-hctx.Done():
			}
		}()
	}
	go eg.Wait()
	go d.updateBackendTrackers(ctx)
}

func (d *Daemon) stopHealth() {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	if d.healthCancel != nil {
		d.healthCancel()
		d.healthCancel = nil
	}
}

func (d *Daemon) healthSnapshot() map[string]health.Event {
	d.healthMu.Lock()
	g := d.healthGroup
	d.healthMu.Unlock()
	if g == nil {
		return nil
	}
	return g.Snapshot()
}

// healthLoop consumes check results: servers feed the proxy, scripts feed
// the trackers, and both re-evaluate the "backends" trackers.
func (d *Daemon) healthLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-d.healthEvents:
			d.onHealth(ctx, ev)
		}
	}
}

func (d *Daemon) onHealth(ctx context.Context, ev health.Event) {
	up := ev.Status != health.Down
	switch {
	case len(ev.Name) > len(serverPrefix) && ev.Name[:len(serverPrefix)] == serverPrefix:
		rest := ev.Name[len(serverPrefix):]
		backend, server := splitOnce(rest)
		if ev.Changed {
			d.log.Info().Str("component", "health").Str("backend", backend).Str("server", server).
				Str("status", ev.Status.String()).Str("detail", ev.Result.Detail).Msg("server health changed")
		}
		d.proxy.SetHealth(backend, server, up)
		d.updateBackendTrackers(ctx)
	case len(ev.Name) > len(trackPrefix) && ev.Name[:len(trackPrefix)] == trackPrefix:
		detail := ev.Result.Detail
		if detail == "" {
			detail = ev.Status.String()
		}
		d.setTracker(ctx, ev.Name[len(trackPrefix):], up, detail)
	}
}

func splitOnce(s string) (string, string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func vrrpInterface(cfg *config.Config, node *config.Node) string {
	if node.Interface != "" {
		return node.Interface
	}
	return cfg.VRRP.Interface
}

// ownLinkTracker names the implicit tracker of the VRRP interface.
func ownLinkTracker(ifname string) string { return "link " + ifname }
