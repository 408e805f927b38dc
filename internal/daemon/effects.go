package daemon

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"strconv"
	"time"

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
	for _, p := range (*Daemon)(e).config().Instances[0].VIPs {
		errs = append(errs, e.os.Addrs.AddVIP(e.ifname, p))
	}
	return errors.Join(errs...)
}

// Announce starts a GARP burst and then the periodic refresh, replacing
// any burst still running.
func (e *effects) Announce() {
	d := (*Daemon)(e)
	v := d.config().Instances[0]
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
	for _, p := range d.config().Instances[0].VIPs {
		errs = append(errs, d.os.Addrs.RemoveVIP(d.ifname, p))
	}
	return errors.Join(errs...)
}

func (e *effects) Unlisten()   { e.proxy.Unlisten() }
func (e *effects) CloseConns() { e.proxy.CloseConns() }

// Transition logs one line with the reason and runs the notify hook.
func (e *effects) Transition(from, to vrrp.State, reason string) {
	d := (*Daemon)(e)
	st := d.runner.Status()
	d.log.Info().Str("component", "vrrp").Str("from", from.String()).Str("to", to.String()).
		Int("priority", int(st.EffectivePriority)).Str("reason", reason).
		Msgf("%s -> %s: %s", from, to, reason)
	d.notify(to, st.EffectivePriority)
}

// notify runs the [notify] command with instance, state and priority
// appended, like keepalived's notify script. It never blocks the state
// machine: the command runs in its own goroutine with a timeout.
func (d *Daemon) notify(to vrrp.State, prio uint8) {
	cfg := d.config()
	if cfg.Notify == nil || len(cfg.Notify.Command) == 0 {
		return
	}
	argv := append(append([]string(nil), cfg.Notify.Command...), instanceName(cfg), to.String(), strconv.Itoa(int(prio)))
	timeout := cfg.Notify.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			d.log.Warn().Err(err).Strs("argv", argv).Str("output", tail(out, 512)).Msg("notify command failed")
			return
		}
		d.log.Debug().Strs("argv", argv).Msg("notify command done")
	}()
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
