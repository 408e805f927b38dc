package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ErrInvalidConfig is wrapped by every error NewMachine returns.
var ErrInvalidConfig = errors.New("invalid instance config")

// Advertisement interval bounds: the packet field is 12 bits of centiseconds
// (RFC 9568 section 5.2.7).
const (
	machineMinInterval = 10 * time.Millisecond
	machineMaxInterval = 4095 * 10 * time.Millisecond
)

// ownerPriority is the priority of the address owner (RFC 9568 section 5.2.4).
const ownerPriority = 255

// leaveKind says why a MASTER is handing over, which decides where it ends.
type leaveKind uint8

const (
	leaveNone     leaveKind = iota
	leaveDrill              // Leave{Hard: false}: ends in BACKUP, then holds
	leaveFault              // a weight-0 tracker failed: ends in FAULT
	leaveShutdown           // Shutdown: ends in INIT, then ActionStopped
)

func (k leaveKind) String() string {
	switch k {
	case leaveDrill:
		return "leave"
	case leaveFault:
		return "fault"
	case leaveShutdown:
		return "shutdown"
	}
	return "none"
}

// Machine is the RFC 9568 section 6 state machine of one virtual router
// instance. It is a pure value: Step feeds it one event with the current
// time and returns the effects for the runner to carry out, in order;
// Deadline says when the runner must deliver the next TimerFired. It does
// no I/O, starts no goroutines and never reads the clock. It is not safe
// for concurrent use: one runner goroutine owns it.
type Machine struct {
	cfg Config

	state       State
	prio        uint8 // effective priority
	fault       bool
	faultReason string
	ready       bool
	stopped     bool

	masterAddr     netip.Addr
	masterInterval time.Duration // Master_Adver_Interval

	adverAt    time.Time // Adver_Timer (MASTER, not leaving)
	downTimer  time.Time // Master_Down_Timer (BACKUP)
	downReason string    // what the Transition says when downAt fires
	// gone is set while Master_Down_Timer runs on GoneSkew after a
	// MasterGone; a priority-0 advert then never moves it later.
	gone bool

	leaving   leaveKind
	leaveAt   time.Time // give up waiting for a successor
	leaveHold time.Duration

	holdUntil  time.Time // after a Leave: no preemption before this
	lowerSince time.Time // preempt_delay: lower-priority master first heard

	lowerAnnounced time.Time // last re-announcement over a lower priority
	lowerHeard     time.Time // last lower priority advert heard as MASTER

	// effectFault is why the node could not serve as MASTER; it stays
	// FAULT until retryAt. retryBackoff doubles on every failure and is
	// reset once a MASTER sends its first periodic advert.
	effectFault  string
	retryAt      time.Time
	retryBackoff time.Duration
	// removeRetryAt retries a failed VIP removal on a node that is not
	// MASTER, with removeBackoff doubling.
	removeRetryAt time.Time
	removeBackoff time.Duration

	armed time.Time // the deadline Deadline reports
	gen   uint64
}

// NewMachine validates cfg and returns a Machine in INIT. Send it Start.
// It never rewrites cfg: an out-of-range value is an error wrapping
// ErrInvalidConfig.
func NewMachine(cfg Config) (*Machine, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("vrrp: %w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if cfg.VRID == 0 {
		bad("vrid 0 is not allowed, use 1..255")
	}
	if cfg.Priority == 0 {
		bad("priority 0 is reserved for a leaving master, use 1..255")
	}
	switch iv := cfg.AdvertInterval; {
	case iv < machineMinInterval || iv > machineMaxInterval:
		bad("advert interval %v out of range %v..%v", iv, machineMinInterval, machineMaxInterval)
	case iv%machineMinInterval != 0:
		bad("advert interval %v is not a whole number of centiseconds", iv)
	}
	if (!cfg.Addr.IsValid() || cfg.Addr.IsUnspecified()) && !cfg.Solo {
		bad("primary address %q is not a usable address", cfg.Addr)
	}
	switch cfg.Version {
	case 0:
		cfg.Version = 3
	case 2, 3:
	default:
		bad("version %d: want 2 or 3", cfg.Version)
	}
	if cfg.Version == 2 && cfg.AdvertInterval%time.Second != 0 {
		bad("advert interval %v: VRRPv2 carries whole seconds", cfg.AdvertInterval)
	}
	if cfg.PreemptDelay < 0 {
		bad("negative preempt delay %v", cfg.PreemptDelay)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m := &Machine{
		cfg:            cfg,
		state:          StateInit,
		prio:           cfg.Priority,
		ready:          !cfg.HoldUntilReady,
		masterInterval: cfg.AdvertInterval,
	}
	return m, nil
}

// Step feeds one event to the machine at time now and returns the actions
// to carry out, in order. After Step the runner re-reads Deadline.
func (m *Machine) Step(now time.Time, ev Event) []Action {
	if m.stopped {
		return nil
	}
	var acts []Action
	switch ev := ev.(type) {
	case Start:
		acts = m.start(now)
	case AdvertReceived:
		acts = m.advert(now, ev)
	case TimerFired:
		if ev.Gen != m.gen {
			return nil // stale: the deadline it was armed for has moved
		}
		acts = m.timers(now)
	case PriorityChanged:
		acts = m.priorityChanged(now, ev)
	case Ready:
		m.ready = true
	case Leave:
		acts = m.leave(now, ev)
	case Shutdown:
		acts = m.shutdown(now)
	case HardStop:
		acts = m.hardStop()
	case VIPRemoved:
		if m.state == StateMaster {
			acts = []Action{
				{Kind: ActionAddVIP, Reason: "the VIP was removed by something else while MASTER: restoring it"},
				{Kind: ActionAnnounce, Reason: "VIP restored"},
			}
		}
	case Relisten:
		if m.state == StateMaster {
			acts = []Action{{Kind: ActionListen, Reason: "frontends changed"}}
		}
	case LinkUp:
		if m.state == StateMaster {
			acts = []Action{{Kind: ActionAnnounce, Reason: "link up again while MASTER: re-announcing"}}
		}
	case EffectFailed:
		acts = m.effectFailed(now, ev)
	case MasterGone:
		m.masterGone(now, ev)
	}
	m.rearm()
	return acts
}

// Deadline returns when the runner must deliver TimerFired{Gen: gen}. A
// zero time means no timer is running. The generation changes whenever
// the deadline moves, so a TimerFired armed for an older deadline is
// ignored.
func (m *Machine) Deadline() (at time.Time, gen uint64) {
	return m.armed, m.gen
}

// Status returns a snapshot of the machine.
func (m *Machine) Status() MachineStatus {
	return MachineStatus{
		State:             m.state,
		Priority:          m.cfg.Priority,
		EffectivePriority: m.prio,
		MasterAddr:        m.masterAddr,
		MasterInterval:    m.masterInterval,
		SkewTime:          m.skew(),
		DownInterval:      m.down(),
		Ready:             m.ready,
		Leaving:           m.leaving != leaveNone,
		HoldUntil:         m.holdUntil,
		EffectFault:       m.effectFault,
		RetryAt:           m.retryAt,
		Stopped:           m.stopped,
	}
}

// rearm recomputes the single deadline the runner sees and bumps the
// generation when it moved.
func (m *Machine) rearm() {
	var at time.Time
	switch {
	case m.stopped:
	case m.state == StateMaster && m.leaving != leaveNone:
		at = m.leaveAt
	case m.state == StateMaster && !m.cfg.Solo:
		at = m.adverAt
	case m.state == StateBackup:
		at = m.downTimer
	case m.state == StateFault && m.effectFault != "":
		at = m.retryAt
	}
	if m.state != StateMaster && !m.stopped && !m.removeRetryAt.IsZero() && (at.IsZero() || m.removeRetryAt.Before(at)) {
		at = m.removeRetryAt
	}
	if !at.Equal(m.armed) {
		m.armed = at
		m.gen++
	}
}

// start is RFC 9568 section 6.4.1.
func (m *Machine) start(now time.Time) []Action {
	if m.state != StateInit {
		return nil
	}
	if m.cfg.StartupInterval > m.masterInterval {
		m.masterInterval = m.cfg.StartupInterval
	}
	acts := m.enter(now, "start")
	if m.state != StateMaster {
		// A crashed run of ours (or a crashed keepalived) leaves the VIP
		// on the interface, and clients get refused connections from a
		// node with no listener. vipd's rule: a node that does not start
		// as MASTER lets go of it first thing.
		acts = append(acts, Action{Kind: ActionRemoveVIP, Reason: "start: remove a VIP left behind by a previous run"})
	}
	return acts
}

// enter leaves INIT or FAULT: FAULT while a weight-0 tracker fails, MASTER
// at once for the address owner (and a solo node), else BACKUP waiting
// Master_Down_Interval.
func (m *Machine) enter(now time.Time, reason string) []Action {
	switch {
	case m.fault && m.state == StateFault:
		return nil
	case m.fault:
		return m.to(StateFault, "fault: "+m.faultReason)
	case m.cfg.Solo:
		return m.becomeMaster(now, reason+": single node, no election")
	case m.owner():
		return m.becomeMaster(now, reason+": address owner (priority 255)")
	default:
		return m.becomeBackup(now, reason)
	}
}

// to records a state change and returns its Transition action.
func (m *Machine) to(s State, reason string) []Action {
	from := m.state
	m.state = s
	m.adverAt, m.downTimer, m.lowerSince = time.Time{}, time.Time{}, time.Time{}
	m.gone = false
	return []Action{{Kind: ActionTransition, From: from, To: s, Priority: m.prio, Reason: reason}}
}

// becomeMaster emits the DESIGN.md section 4 order: listeners ready before
// the VIP, the VIP before anyone is told about it.
func (m *Machine) becomeMaster(now time.Time, reason string) []Action {
	acts := m.to(StateMaster, reason)
	m.masterAddr = m.cfg.Addr
	m.masterInterval = m.cfg.AdvertInterval
	m.adverAt = now.Add(m.cfg.AdvertInterval)
	m.removeRetryAt, m.removeBackoff = time.Time{}, 0
	acts = append(acts,
		Action{Kind: ActionListen},
		Action{Kind: ActionAddVIP},
		Action{Kind: ActionAnnounce},
	)
	if m.cfg.Solo {
		return acts
	}
	return append(acts, Action{Kind: ActionSendAdvert, Priority: m.prio})
}

func (m *Machine) becomeBackup(now time.Time, reason string) []Action {
	acts := m.to(StateBackup, reason)
	m.armDown(now)
	return acts
}

// armDown sets Master_Down_Timer to Master_Down_Interval.
func (m *Machine) armDown(now time.Time) {
	d := m.down()
	m.downTimer = now.Add(d)
	m.gone = false
	if m.masterAddr.IsValid() && m.masterAddr != m.cfg.Addr {
		m.downReason = fmt.Sprintf("no advert from %s for Down_Interval %v", m.masterAddr, d)
	} else {
		m.downReason = fmt.Sprintf("no advert for Down_Interval %v", d)
	}
}

// leaveMaster is the DESIGN.md section 4 break: stop announcing, then the
// VIP, then listeners, then the connections still open.
func (m *Machine) leaveMaster(s State, reason string) []Action {
	m.leaving, m.leaveAt, m.leaveHold = leaveNone, time.Time{}, 0
	acts := m.to(s, reason)
	return append(acts,
		Action{Kind: ActionStopAnnounce},
		Action{Kind: ActionRemoveVIP},
		Action{Kind: ActionUnlisten},
		Action{Kind: ActionCloseConns},
	)
}

func (m *Machine) advert(now time.Time, adv AdvertReceived) []Action {
	if !adv.From.IsValid() || adv.From == m.cfg.Addr || adv.Interval <= 0 {
		return nil // our own echo, or nothing the codec would have passed
	}
	switch {
	case m.state == StateBackup && adv.OtherVersion:
		return m.followOther(now, adv)
	case m.state == StateBackup:
		return m.backupAdvert(now, adv)
	case m.state == StateMaster && m.leaving != leaveNone:
		if adv.Priority == 0 {
			return nil
		}
		return m.finishLeave(now, fmt.Sprintf("%s: new master %s heard (advert priority %d)",
			m.leaving, adv.From, adv.Priority), &adv)
	case m.state == StateMaster && adv.OtherVersion:
		return m.yieldToOther(now, adv)
	case m.state == StateMaster:
		return m.masterAdvert(now, adv)
	}
	return nil // INIT and FAULT take no part
}

// followOther is a BACKUP hearing a configured node that speaks the other
// VRRP version (vipd's rule; RFC 5798 section 8.4 leaves mixed versions to
// the implementation). It cannot hear us, so preempting it would make two
// MASTERs: we follow it whatever the priorities, and take over Skew_Time
// after its priority 0, as from a master of our own version.
func (m *Machine) followOther(now time.Time, adv AdvertReceived) []Action {
	if adv.Priority == 0 {
		return m.backupAdvert(now, adv)
	}
	m.lowerSince = time.Time{}
	m.accept(now, adv)
	return nil
}

// yieldToOther is a MASTER hearing a configured node of the other VRRP
// version that is MASTER too (vipd's rule). It cannot hear us and will
// never yield, so we do, whatever the priorities: one MASTER and a
// problem in status rather than a split brain. The address owner keeps
// its address. A priority 0 from it needs no answer: we hold the VIP.
func (m *Machine) yieldToOther(now time.Time, adv AdvertReceived) []Action {
	if adv.Priority == 0 || m.owner() {
		return nil
	}
	acts := m.leaveMaster(StateBackup, fmt.Sprintf("%s is MASTER too and speaks the other VRRP version (it cannot hear this node): following it", adv.From))
	m.accept(now, adv)
	return acts
}

// backupAdvert is RFC 9568 section 6.4.2 on receiving an ADVERTISEMENT.
func (m *Machine) backupAdvert(now time.Time, adv AdvertReceived) []Action {
	if adv.Priority == 0 {
		at := now.Add(m.skew())
		if m.gone && m.downTimer.Before(at) {
			return nil // already taking over sooner: its process is gone
		}
		m.downTimer = at
		m.downReason = fmt.Sprintf("master %s left (advert priority 0), Skew_Time %v passed", adv.From, m.skew())
		return nil
	}
	if adv.Priority >= m.prio {
		m.lowerSince = time.Time{}
		m.accept(now, adv)
		return nil
	}
	// A lower priority master. preempt_delay counts from the first such
	// advert whether or not we may preempt yet.
	if m.lowerSince.IsZero() {
		m.lowerSince = now
	}
	if !m.mayPreempt(now) || now.Sub(m.lowerSince) < m.cfg.PreemptDelay {
		m.accept(now, adv)
		return nil
	}
	// Discard: let Master_Down_Timer run out and take over.
	m.downReason = fmt.Sprintf("preempting lower priority %d from %s", adv.Priority, adv.From)
	return nil
}

// accept adopts the master's interval and restarts Master_Down_Timer.
func (m *Machine) accept(now time.Time, adv AdvertReceived) {
	m.masterAddr = adv.From
	if m.cfg.Version != 2 {
		m.masterInterval = adv.Interval
	} else {
		m.masterInterval = m.cfg.AdvertInterval
	}
	m.armDown(now)
}

// mayPreempt reports whether a BACKUP may discard a lower priority master's
// adverts now. The owner always preempts (RFC 9568 section 6.1,
// Preempt_Mode), except while holding back after a Leave.
func (m *Machine) mayPreempt(now time.Time) bool {
	if !m.owner() && (!m.cfg.Preempt || !m.ready) {
		return false
	}
	return !now.Before(m.holdUntil)
}

// masterAdvert is RFC 9568 section 6.4.3 on receiving an ADVERTISEMENT.
func (m *Machine) masterAdvert(now time.Time, adv AdvertReceived) []Action {
	if adv.Priority == 0 {
		m.adverAt = now.Add(m.cfg.AdvertInterval)
		return []Action{{Kind: ActionSendAdvert, Priority: m.prio,
			Reason: fmt.Sprintf("advert priority 0 from %s", adv.From)}}
	}
	higher := adv.Priority > m.prio
	tie := adv.Priority == m.prio && adv.From.Compare(m.cfg.Addr) > 0
	if higher || tie {
		reason := fmt.Sprintf("advert priority %d from %s", adv.Priority, adv.From)
		if tie {
			reason += " (equal priority, higher address)"
		}
		acts := m.leaveMaster(StateBackup, reason)
		m.accept(now, adv)
		// A parting advert at our priority. Hearing another master means
		// there were two: hosts on our side of a healed partition still map
		// the VIP to us. The winner hears this lower advert and re-announces
		// (below) even when its own advert happened to reach us first.
		return append(acts, Action{Kind: ActionSendAdvert, Priority: m.prio,
			Reason: fmt.Sprintf("parting advert: %s must re-announce", adv.From)})
	}
	// Two masters: reassert at once and re-announce so that switches and
	// neighbours that followed the other one come back (DESIGN.md section
	// 3), at most one burst per LowerPrioEvery: a peer that cannot hear us
	// sends a lower priority advert every interval, and answering each with
	// a burst is an ARP war.
	why := fmt.Sprintf("reassert over advert priority %d from %s", adv.Priority, adv.From)
	m.adverAt = now.Add(m.cfg.AdvertInterval)
	// A lower priority heard after a quiet spell longer than Down_Interval
	// (a partition that healed, a peer that restarted) is a new episode and
	// is always answered.
	acts := []Action{{Kind: ActionSendAdvert, Priority: m.prio, Reason: why}}
	episode := m.lowerHeard.IsZero() || now.Sub(m.lowerHeard) > m.downFor(m.prio, m.cfg.AdvertInterval)
	m.lowerHeard = now
	if m.cfg.LowerPrioRounds > 0 && (episode || now.Sub(m.lowerAnnounced) >= m.cfg.LowerPrioEvery) {
		m.lowerAnnounced = now
		acts = append(acts, Action{Kind: ActionAnnounce, Rounds: m.cfg.LowerPrioRounds, Reason: why})
	}
	return acts
}

// timers handles everything due at now.
func (m *Machine) timers(now time.Time) []Action {
	due := func(t time.Time) bool { return !t.IsZero() && !t.After(now) }
	var acts []Action
	for range 4 { // each case changes state or moves its timer past now
		switch {
		case m.state == StateMaster && m.leaving != leaveNone && due(m.leaveAt):
			d := m.downFor(m.prio, m.cfg.AdvertInterval)
			acts = append(acts, m.finishLeave(now,
				fmt.Sprintf("%s: no new master within Down_Interval %v", m.leaving, d), nil)...)
		case m.state == StateMaster && m.leaving == leaveNone && due(m.adverAt):
			m.adverAt = now.Add(m.cfg.AdvertInterval)
			m.retryBackoff = 0 // serving: a later failure starts the backoff afresh
			acts = append(acts, Action{Kind: ActionSendAdvert, Priority: m.prio})
		case m.state == StateBackup && due(m.downTimer):
			acts = append(acts, m.becomeMaster(now, m.downReason)...)
		case m.state == StateFault && m.effectFault != "" && due(m.retryAt):
			why := m.effectFault
			m.effectFault, m.retryAt = "", time.Time{}
			acts = append(acts, m.enter(now, "retry after "+why)...)
		case m.state != StateMaster && due(m.removeRetryAt):
			m.removeRetryAt = time.Time{}
			acts = append(acts, Action{Kind: ActionRemoveVIP, Reason: "retrying a VIP removal that failed"})
		default:
			return acts
		}
	}
	return acts
}
