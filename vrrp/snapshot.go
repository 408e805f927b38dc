package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ErrNoSnapshot is wrapped by every error Snapshot and RestoreMachine
// return: the machine is in no state to hand over (a drill or a stop is
// under way, it has stopped or never started), or the snapshot cannot be
// taken up.
var ErrNoSnapshot = errors.New("vrrp: no snapshot")

// MachineSnapshot is a Machine's state, handed to a new process by a
// hitless restart (vipd's rule, not RFC 9568's: the protocol has no
// notion of a router's process being replaced). Times are wall times: the
// new process has another monotonic clock. It carries what the machine
// knows, not its Config: the new process brings its own (that is how an
// election setting changes without a transition).
type MachineSnapshot struct {
	State          string        `json:"state"`
	Priority       uint8         `json:"priority"` // effective priority
	Fault          bool          `json:"fault,omitempty"`
	FaultReason    string        `json:"fault_reason,omitempty"`
	Ready          bool          `json:"ready"`
	MasterAddr     netip.Addr    `json:"master_addr,omitzero"`
	MasterInterval time.Duration `json:"master_interval"` // Master_Adver_Interval
	// AdverAt is when a MASTER sends its next advert; DownTimer when a
	// BACKUP's Master_Down_Timer runs out.
	AdverAt    time.Time `json:"adver_at,omitzero"`
	DownTimer  time.Time `json:"down_timer,omitzero"`
	DownReason string    `json:"down_reason,omitempty"`
	Gone       bool      `json:"gone,omitempty"`

	HoldUntil      time.Time `json:"hold_until,omitzero"`
	LowerSince     time.Time `json:"lower_since,omitzero"`
	LowerAnnounced time.Time `json:"lower_announced,omitzero"`
	LowerHeard     time.Time `json:"lower_heard,omitzero"`

	EffectFault   string        `json:"effect_fault,omitempty"`
	RetryAt       time.Time     `json:"retry_at,omitzero"`
	RetryBackoff  time.Duration `json:"retry_backoff,omitempty"`
	RemoveRetryAt time.Time     `json:"remove_retry_at,omitzero"`
	RemoveBackoff time.Duration `json:"remove_backoff,omitempty"`
}

// Snapshot returns the machine's state for a hitless restart. It refuses
// (wrapping ErrNoSnapshot) while a handover is under way (the priority-0
// advert went out and the machine waits for a successor: the new process
// could not finish it the same way), once stopped, and in INIT.
func (m *Machine) Snapshot() (MachineSnapshot, error) {
	switch {
	case m.stopped:
		return MachineSnapshot{}, fmt.Errorf("%w: the instance has stopped", ErrNoSnapshot)
	case m.leaving != leaveNone:
		return MachineSnapshot{}, fmt.Errorf("%w: a handover (%s) is under way; try again once it ends", ErrNoSnapshot, m.leaving)
	case m.state == StateInit:
		return MachineSnapshot{}, fmt.Errorf("%w: the instance has not started", ErrNoSnapshot)
	}
	return MachineSnapshot{
		State: m.state.String(), Priority: m.prio, Fault: m.fault, FaultReason: m.faultReason, Ready: m.ready,
		MasterAddr: m.masterAddr, MasterInterval: m.masterInterval,
		AdverAt: wall(m.adverAt), DownTimer: wall(m.downTimer), DownReason: m.downReason, Gone: m.gone,
		HoldUntil: wall(m.holdUntil), LowerSince: wall(m.lowerSince),
		LowerAnnounced: wall(m.lowerAnnounced), LowerHeard: wall(m.lowerHeard),
		EffectFault: m.effectFault, RetryAt: wall(m.retryAt), RetryBackoff: m.retryBackoff,
		RemoveRetryAt: wall(m.removeRetryAt), RemoveBackoff: m.removeBackoff,
	}, nil
}

// wall strips the monotonic reading: a snapshot compares equal after a
// JSON round trip, and the new process reads wall times only.
func wall(t time.Time) time.Time { return t.Round(0) }

// parseState is State.String's inverse.
func parseState(s string) (State, bool) {
	for _, st := range []State{StateInit, StateBackup, StateMaster, StateFault} {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

// RestoreMachine builds a Machine from a snapshot taken by another
// process (or this one), under cfg, which may differ from the config the
// snapshot was taken under. It emits no action and makes no transition:
// the state carries on.
//
// Where cfg changed what the state means, the change applies as far as it
// can without a transition (vipd's rule): a MASTER advertises cfg's
// interval from now on and sends its next advert no later than one new
// interval from now; a BACKUP keeps the interval it adopted from its
// master (RFC 9568 section 6.4.2) and its running Master_Down_Timer;
// preempt and preempt_delay are read as events come; the address owner
// (priority 255) keeps 255, anyone else keeps the effective priority the
// snapshot had, clamped to 1..254, until the trackers say otherwise. A
// deadline already in the past fires at once.
func RestoreMachine(cfg Config, s MachineSnapshot, now time.Time) (*Machine, error) {
	m, err := NewMachine(cfg)
	if err != nil {
		return nil, err
	}
	st, ok := parseState(s.State)
	if !ok || st == StateInit {
		return nil, fmt.Errorf("%w: state %q cannot be taken up", ErrNoSnapshot, s.State)
	}
	m.state = st
	m.prio = min(max(s.Priority, 1), ownerPriority-1)
	if m.owner() {
		m.prio = ownerPriority
	}
	m.fault, m.faultReason, m.ready = s.Fault, s.FaultReason, s.Ready || !cfg.HoldUntilReady
	m.masterAddr, m.masterInterval = s.MasterAddr, s.MasterInterval
	m.downTimer, m.downReason, m.gone = s.DownTimer, s.DownReason, s.Gone
	m.holdUntil, m.lowerSince = s.HoldUntil, s.LowerSince
	m.lowerAnnounced, m.lowerHeard = s.LowerAnnounced, s.LowerHeard
	m.effectFault, m.retryAt, m.retryBackoff = s.EffectFault, s.RetryAt, s.RetryBackoff
	m.removeRetryAt, m.removeBackoff = s.RemoveRetryAt, s.RemoveBackoff
	if m.masterInterval <= 0 {
		m.masterInterval = cfg.AdvertInterval
	}
	switch st {
	case StateMaster:
		m.masterAddr, m.masterInterval = cfg.Addr, cfg.AdvertInterval
		m.downTimer, m.removeRetryAt, m.removeBackoff = time.Time{}, time.Time{}, 0
		m.adverAt = s.AdverAt
		if next := now.Add(cfg.AdvertInterval); m.adverAt.IsZero() || m.adverAt.After(next) {
			m.adverAt = next
		}
	case StateBackup:
		if m.downTimer.IsZero() {
			m.armDown(now)
		}
		m.thaw(now)
	}
	m.rearm()
	return m, nil
}

// thaw is vipd's rule for a BACKUP that read nothing for a while (frozen
// for a restart): the adverts that arrived meanwhile wait on the socket,
// so Master_Down_Timer runs at least one more Master_Adver_Interval, for
// them to be read before it can fire. A master that really failed is
// noticed that much later, once.
func (m *Machine) thaw(now time.Time) {
	if m.state != StateBackup {
		return
	}
	if min := now.Add(m.masterInterval); m.downTimer.Before(min) {
		m.downTimer = min
	}
	m.rearm()
}

// takeUp is a restored machine's first step in its new process (vipd's
// rule): a MASTER advertises at once, and every interval from then. Its
// peers then hear it no later than the handover took, however busy the
// new process's first moments are (adopting a thousand connections); the
// restored deadline would be raced by them.
func (m *Machine) takeUp(now time.Time) []Action {
	if m.state != StateMaster || m.cfg.Solo || m.stopped || m.leaving != leaveNone {
		return nil
	}
	m.adverAt = now.Add(m.cfg.AdvertInterval)
	m.rearm()
	return []Action{{Kind: ActionSendAdvert, Priority: m.prio}}
}
