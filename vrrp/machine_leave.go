package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// Leaving MASTER on purpose: make before break (DESIGN.md section 4), a
// shutdown at any moment, a hard stop.

// startLeave is the make half of make-before-break (DESIGN.md section 4):
// tell the backups with priority 0, keep serving until one takes over.
func (m *Machine) startLeave(now time.Time, kind leaveKind, hold time.Duration) []Action {
	m.leaving, m.leaveHold = kind, hold
	m.leaveAt = now.Add(m.downFor(m.prio, m.cfg.AdvertInterval))
	m.adverAt = time.Time{}
	return []Action{{Kind: ActionSendAdvert, Priority: 0, Reason: kind.String() + ": handing over"}}
}

// finishLeave is the break half: a successor was heard (adv != nil) or
// Down_Interval passed without one.
func (m *Machine) finishLeave(now time.Time, reason string, adv *AdvertReceived) []Action {
	kind, hold := m.leaving, m.leaveHold
	switch {
	case kind == leaveShutdown:
		acts := m.leaveMaster(StateInit, reason)
		m.stopped = true
		return append(acts, Action{Kind: ActionStopped, Reason: "shutdown"})
	case m.fault:
		return m.leaveMaster(StateFault, reason)
	case kind == leaveDrill && adv == nil:
		// Nobody took over: dropping the VIP now would leave it unserved
		// for a Down_Interval before we take it back. Resume at once.
		m.leaving, m.leaveAt, m.leaveHold = leaveNone, time.Time{}, 0
		m.adverAt = now.Add(m.cfg.AdvertInterval)
		return []Action{{Kind: ActionSendAdvert, Priority: m.prio,
			Reason: "leave: no backup took over within Down_Interval; resuming as MASTER"}}
	}
	acts := m.leaveMaster(StateBackup, reason)
	if adv != nil {
		m.accept(now, *adv)
	} else {
		m.armDown(now)
	}
	if kind == leaveDrill {
		m.holdUntil = now.Add(hold)
	}
	return acts
}

func (m *Machine) leave(now time.Time, ev Leave) []Action {
	if m.state != StateMaster || m.leaving != leaveNone {
		return nil
	}
	hold := max(ev.Hold, 0)
	if !ev.Hard {
		return m.startLeave(now, leaveDrill, hold)
	}
	acts := m.leaveMaster(StateBackup, "leave (hard): crash rehearsal, no priority-0 advert")
	// The backups take over after at most 3*interval+Skew_Time < 4*interval
	// (they have our interval). Our own Master_Down_Interval is the shortest
	// of all (highest priority), so wait twice it before taking back a VIP
	// that nobody claimed.
	m.masterAddr = netip.Addr{}
	d := 2 * m.down()
	m.downTimer = now.Add(d)
	m.downReason = fmt.Sprintf("no master took over within %v of a hard leave", d)
	m.holdUntil = now.Add(hold)
	return acts
}

func (m *Machine) shutdown(now time.Time) []Action {
	switch {
	case m.state == StateMaster && m.cfg.Solo:
		acts := m.leaveMaster(StateInit, "shutdown")
		m.stopped = true
		return append(acts, Action{Kind: ActionStopped, Reason: "shutdown"})
	}
	switch m.state {
	case StateMaster:
		if m.leaving != leaveNone {
			m.leaving = leaveShutdown // already sent priority 0; now end in INIT
			return nil
		}
		return m.startLeave(now, leaveShutdown, 0)
	case StateInit:
		m.stopped = true
		return []Action{{Kind: ActionStopped, Reason: "shutdown"}}
	}
	acts := m.to(StateInit, "shutdown")
	m.stopped = true
	return append(acts, Action{Kind: ActionStopped, Reason: "shutdown"})
}

// hardStop lets go of everything at once, with no priority-0 advert.
func (m *Machine) hardStop() []Action {
	var acts []Action
	switch m.state {
	case StateMaster:
		acts = m.leaveMaster(StateInit, "hard stop: no handover")
	case StateInit:
	default:
		acts = m.to(StateInit, "hard stop")
	}
	m.stopped = true
	return append(acts, Action{Kind: ActionStopped, Reason: "hard stop"})
}
