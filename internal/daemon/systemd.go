package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/control"
)

// systemd speaks the sd_notify protocol when the daemon runs as a
// Type=notify unit (examples/vipd.service): READY=1 once the control
// socket listens and the runners started, STATUS=<one line> whenever the
// state changes (the node's one change subscription), WATCHDOG=1 every WatchdogSec/2 but
// only while Status() answers within a bound (a wedged daemon stops
// pinging and systemd restarts it), and STOPPING=1 when the shutdown
// begins. Without $NOTIFY_SOCKET it does nothing.
func (d *Daemon) systemd(ctx context.Context) {
	n, err := newSDNotifier()
	if err != nil {
		d.log.Warn().Err(err).Msg("systemd notify socket unusable; not notifying")
		return
	}
	if n == nil {
		return
	}
	wd := watchdogInterval()
	log := d.log.With().Str("component", "systemd").Logger()
	log.Debug().Str("socket", n.addr.Name).Dur("watchdog_ping", wd).Msg("notifying systemd")
	n.loop(ctx, notifyLoop{stop: d.stop, status: d.Status, changes: d.changes.Wait, watchdog: wd, log: log})
}

// sdNotifier sends datagrams to $NOTIFY_SOCKET.
type sdNotifier struct {
	addr *net.UnixAddr
}

// newSDNotifier reads $NOTIFY_SOCKET (and unsets it, with the watchdog
// variables, so that scripts vipd runs do not inherit them). It returns nil
// and no error when the variable is not set. A name starting with '@' is
// an abstract socket: Go's net package maps the '@' to the leading NUL.
func newSDNotifier() (*sdNotifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: want an absolute path or an abstract name starting with @", path)
	}
	return &sdNotifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// notify sends one message ("READY=1", "STATUS=...", several joined by
// newlines). A fresh socket per message, as sd_notify(3) does, keeps
// working across a systemd re-exec.
func (n *sdNotifier) notify(state string) error {
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = c.Write([]byte(state))
	return err
}

// watchdogInterval is how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, or 0 (no watchdog) when it is unset, invalid or meant for
// another process ($WATCHDOG_PID). It unsets both variables.
func watchdogInterval() time.Duration {
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if pid != "" {
		if p, err := strconv.Atoi(pid); err != nil || p != os.Getpid() {
			return 0
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0
	}
	return time.Duration(u) * time.Microsecond / 2
}

// notifyLoop is what the notifier watches.
type notifyLoop struct {
	stop     <-chan struct{}        // closed when the shutdown begins
	status   func() control.Status  // the daemon's Status
	changes  func() <-chan struct{} // closed at the next state change
	watchdog time.Duration          // WATCHDOG=1 period; 0: off
	log      zerolog.Logger
}

// loop sends READY=1 at once, then STATUS on change, WATCHDOG=1 while
// status answers, and STOPPING=1 on stop or ctx end; it returns when ctx
// is done.
func (n *sdNotifier) loop(ctx context.Context, l notifyLoop) {
	// status() runs in its own goroutine so that a wedged daemon cannot
	// wedge the notifier; at most one call is outstanding.
	bound := 2 * time.Second
	if l.watchdog > 0 {
		bound = min(bound, l.watchdog/2)
	}
	results := make(chan control.Status, 1)
	pending := false
	probe := func() (control.Status, bool) {
		if !pending {
			pending = true
			go func() { results <- l.status() }()
		}
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case st := <-results:
			pending = false
			return st, true
		case <-t.C:
			return control.Status{}, false
		case <-ctx.Done():
			return control.Status{}, false
		}
	}
	send := func(msg string) {
		if err := n.notify(msg); err != nil {
			l.log.Warn().Err(err).Str("message", strings.ReplaceAll(msg, "\n", " ")).Msg("systemd notify")
		}
	}

	last := "starting"
	vrrp := true // whether stopping hands a VIP over
	if st, ok := probe(); ok {
		last, vrrp = statusLine(st), len(st.Instances) > 0
	}
	send("READY=1\nSTATUS=" + last)

	var wdC <-chan time.Time
	if l.watchdog > 0 {
		wd := time.NewTicker(l.watchdog)
		defer wd.Stop()
		wdC = wd.C
		send("WATCHDOG=1")
	}
	stop := l.stop
	stopping := false
	wedged := false
	for {
		// Take the subscription first, then look: a change that lands
		// in between is caught by this look or wakes the next wait.
		changed := l.changes()
		if stopping {
			changed = nil
		} else if st, ok := probe(); ok {
			if line := statusLine(st); line != last {
				last = line
				send("STATUS=" + line)
			}
		}
		select {
		case <-ctx.Done():
			if !stopping {
				send("STOPPING=1\nSTATUS=stopping")
			}
			return
		case <-stop:
			stop = nil
			stopping = true
			if vrrp {
				send("STOPPING=1\nSTATUS=stopping: handing the VIP over")
			} else {
				send("STOPPING=1\nSTATUS=stopping")
			}
		case <-changed:
		case <-wdC:
			if _, ok := probe(); !ok {
				if !wedged {
					l.log.Error().Dur("bound", bound).Msg("status did not answer in time: withholding the systemd watchdog ping (systemd restarts vipd if this lasts WatchdogSec)")
				}
				wedged = true
				continue
			}
			if wedged {
				l.log.Info().Msg("status answers again: resuming the systemd watchdog ping")
			}
			wedged = false
			send("WATCHDOG=1")
		}
	}
}

// statusLine is the one-line state systemctl status shows, e.g.
// "MASTER vrid 51, 3/3 servers up" or, with several backends,
// "BACKUP vrid 51 (master 192.168.30.21), kube-apiserver 3/3 up, talos 2/3 up".
func statusLine(st control.Status) string {
	var parts []string
	if len(st.Instances) == 0 {
		parts = append(parts, "single LB")
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
