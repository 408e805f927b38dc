package daemon

import (
	"context"

	"github.com/vipd/vipd/internal/config"
)

// waitHooks lets the hooks of the last transitions (the handover on
// SIGTERM) run before vipd exits, bounded by one hook timeout.
func (d *Daemon) waitHooks() {
	cfg, _ := d.config()
	timeout := config.DefaultNotifyTimeout
	if cfg.Notify != nil && cfg.Notify.Timeout > 0 {
		timeout = cfg.Notify.Timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := d.hooks.Wait(ctx); err != nil {
		d.log.Warn().Msg("exiting with notify hooks still running or waiting")
	}
}
