package daemon

import (
	"context"
	"fmt"
	"strings"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/sdnotify"
)

// systemd speaks the sd_notify protocol when the daemon runs as a
// Type=notify unit (examples/vipd.service), through internal/sdnotify:
// READY=1 once the control socket listens and the runner started,
// STATUS=<one line> whenever the state changes (the node's one change
// subscription, no polling),
// WATCHDOG=1 every WatchdogSec/2 but only while Status() answers within a
// bound (a wedged daemon stops pinging and systemd restarts it), and
// STOPPING=1 when the shutdown begins. Without $NOTIFY_SOCKET it does
// nothing.
func (d *Daemon) systemd(ctx context.Context) {
	n, err := sdnotify.FromEnv()
	if err != nil {
		d.log.Warn().Err(err).Msg("systemd notify socket unusable; not notifying")
		return
	}
	if n == nil {
		return
	}
	defer n.Close()
	wd := sdnotify.WatchdogFromEnv()
	log := d.log.With().Str("component", "systemd").Logger()
	log.Debug().Str("socket", n.Addr()).Dur("watchdog_ping", wd).Msg("notifying systemd")
	sdnotify.Loop{
		Notifier: n, Status: func() string { return statusLine(d.Status()) },
		Stopping: func() string {
			if len(d.vrrpInstances()) > 0 {
				return "stopping: handing the VIP over"
			}
			return "stopping"
		},
		Changed: d.changes.Wait,
		Stop:    d.stop, Watchdog: wd, Log: log,
	}.Run(ctx)
}

// statusLine is the one-line state systemctl status shows, e.g.
// "MASTER vrid 51, 3/3 servers up" or, with several backends,
// "BACKUP vrid 51 (master 192.168.30.21), kube-apiserver 3/3 up, talos 2/3 up".
func statusLine(st control.Status) string {
	var parts []string
	if len(st.Instances) == 0 && st.BGP == nil {
		parts = append(parts, "single LB")
	}
	if b := st.BGP; b != nil {
		parts = append(parts, bgpStatusLine(b))
	}
	for _, in := range st.Instances {
		s := fmt.Sprintf("%s vrid %d", in.State, in.VRID)
		if in.EffectivePriority != in.Priority {
			s += fmt.Sprintf(" (priority %d of %d)", in.EffectivePriority, in.Priority)
		}
		if in.State != "MASTER" && in.MasterAddr != "" {
			s += fmt.Sprintf(" (master %s)", in.MasterAddr)
		}
		parts = append(parts, s)
	}
	up := func(b control.Backend) int {
		n := 0
		for _, s := range b.Servers {
			if s.State == "UP" {
				n++
			}
		}
		return n
	}
	switch len(st.Backends) {
	case 0:
	case 1:
		b := st.Backends[0]
		parts = append(parts, fmt.Sprintf("%d/%d servers up", up(b), len(b.Servers)))
	default:
		for _, b := range st.Backends {
			parts = append(parts, fmt.Sprintf("%s %d/%d up", b.Name, up(b), len(b.Servers)))
		}
	}
	return strings.Join(parts, ", ")
}
