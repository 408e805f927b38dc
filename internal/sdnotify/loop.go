package sdnotify

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Loop is what a Type=notify service tells systemd over its life. Run sends
// READY=1 at once, STATUS= whenever the status line changes, WATCHDOG=1
// every Watchdog but only while Status answers within Bound (a wedged
// daemon stops pinging and systemd restarts it), and STOPPING=1 when Stop
// is closed or ctx ends.
type Loop struct {
	// Notifier may be nil: Run then returns at once.
	Notifier *Notifier
	// Status returns the one-line state and doubles as the liveness check:
	// it runs in its own goroutine, at most one call at a time, and the
	// watchdog ping is withheld while a call is outstanding past Bound.
	Status func() string
	// Stopping is the STATUS= line sent with STOPPING=1 when Stop closes;
	// default "stopping".
	Stopping func() string
	// Stop is closed when a graceful shutdown begins; may be nil.
	Stop <-chan struct{}
	// Changed, when set, returns a channel closed at the next state
	// change: STATUS is then sent on changes (the subscription is taken
	// before each look, so no change is missed) instead of polled.
	Changed func() <-chan struct{}
	// Tick is the STATUS poll period without Changed; default 1s.
	Tick time.Duration
	// Watchdog is the WATCHDOG=1 period (WatchdogFromEnv); 0 turns it off.
	Watchdog time.Duration
	// Bound is how long Status may take; default min(2s, Watchdog/2).
	Bound time.Duration
	Log   zerolog.Logger
}

// Run sends the notifications until ctx is done.
func (l Loop) Run(ctx context.Context) {
	n := l.Notifier
	if n == nil {
		return
	}
	tick := l.Tick
	if tick <= 0 {
		tick = time.Second
	}
	bound := l.Bound
	if bound <= 0 {
		bound = 2 * time.Second
		if l.Watchdog > 0 {
			bound = min(bound, l.Watchdog/2)
		}
	}
	stopping := func() string { return "stopping" }
	if l.Stopping != nil {
		stopping = l.Stopping
	}
	probe := newProber(l.Status, bound)
	send := func(err error, what string) {
		if err != nil {
			l.Log.Warn().Err(err).Str("notification", what).Msg("systemd notify failed")
		}
	}

	last := "starting"
	if line, ok := probe.ask(ctx); ok {
		last = line
	}
	send(n.Ready(last), "READY")

	var tickC <-chan time.Time
	if l.Changed == nil {
		t := time.NewTicker(tick)
		defer t.Stop()
		tickC = t.C
	}
	var wdC <-chan time.Time
	if l.Watchdog > 0 {
		wd := time.NewTicker(l.Watchdog)
		defer wd.Stop()
		wdC = wd.C
		send(n.Watchdog(), "WATCHDOG")
	}
	stop := l.Stop
	stopped, wedged := false, false
	for {
		var changed <-chan struct{}
		if l.Changed != nil && !stopped {
			changed = l.Changed()
			if line, ok := probe.ask(ctx); ok && line != last {
				last = line
				send(n.Status(line), "STATUS")
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if !stopped {
				send(n.Stopping("stopping"), "STOPPING")
			}
			return
		case <-stop:
			stop, stopped = nil, true
			send(n.Stopping(stopping()), "STOPPING")
		case <-tickC:
			if stopped {
				continue
			}
			if line, ok := probe.ask(ctx); ok && line != last {
				last = line
				send(n.Status(line), "STATUS")
			}
		case <-wdC:
			if _, ok := probe.ask(ctx); !ok {
				if !wedged {
					l.Log.Error().Dur("bound", bound).Msg("status did not answer in time: withholding the systemd watchdog ping (systemd restarts vipd if this lasts WatchdogSec)")
				}
				wedged = true
				continue
			}
			if wedged {
				l.Log.Info().Msg("status answers again: resuming the systemd watchdog ping")
			}
			wedged = false
			send(n.Watchdog(), "WATCHDOG")
		}
	}
}

// prober calls f in its own goroutine, so that a wedged f cannot wedge the
// loop, with at most one call outstanding.
type prober struct {
	f       func() string
	bound   time.Duration
	results chan string
	pending bool
}

func newProber(f func() string, bound time.Duration) *prober {
	return &prober{f: f, bound: bound, results: make(chan string, 1)}
}

// ask returns f's answer, or false when it did not come within the bound.
func (p *prober) ask(ctx context.Context) (string, bool) {
	if !p.pending {
		p.pending = true
		go func() { p.results <- p.f() }()
	}
	t := time.NewTimer(p.bound)
	defer t.Stop()
	select {
	case s := <-p.results:
		p.pending = false
		return s, true
	case <-t.C:
	case <-ctx.Done():
	}
	return "", false
}
