package daemon

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/vipd/vipd/internal/hooks"
	"github.com/vipd/vipd/vrrp"
)

// effects is the Daemon seen as vrrp.Effects: the host side of each
// machine action.
type effects Daemon

var _ vrrp.Effects = (*effects)(nil)

func (e *effects) Listen() error { return e.proxy.Listen() }

func (e *effects) AddVIP() error {
	e.vipWanted.Store(true)
	var errs []error
	for _, p := range (*Daemon)(e).config().VRRP.VIPs {
		errs = append(errs, e.os.Addrs.AddVIP(e.ifname, p))
	}
	return errors.Join(errs...)
}

// Announce starts a GARP burst and then the periodic refresh, replacing
// any burst still running.
func (e *effects) Announce() {
	d := (*Daemon)(e)
	v := d.config().VRRP
	var vips []netip.Addr
	for _, p := range v.VIPs {
		vips = append(vips, p.Addr())
	}
	d.announceMu.Lock()
	if d.announceCancel != nil {
		d.announceCancel()
	}
	parent := d.runCtx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	d.announceCancel = cancel
	d.announceMu.Unlock()

	go func() {
		if err := d.os.Burst(ctx, d.ann, vips, v.GARPRepeat, v.GARPInterval); err != nil && ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("gratuitous ARP burst")
		}
		if v.GARPRefresh <= 0 {
			return
		}
		t := time.NewTicker(v.GARPRefresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, ip := range vips {
					if err := d.ann.Announce(ip); err != nil {
						d.log.Warn().Err(err).Msg("gratuitous ARP refresh")
					}
				}
			}
		}
	}()
}

func (e *effects) RemoveVIP() error {
	d := (*Daemon)(e)
	d.vipWanted.Store(false)
	d.stopAnnounce()
	var errs []error
	for _, p := range d.config().VRRP.VIPs {
		errs = append(errs, d.os.Addrs.RemoveVIP(d.ifname, p))
	}
	return errors.Join(errs...)
}

func (e *effects) Unlisten()   { e.proxy.Unlisten() }
func (e *effects) CloseConns() { e.proxy.CloseConns() }

// Transition logs one line with the reason and queues the notify hook
// (internal/hooks: in order, bounded, never blocking the state machine).
func (e *effects) Transition(from, to vrrp.State, reason string) {
	d := (*Daemon)(e)
	st := d.runner.Status()
	d.log.Info().Str("component", "vrrp").Str("from", from.String()).Str("to", to.String()).
		Int("priority", int(st.EffectivePriority)).Str("reason", reason).
		Msgf("%s -> %s: %s", from, to, reason)
	cfg := d.config()
	d.hooks.Deliver(cfg.Notify, hooks.Transition{Instance: instanceName(cfg), From: from.String(), To: to.String(), Priority: int(st.EffectivePriority), At: time.Now()})
}
