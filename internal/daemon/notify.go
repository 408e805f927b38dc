package daemon

import (
	"context"
	"os/exec"
	"strconv"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/vrrp"
)

// notify runs the [notify] command with instance, state and priority
// appended, like keepalived's notify script. It never blocks the state
// machine: the command runs in its own goroutine with a timeout.
func (d *Daemon) notify(instance string, to vrrp.State, prio uint8) {
	cfg, _ := d.config()
	if cfg.Notify == nil || len(cfg.Notify.Command) == 0 {
		return
	}
	argv := append(append([]string(nil), cfg.Notify.Command...), instance, to.String(), strconv.Itoa(int(prio)))
	timeout := cfg.Notify.Timeout
	if timeout <= 0 {
		timeout = config.DefaultNotifyTimeout
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
