package vrrp

import (
	"fmt"
	"time"
)

// Events from outside the protocol: a priority that changed, a master's
// process gone, an effect that failed.

func (m *Machine) priorityChanged(now time.Time, ev PriorityChanged) []Action {
	if !m.owner() {
		// Trackers clamp to 1..254 already; 0 and 255 have protocol meanings
		// a tracker must not reach.
		m.prio = min(max(ev.Priority, 1), ownerPriority-1)
	}
	was := m.fault
	m.fault = ev.Fault
	if ev.Fault {
		m.faultReason = ev.Reason
		if m.faultReason == "" {
			m.faultReason = "tracker failing"
		}
	}
	switch {
	case ev.Fault && !was:
		switch {
		case m.state == StateMaster && m.leaving == leaveNone:
			return m.startLeave(now, leaveFault, 0)
		case m.state == StateBackup:
			return m.to(StateFault, "fault: "+m.faultReason)
		}
	case !ev.Fault && was && m.state == StateFault && m.effectFault == "":
		reason := "fault cleared"
		if ev.Reason != "" {
			reason += ": " + ev.Reason
		}
		return m.enter(now, reason)
	}
	return nil
}

// masterGone is vipd's rule for a master whose process is gone while its
// host lives (MasterGone): a BACKUP following that master sets
// Master_Down_Timer to GoneSkew, as RFC 9568 section 6.4.2 does with
// Skew_Time for a priority-0 advert. An advert from that master
// afterwards (it was alive after all) restarts the timer as any advert
// does. Every other state, and a BACKUP following someone else, ignores
// it; a timer already due sooner is kept.
func (m *Machine) masterGone(now time.Time, ev MasterGone) {
	if m.state != StateBackup || !ev.From.IsValid() || ev.From != m.masterAddr || ev.From == m.cfg.Addr {
		return
	}
	d := GoneSkew(m.cfg.Version, m.prio, m.masterInterval)
	at := now.Add(d)
	if !m.downTimer.IsZero() && !at.Before(m.downTimer) {
		return
	}
	why := ev.Reason
	if why == "" {
		why = "its process is gone"
	}
	m.downTimer, m.gone = at, true
	m.downReason = fmt.Sprintf("master %s's vipd is gone (%s), Skew_Time/4 %v passed", ev.From, why, d)
}

// Backoffs for effects that failed (vipd's rule, not RFC 9568's).
const (
	effectRetryMin = time.Second
	effectRetryMax = 30 * time.Second
)

func nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, effectRetryMin), effectRetryMax)
}

// effectFailed is the defined response to an effect the runner could not
// carry out (vipd's rule). A MASTER that cannot listen or add the VIP must
// not claim it: it tells the backups with priority 0 (they take over after
// Skew_Time), lets go of everything, goes FAULT with the reason, and tries
// again after a backoff. A VIP that could not be removed from a node that
// is not MASTER is removed again after a backoff.
func (m *Machine) effectFailed(now time.Time, ev EffectFailed) []Action {
	switch ev.Kind {
	case ActionListen, ActionAddVIP:
		if m.state != StateMaster {
			return nil
		}
		why := fmt.Sprintf("cannot serve: %s failed: %v", ev.Kind, ev.Err)
		m.retryBackoff = nextBackoff(m.retryBackoff)
		m.retryAt = now.Add(m.retryBackoff)
		m.effectFault = why
		acts := m.leaveMaster(StateFault, why)
		if m.cfg.Solo {
			return acts
		}
		handover := Action{Kind: ActionSendAdvert, Priority: 0, Reason: "handing over: " + why}
		return append(acts[:1], append([]Action{handover}, acts[1:]...)...)
	case ActionRemoveVIP:
		if m.state == StateMaster {
			return nil
		}
		m.removeBackoff = nextBackoff(m.removeBackoff)
		m.removeRetryAt = now.Add(m.removeBackoff)
	}
	return nil
}
