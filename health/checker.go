package health

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/vipd/vipd/internal/safetext"
)

// Defaults for a [Checker]'s zero fields: HAProxy's inter 2s, timeout 1s,
// rise 2, fall 3.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// jitterFraction spreads probes by ±10% of the interval so that many nodes
// checking the same backends do not probe in lockstep.
const jitterFraction = 0.1

// Event is one probe result as seen by the consumers (proxy, VRRP trackers,
// status). A Checker emits one for every result, changed or not.
type Event struct {
	Name    string
	Status  Status // after this result
	Changed bool   // Status differs from the previous one (Unknown -> Up/Down included)
	Result  Result
	Round   int // 1 for the first result; 0 in a Group snapshot means no result yet
	// Streak is how many consecutive results so far point away from
	// Status (Counter.Streak): with Status it is what a new process
	// needs to carry the check on (Checker.Seed).
	Streak int
}

// Seed is a check's rise/fall state taken over from another process (a
// hitless restart): the counter starts there instead of Unknown, so a
// server UP stays UP without an event that says it changed, and a streak
// towards DOWN keeps counting.
type Seed struct {
	Status Status
	Streak int
}

// Checker runs one Probe on an interval with a timeout, feeds a [Counter] and
// emits an [Event] for every result.
//
// Zero fields take defaults: Interval [DefaultInterval], Timeout
// [DefaultTimeout], Rise [DefaultRise], Fall [DefaultFall], Clock
// [SystemClock], Rand a randomly seeded source. A Checker is not modified by
// Run; one Run at a time per Checker when Rand is set (a *rand.Rand is not
// safe for concurrent use).
type Checker struct {
	Name              string
	Probe             Probe
	Interval, Timeout time.Duration
	Rise, Fall        int
	Clock             Clock
	// Rand drives the jitter. Inject a seeded source for a deterministic
	// schedule.
	Rand *rand.Rand
	// Seed, when its Status is not Unknown, is the counter's state to
	// start from.
	Seed Seed
}

// Validate reports whether Run would refuse the Checker.
func (c *Checker) Validate() error {
	switch {
	case c.Probe == nil:
		return fmt.Errorf("health: check %q: no probe", c.Name)
	case c.Interval < 0 || c.Timeout < 0:
		return fmt.Errorf("health: check %q: negative interval or timeout", c.Name)
	case c.Rise < 0 || c.Fall < 0:
		return fmt.Errorf("health: check %q: negative rise or fall", c.Name)
	}
	return nil
}

// Run probes at once, then every Interval (±10%) measured from the start of
// the previous probe, until ctx is done; it then returns nil. Each probe gets
// a context that expires after Timeout; a probe still running when ctx is
// cancelled is waited for and its result dropped (a shutdown is not a
// failure). Events are sent on out with ctx, so Run never blocks forever on
// a reader that went away; a nil out discards them.
func (c *Checker) Run(ctx context.Context, out chan<- Event) error {
	return c.run(ctx, func(ctx context.Context, ev Event) bool {
		if out == nil {
			return true
		}
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	})
}

// run is Run with the delivery of events abstracted, so that a Group can
// record an event before passing it on.
func (c *Checker) run(ctx context.Context, emit func(context.Context, Event) bool) error {
	if err := c.Validate(); err != nil {
		return err
	}
	interval := orDefault(c.Interval, DefaultInterval)
	timeout := orDefault(c.Timeout, DefaultTimeout)
	clock := c.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	rng := c.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	counter := Counter{Rise: orDefault(c.Rise, DefaultRise), Fall: orDefault(c.Fall, DefaultFall)}
	if c.Seed.Status != Unknown {
		counter.status, counter.streak = c.Seed.Status, max(c.Seed.Streak, 0)
	}

	for round := 1; ; round++ {
		start := clock.Now()
		res := probeOnce(ctx, clock, timeout, c.Probe)
		if ctx.Err() != nil {
			return nil
		}
		var status Status
		var changed bool
		if !res.OK && localExhaustion(res.Err) {
			// vipd itself is out of file descriptors: that says nothing
			// about the server, so the result does not count toward fall
			// (a loaded LB must not mark every healthy server DOWN).
			status = counter.Status()
			res.Detail = "not counted (this host is out of file descriptors): " + res.Detail
		} else {
			status, changed = counter.Observe(res.OK)
		}
		// Arm the next round before emitting, so that whoever receives the
		// event (a test with a fake clock) finds the timer already set.
		wait := start.Add(jitter(interval, rng)).Sub(clock.Now())
		timer := clock.NewTimer(max(wait, 0))
		ev := Event{Name: c.Name, Status: status, Changed: changed, Result: res, Round: round, Streak: counter.Streak()}
		if !emit(ctx, ev) {
			timer.Stop()
			return nil
		}
		select {
		case <-timer.C():
		case <-ctx.Done():
			timer.Stop()
			return nil
		}
	}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// jitter returns d ± 10%.
func jitter(d time.Duration, rng *rand.Rand) time.Duration {
	return d + time.Duration((rng.Float64()*2-1)*jitterFraction*float64(d))
}

// timeoutKey carries the nominal check timeout to the probes, so that their
// "timeout after ..." detail names it even under a fake clock (whose
// contexts are cancelled, not deadlined).
type timeoutKey struct{}

// probeOnce runs p with a context that expires after timeout on clock, and
// normalises the result: At from the clock, Err set exactly when !OK, and a
// timeout always reported as one.
func probeOnce(ctx context.Context, clock Clock, timeout time.Duration, p Probe) Result {
	// The probe starts now: read the clock before arming the timeout, or a
	// fake clock advanced as soon as the timer exists would date the
	// result at its timeout (TestCheckerTimeout under -race).
	at := clock.Now()
	ctx = context.WithValue(ctx, timeoutKey{}, timeout)
	var pctx context.Context
	var cancel func()
	if _, ok := clock.(SystemClock); ok {
		// A real deadline, which sockets also honour directly.
		pctx, cancel = context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	} else {
		var cancelCause context.CancelCauseFunc
		pctx, cancelCause = context.WithCancelCause(ctx)
		t := clock.NewTimer(timeout)
		done := make(chan struct{})
		go func() {
			select {
			case <-t.C():
				cancelCause(ErrTimeout)
			case <-done:
			}
		}()
		cancel = func() {
			t.Stop()
			close(done)
			cancelCause(context.Canceled)
		}
	}
	defer cancel()

	r := p(pctx)
	r.At = at
	// Detail carries text from the server (a body's last line, an x509
	// subject): no control characters reach a terminal or a log.
	r.Detail = safetext.Clean(r.Detail)
	if r.OK {
		r.Err = nil
		return r
	}
	if errors.Is(context.Cause(pctx), ErrTimeout) && !errors.Is(r.Err, ErrTimeout) {
		// A probe that does not say so itself.
		prefix := "timeout after " + timeout.String()
		cause := r.Err
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		r.Err = fmt.Errorf("%w after %v: %w", ErrTimeout, timeout, cause)
		if r.Detail == "" {
			r.Detail = prefix
		} else {
			r.Detail = prefix + ": " + r.Detail
		}
	}
	if r.Err == nil {
		r.Err = errors.New("health: probe failed: " + r.Detail)
	}
	return r
}

// localExhaustion reports whether err is this process or host running out
// of file descriptors, not a verdict on the checked server.
func localExhaustion(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
