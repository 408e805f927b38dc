package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Retry backoff for a VIP whose listener, address or announcement failed
// (vipd's rule, the same as a VRRP instance that cannot serve).
const (
	announceRetryMin = time.Second
	announceRetryMax = 30 * time.Second
)

// Announcer decides when each of a node's BGP VIPs is announced, drained
// and withdrawn, and in which order the host effects happen. It is a pure
// value: Step feeds it one event with the current time and returns the
// actions for the runner to carry out, in order; Deadline says when the
// runner must deliver the next TimerFired. It does no I/O, starts no
// goroutines and never reads the clock. One runner goroutine owns it.
//
// A VIP is announced while the node can serve it: the health checks
// behind its frontends passed (BackendsChanged), its listener and address
// could be set up, and no drain, stop or drill holds it back. Leaving is
// of two kinds:
//
//   - planned (operator drain, SIGTERM, a drill): Drain re-announces it
//     with GRACEFUL_SHUTDOWN so routers move new flows to the other nodes
//     while this one still serves, and after DrainTime the VIP is
//     withdrawn and let go of;
//   - at once (the backends failed, an effect failed, a hard stop or hard
//     drill): Withdraw first, then let go of the address and listeners.
type Announcer struct {
	cfg  AnnouncerConfig
	vips []*vipState

	drained  bool
	stopping bool
	stopped  bool
	sessions int

	drill      bool
	drillHard  bool
	drillHold  time.Duration
	drillUntil time.Time // zero while the drill still drains

	armed time.Time
	gen   uint64
}

type vipState struct {
	addr   netip.Addr
	state  string // Announced, Draining or Withdrawn
	reason string
	since  time.Time

	// The backends verdict; known is false until the first one.
	known, ok bool
	backends  string

	withdrawAt time.Time // Draining: when the planned leave ends

	// failure is why the VIP could not be served; it is not announced
	// again before retryAt. backoff doubles on every failure and starts
	// afresh once the VIP served.
	failure  string
	retryAt  time.Time
	backoff  time.Duration
	failures int
}

// ErrNoVIPs is returned by NewAnnouncer for a config without VIPs.
var ErrNoVIPs = errors.New("bgp: announcer: no VIPs")

// NewAnnouncer returns an Announcer with every VIP withdrawn. Send it
// Start.
func NewAnnouncer(cfg AnnouncerConfig) (*Announcer, error) {
	if len(cfg.VIPs) == 0 {
		return nil, ErrNoVIPs
	}
	if cfg.DrainTime < 0 {
		return nil, fmt.Errorf("bgp: announcer: negative drain time %v", cfg.DrainTime)
	}
	a := &Announcer{cfg: cfg}
	seen := map[netip.Addr]bool{}
	for _, v := range cfg.VIPs {
		if !v.IsValid() || seen[v] {
			return nil, fmt.Errorf("bgp: announcer: VIP %v invalid or listed twice", v)
		}
		seen[v] = true
		a.vips = append(a.vips, &vipState{addr: v, state: Withdrawn, reason: waitingForChecks})
	}
	return a, nil
}

// Reasons a VIP is not announced.
const (
	waitingForChecks = "waiting for the first round of health checks"
	reasonDrained    = "drained by the operator (vipd drain self)"
	reasonStopping   = "vipd is stopping"
	reasonNoSession  = "announced, but no BGP session is established: no router has it"
)

// Step feeds one event at time now and returns the actions to carry out,
// in order. After Step the runner re-reads Deadline.
func (a *Announcer) Step(now time.Time, ev AnnouncerEvent) []Action {
	if a.stopped {
		return nil
	}
	if _, failed := ev.(EffectFailed); !failed {
		// An announced VIP whose batch did not fail has served: a later
		// failure starts the backoff afresh.
		for _, v := range a.vips {
			if v.state != Withdrawn && v.failure == "" {
				v.backoff = 0
			}
		}
	}
	var acts []Action
	switch ev := ev.(type) {
	case Start:
		for _, v := range a.vips {
			acts = append(acts, Action{Kind: ActionRemoveVIP, VIP: v.addr, Reason: "start: remove a VIP left behind by a previous run"})
		}
	case BackendsChanged:
		if v := a.vip(ev.VIP); v != nil {
			v.known, v.ok, v.backends = true, ev.OK, ev.Reason
		}
	case OperatorDrain:
		a.drained = ev.On
	case Stop:
		a.stopping = true
	case HardStop:
		for _, v := range a.vips {
			if v.state != Withdrawn {
				acts = append(acts, a.leaveNow(now, v, "hard stop: withdrawn at once")...)
			}
		}
		a.stopping = true
	case Drill:
		acts = a.startDrill(now, ev)
	case DrillEnd:
		a.endDrill()
	case TimerFired:
		if ev.Gen != a.gen {
			return nil // stale
		}
		acts = a.timers(now)
	case Sessions:
		a.sessions = ev.Established
	case EffectFailed:
		acts = a.effectFailed(now, ev)
	case Reconfigure:
		a.cfg.DrainTime = max(ev.DrainTime, 0)
		for _, v := range a.vips {
			if ev.Reannounce && v.state == Announced {
				acts = append(acts, Action{Kind: ActionAnnounce, VIP: v.addr, Reason: "path attributes changed"})
			}
		}
	case Relisten:
		if v := a.vip(ev.VIP); v != nil && v.state != Withdrawn {
			acts = append(acts, Action{Kind: ActionListen, VIP: v.addr, Reason: "frontends changed"})
		}
	}
	acts = append(acts, a.reconcile(now)...)
	if a.drill && a.drillUntil.IsZero() && a.noneDraining() {
		// The drill's withdrawal is complete: its hold starts now.
		a.drillUntil = now.Add(a.drillHold)
	}
	if a.stopping && !a.stopped && a.allWithdrawn() {
		a.stopped = true
		acts = append(acts,
			Action{Kind: ActionStopSpeaker, Reason: "nothing announced: ending the BGP sessions (CEASE)"},
			Action{Kind: ActionStopped, Reason: "stopped"})
	}
	a.rearm()
	return acts
}

// Deadline returns when the runner must deliver TimerFired{Gen: gen}; a
// zero time means no timer is running.
func (a *Announcer) Deadline() (at time.Time, gen uint64) { return a.armed, a.gen }

// Status returns a snapshot.
func (a *Announcer) Status() AnnouncerStatus {
	st := AnnouncerStatus{
		Drained: a.drained, Stopping: a.stopping, Stopped: a.stopped,
		Drill: a.drill, DrillUntil: a.drillUntil, Sessions: a.sessions,
	}
	for _, v := range a.vips {
		vs := VIPStatus{VIP: v.addr, State: v.state, Reason: v.reason, Since: v.since, WithdrawAt: v.withdrawAt, Failures: v.failures}
		if v.state == Withdrawn && v.failure != "" {
			vs.RetryAt = v.retryAt
		}
		if v.state == Announced && a.sessions == 0 {
			vs.Reason = reasonNoSession
		}
		st.VIPs = append(st.VIPs, vs)
	}
	return st
}

func (a *Announcer) vip(addr netip.Addr) *vipState {
	for _, v := range a.vips {
		if v.addr == addr {
			return v
		}
	}
	return nil
}

func (a *Announcer) allWithdrawn() bool {
	for _, v := range a.vips {
		if v.state != Withdrawn {
			return false
		}
	}
	return true
}

// want says whether v should be announced now and, if not, why. planned
// is true when it should leave the planned way (drain first): a drain, a
// stop or a drill. A VIP that cannot be served (its backends failed, an
// effect failed) leaves at once even then.
func (a *Announcer) want(now time.Time, v *vipState) (ok, planned bool, why string) {
	var hard, soft string
	switch {
	case !v.known:
		hard = waitingForChecks
	case !v.ok:
		hard = "backends: " + v.backends
	case v.failure != "" && now.Before(v.retryAt):
		hard = fmt.Sprintf("%s; retrying at %s", v.failure, v.retryAt.Format("15:04:05"))
	}
	planned = true
	switch {
	case a.stopping:
		soft = reasonStopping
	case a.drained:
		soft = reasonDrained
	case a.drill && a.drillUntil.IsZero():
		soft, planned = "drill: withdrawn on purpose", !a.drillHard
	case a.drill:
		soft = fmt.Sprintf("drill: holding back until %s", a.drillUntil.Format("15:04:05"))
	}
	switch {
	case hard != "" && soft != "":
		return false, false, hard + " (and " + soft + ")"
	case hard != "":
		return false, false, hard
	case soft != "":
		return false, planned, soft
	}
	return true, false, ""
}

// reconcile moves every VIP toward what it should be now.
func (a *Announcer) reconcile(now time.Time) []Action {
	var acts []Action
	for _, v := range a.vips {
		ok, planned, why := a.want(now, v)
		switch {
		case ok && v.state == Withdrawn:
			v.failure = ""
			acts = append(acts, a.to(now, v, Announced, a.announceReason(v)))
			acts = append(acts,
				Action{Kind: ActionListen, VIP: v.addr},
				Action{Kind: ActionAddVIP, VIP: v.addr},
				Action{Kind: ActionAnnounce, VIP: v.addr})
		case ok && v.state == Draining:
			// Undrained (or the drill ended) before the withdrawal: the
			// listeners are still there; announce with the node's own
			// attributes again.
			v.withdrawAt = time.Time{}
			acts = append(acts, a.to(now, v, Announced, "serving again: "+a.announceReason(v)))
			acts = append(acts, Action{Kind: ActionAnnounce, VIP: v.addr})
		case ok:
		case v.state == Announced && planned && a.cfg.DrainTime > 0:
			v.withdrawAt = now.Add(a.cfg.DrainTime)
			acts = append(acts, a.to(now, v, Draining, why))
			acts = append(acts, Action{Kind: ActionDrain, VIP: v.addr, Reason: why})
		case v.state == Announced || v.state == Draining && !planned:
			acts = append(acts, a.leaveNow(now, v, why)...)
		case v.state == Draining:
			// Still draining for a planned reason; the reason may have
			// changed (a stop during an operator drain).
			v.reason = why
		default:
			v.reason = why
		}
	}
	return acts
}

func (a *Announcer) announceReason(v *vipState) string {
	if v.backends != "" {
		return "backends: " + v.backends
	}
	return "serving"
}

// to records a state change and returns its transition action.
func (a *Announcer) to(now time.Time, v *vipState, state, reason string) Action {
	from := v.state
	v.state, v.reason, v.since = state, reason, now
	return Action{Kind: ActionTransition, VIP: v.addr, From: from, To: state, Reason: reason}
}

// leaveNow withdraws v at once and lets go of its address, listeners and
// connections, in that order: the routers stop sending before the address
// goes, the address before the listeners, so that no client that still
// reaches this node meets a closed port.
func (a *Announcer) leaveNow(now time.Time, v *vipState, why string) []Action {
	v.withdrawAt = time.Time{}
	return []Action{
		a.to(now, v, Withdrawn, why),
		{Kind: ActionWithdraw, VIP: v.addr, Reason: why},
		{Kind: ActionRemoveVIP, VIP: v.addr},
		{Kind: ActionUnlisten, VIP: v.addr},
		{Kind: ActionCloseConns, VIP: v.addr},
	}
}

// timers handles everything due at now: drains that end, a drill's hold,
// retries (reconcile acts on those).
func (a *Announcer) timers(now time.Time) []Action {
	due := func(t time.Time) bool { return !t.IsZero() && !t.After(now) }
	var acts []Action
	for _, v := range a.vips {
		switch {
		case v.state == Draining && due(v.withdrawAt):
			acts = append(acts, a.leaveNow(now, v, v.reason)...)
		case v.state == Withdrawn && v.failure != "" && due(v.retryAt):
			v.failure, v.retryAt = "", time.Time{} // reconcile tries again
		}
	}
	if a.drill && due(a.drillUntil) {
		a.endDrill()
	}
	return acts
}

func (a *Announcer) noneDraining() bool {
	for _, v := range a.vips {
		if v.state == Draining {
			return false
		}
	}
	return true
}

func (a *Announcer) startDrill(now time.Time, ev Drill) []Action {
	if a.drill || a.stopping || !a.anyAnnounced() {
		return nil
	}
	a.drill, a.drillHard, a.drillHold, a.drillUntil = true, ev.Hard, max(ev.Hold, 0), time.Time{}
	if !ev.Hard && a.cfg.DrainTime > 0 {
		return nil // reconcile drains every announced VIP
	}
	var acts []Action
	for _, v := range a.vips {
		if v.state != Withdrawn {
			acts = append(acts, a.leaveNow(now, v, "drill (hard): withdrawn at once, as a crash or failed backends would")...)
		}
	}
	a.drillUntil = now.Add(a.drillHold)
	return acts
}

func (a *Announcer) endDrill() {
	a.drill, a.drillHard, a.drillHold, a.drillUntil = false, false, 0, time.Time{}
}

// AnyAnnounced reports whether some VIP is announced (not draining): a
// drill needs one.
func (a *Announcer) AnyAnnounced() bool { return a.anyAnnounced() }

func (a *Announcer) anyAnnounced() bool {
	for _, v := range a.vips {
		if v.state == Announced {
			return true
		}
	}
	return false
}

func nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, announceRetryMin), announceRetryMax)
}

// effectFailed: a VIP that cannot be listened on, added or announced must
// not stay half set up: it is let go of and retried after a backoff. A
// Drain the speaker refused cannot be graceful: withdraw at once.
func (a *Announcer) effectFailed(now time.Time, ev EffectFailed) []Action {
	v := a.vip(ev.VIP)
	if v == nil || v.state == Withdrawn {
		return nil
	}
	switch ev.Kind {
	case ActionListen, ActionAddVIP, ActionAnnounce:
		v.failures++
		v.backoff = nextBackoff(v.backoff)
		v.retryAt = now.Add(v.backoff)
		v.failure = fmt.Sprintf("cannot serve: %s failed: %v", ev.Kind, ev.Err)
		return a.leaveNow(now, v, v.failure)
	case ActionDrain:
		v.failures++
		return a.leaveNow(now, v, fmt.Sprintf("%s (drain failed: %v; withdrawn at once)", v.reason, ev.Err))
	}
	return nil
}

// rearm recomputes the one deadline the runner sees.
func (a *Announcer) rearm() {
	var at time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if !a.stopped {
		for _, v := range a.vips {
			switch {
			case v.state == Draining:
				earliest(v.withdrawAt)
			case v.state == Withdrawn && v.failure != "":
				earliest(v.retryAt)
			}
		}
		if a.drill {
			earliest(a.drillUntil)
		}
	}
	if !at.Equal(a.armed) {
		a.armed = at
		a.gen++
	}
}
