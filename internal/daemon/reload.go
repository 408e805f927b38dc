package daemon

import (
	"context"
	"fmt"
	"strings"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/verify"
	"github.com/vipd/vipd/proxy"
)

// Reload re-reads the config file (SIGHUP or `vipd reload`). The whole new
// file is validated and every health check built first; if anything is
// wrong, or a change needs a restart (config.Changes.Restart decides, in
// one place), the running config stays and nothing is applied. Otherwise
// only the differences are applied: the proxy without dropping an
// established connection, only the checks that changed restart, trackers
// keep their verdicts (a changed one until its new check reports), and the
// new priorities reach the runners like a tracker's would — no VRRP flap.
func (d *Daemon) Reload(ctx context.Context) (control.ReloadResult, error) {
	var res control.ReloadResult
	if d.restarting.Load() {
		return res, errRestartBusy
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	fail := func(err error) (control.ReloadResult, error) {
		d.log.Error().Err(err).Msg("reload failed; the running config is unchanged")
		return res, err
	}
	prev, prevNode := d.config()
	next, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", control.ErrInvalid, err))
	}
	node, err := next.SelectNode(prevNode.Name, "", nil)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", control.ErrInvalid, err))
	}
	if err := verify.Config(next, verify.Options{Warn: func(w string) { d.log.Warn().Msg(w) }}); err != nil {
		return fail(fmt.Errorf("%w: %v", control.ErrInvalid, err))
	}
	ch := next.Diff(prev)
	if why := ch.Restart(node.Name); len(why) > 0 {
		return fail(fmt.Errorf("%w: %s changed; these settings need a restart of vipd (`systemctl restart vipd`: the peer holds the VIP meanwhile). Nothing was applied",
			control.ErrRefused, strings.Join(why, ", ")))
	}
	checks, err := plan(next)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", control.ErrInvalid, err))
	}
	if err := d.proxy.Update(proxyConfig(next)); err != nil {
		return fail(err)
	}
	d.cur.Store(&running{cfg: next, node: node})
	for _, inst := range d.insts {
		var in *config.Instance
		if !inst.solo {
			in = next.Instance(inst.name)
		}
		if inst.fx.reconfigure(frontendsOf(next, in), garpOf(in)) {
			inst.runner.Relisten()
		}
	}
	if b := d.bgpSide(); b != nil && next.BGP != nil {
		b.reconfigure(next, node)
	}
	d.trk.reset(next, node)
	d.health.apply(checks)
	d.links.apply(next)
	go d.health.updateBackendTrackers()
	d.peers.setNames(next)
	res.Applied = applied(ch)
	d.changes.Notify()
	d.log.Info().Strs("applied", res.Applied).Msg("config reloaded")
	return res, nil
}

// applied names what a reload changed, for the operator.
func applied(ch config.Changes) []string {
	var out []string
	add := func(what string, n config.Named) {
		if !n.Empty() {
			out = append(out, what)
		}
	}
	add("frontends", ch.Frontends)
	add("backends", ch.Backends)
	add("tracks", ch.Tracks)
	add("nodes (priority)", ch.Nodes)
	for _, name := range ch.Instances.Changed {
		out = append(out, fmt.Sprintf("instance %s (%s)", name, strings.Join(ch.InstanceKeys[name], ", ")))
	}
	if len(ch.BGP) > 0 {
		out = append(out, fmt.Sprintf("bgp (%s)", strings.Join(ch.BGP, ", ")))
	}
	if ch.Global {
		out = append(out, "global")
	}
	if ch.Notify {
		out = append(out, "notify")
	}
	if ch.Log {
		out = append(out, "log (takes effect at restart)")
	}
	if ch.HTTP {
		out = append(out, "http (takes effect at restart)")
	}
	if ch.Control {
		out = append(out, "control (takes effect at restart)")
	}
	return out
}

// Server changes a server's administrative state (vipd server drain|maint|ready).
func (d *Daemon) Server(ctx context.Context, req control.ServerRequest) error {
	if d.restarting.Load() {
		return errRestartBusy
	}
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
	d.health.updateBackendTrackers()
	d.changes.Notify()
	return nil
}
