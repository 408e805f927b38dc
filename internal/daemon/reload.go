package daemon

import (
	"context"
	"fmt"
	"reflect"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/verify"
	"github.com/vipd/vipd/proxy"
)

// Reload re-reads the config file (SIGHUP or `vipd reload`). The whole new
// file is validated first; if anything is wrong the running config stays.
// Proxy changes are applied without dropping established connections and
// health checks restart; election settings cannot change at run time
// (that would be a VRRP flap), so a file that changes them is refused.
func (d *Daemon) Reload(ctx context.Context) (control.ReloadResult, error) {
	var res control.ReloadResult
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	fail := func(err error) (control.ReloadResult, error) {
		d.log.Error().Err(err).Msg("reload failed; the running config is unchanged")
		return res, err
	}
	next, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", control.ErrInvalid, err))
	}
	node, err := next.SelectNode(d.node.Name, "", nil)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", control.ErrInvalid, err))
	}
	if err := verify.Config(next, verify.Options{Warn: func(w string) { d.log.Warn().Msg(w) }}); err != nil {
		return fail(fmt.Errorf("%w: %v", control.ErrInvalid, err))
	}
	prev := d.config()
	if why := electionChange(prev, next, d.node, node); why != "" {
		return fail(fmt.Errorf("%w: %s changed; election settings need a restart of vipd (`systemctl restart vipd`; the peer holds the VIP meanwhile). Nothing was applied", control.ErrRefused, why))
	}
	if err := d.proxy.Update(proxyConfig(next, node)); err != nil {
		return fail(err)
	}
	if !reflect.DeepEqual(prev.Frontends, next.Frontends) {
		res.Applied = append(res.Applied, "frontends")
	}
	if !reflect.DeepEqual(prev.Backends, next.Backends) {
		res.Applied = append(res.Applied, "backends")
	}
	if !reflect.DeepEqual(prev.Tracks, next.Tracks) || prev.Global != next.Global {
		res.Applied = append(res.Applied, "tracks")
	}
	if !reflect.DeepEqual(prev.Notify, next.Notify) {
		res.Applied = append(res.Applied, "notify")
	}
	if d.node.Priority != node.Priority {
		res.Applied = append(res.Applied, "priority")
	}
	if !reflect.DeepEqual(prev.HTTP, next.HTTP) {
		res.Applied = append(res.Applied, "http (takes effect at restart)")
	}
	d.mu.Lock()
	d.cfg, d.node = next, node
	d.mu.Unlock()
	d.trk.reset(next, node)
	d.peers.setNames(next)
	d.restartHealth(d.runCtx, next)
	if d.runner != nil {
		prio, fault, reason := d.trk.current()
		if err := d.runner.SetPriority(ctx, prio, fault, "reload: "+reason); err != nil {
			return res, err
		}
	}
	d.log.Info().Strs("applied", res.Applied).Msg("config reloaded")
	return res, nil
}

// electionChange names the first setting whose change would disturb the
// election, or "" when none changed.
func electionChange(prev, next *config.Config, pn, nn *config.Node) string {
	switch {
	case (prev.VRRP == nil) != (next.VRRP == nil):
		return "[vrrp] presence"
	case prev.VRRP == nil:
		return ""
	}
	a, b := *prev.VRRP, *next.VRRP
	switch {
	case a.VRID != b.VRID:
		return "[vrrp] vrid"
	case a.Interface != b.Interface || pn.Interface != nn.Interface:
		return "[vrrp] interface"
	case !reflect.DeepEqual(a.VIPs, b.VIPs):
		return "[vrrp] vips"
	case a.AdvertInterval != b.AdvertInterval:
		return "[vrrp] advert_interval"
	case a.Unicast != b.Unicast:
		return "[vrrp] unicast"
	case a.Checksum != b.Checksum:
		return "[vrrp] checksum"
	case a.Preempt != b.Preempt || a.PreemptDelay != b.PreemptDelay:
		return "[vrrp] preempt"
	case pn.Address != nn.Address:
		return "this node's address"
	case (pn.Priority == 255) != (nn.Priority == 255):
		return "address-owner priority 255"
	case a.StatusPort != b.StatusPort:
		return "[vrrp] status_port"
	case !reflect.DeepEqual(prev.Nodes, next.Nodes) && a.Unicast:
		return "[[node]] list (unicast peers)"
	}
	return ""
}

func (t *trackers) reset(cfg *config.Config, node *config.Node) {
	fresh := newTrackers(cfg, node)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := map[string]*trackerState{}
	for _, s := range t.list {
		old[s.cfg.Name] = s
	}
	// Keep the last result of trackers that did not change, so a reload
	// does not briefly report them healthy.
	for _, s := range fresh.list {
		if o, ok := old[s.cfg.Name]; ok && reflect.DeepEqual(o.cfg, s.cfg) {
			s.healthy, s.detail = o.healthy, o.detail
		}
	}
	t.base, t.list = fresh.base, fresh.list
	t.prio, t.fault, _ = t.effectiveLocked()
}

func (t *trackers) current() (uint8, bool, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.effectiveLocked()
}

// Server changes a server's administrative state (vipd server drain|maint|ready).
func (d *Daemon) Server(ctx context.Context, req control.ServerRequest) error {
	var a proxy.Admin
	switch req.Action {
	case "drain":
		a = proxy.AdminDrain
	case "maint":
		a = proxy.AdminMaint
	case "ready":
		a = proxy.AdminReady
	default:
		return fmt.Errorf("%w: action %q: want drain, maint or ready", control.ErrInvalid, req.Action)
	}
	if err := d.proxy.SetAdmin(req.Backend, req.Server, a); err != nil {
		return fmt.Errorf("%w: %v", control.ErrNotFound, err)
	}
	d.log.Info().Str("backend", req.Backend).Str("server", req.Server).Str("action", req.Action).Msg("server state changed by operator")
	d.updateBackendTrackers(ctx)
	return nil
}
