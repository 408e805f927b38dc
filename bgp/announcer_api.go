package bgp

import (
	"net/netip"
	"time"
)

// AnnouncerConfig is what the announcement state machine needs to know.
type AnnouncerConfig struct {
	// VIPs are the addresses this node announces while it can serve them.
	VIPs []netip.Addr
	// DrainTime is how long a planned withdrawal announces a VIP with
	// GRACEFUL_SHUTDOWN (still serving) before it withdraws it. 0
	// withdraws at once.
	DrainTime time.Duration
}

// AnnouncerEvent is an input to Announcer.Step.
type AnnouncerEvent interface{ isAnnouncerEvent() }

// Start begins: every VIP left on the host by a previous run is removed
// (nothing is announced yet, so nothing may answer for the VIP).
type Start struct{}

// BackendsChanged is the verdict of the health checks behind one VIP's
// frontends: OK when every frontend that binds it has enough healthy
// servers. Reason words the verdict ("0 of 3 healthy behind kubernetes,
// need 1"). The first verdict comes once the checks completed a round; a
// VIP is not announced before.
type BackendsChanged struct {
	VIP    netip.Addr
	OK     bool
	Reason string
}

// OperatorDrain is `vipd drain self` (On) and `vipd drain self --undo`
// (!On): a drained node withdraws every VIP the planned way and announces
// none until undone.
type OperatorDrain struct{ On bool }

// Stop is a graceful stop (SIGTERM): every announced VIP is withdrawn the
// planned way; once none is announced the speaker is ended (CEASE) and
// the machine emits ActionStopped. It may come at any time.
type Stop struct{}

// HardStop ends now (the process is torn down without a graceful stop):
// every VIP is withdrawn at once, then the speaker is ended.
type HardStop struct{}

// Drill rehearses leaving: planned (drain, wait, withdraw), or Hard (the
// withdrawal a crash or failed backends causes, at once). The node then
// holds back for Hold before it announces again.
type Drill struct {
	Hard bool
	Hold time.Duration
}

// DrillEnd ends a drill's hold at once (nobody else served the VIP).
type DrillEnd struct{}

// TimerFired is delivered when the deadline from Deadline passes; a Gen
// that does not match the current deadline's is stale and ignored.
type TimerFired struct{ Gen uint64 }

// Sessions is the number of established BGP sessions. It changes only
// what Status says about an announced VIP (no router has it without one).
type Sessions struct{ Established int }

// EffectFailed says an action could not be carried out. A VIP whose
// listener, address or announcement failed is let go of and retried
// after a backoff (1 s doubling to 30 s); a failed Drain withdraws at once.
type EffectFailed struct {
	VIP  netip.Addr
	Kind ActionKind
	Err  error
}

// Relisten says the frontends of VIP changed (a reload added one): an
// announced VIP binds them.
type Relisten struct{ VIP netip.Addr }

// Reconfigure takes a reload: DrainTime applies to drains that start
// from now on, and Reannounce sends every announced VIP again (its path
// attributes changed).
type Reconfigure struct {
	DrainTime  time.Duration
	Reannounce bool
}

func (Start) isAnnouncerEvent()           {}
func (Reconfigure) isAnnouncerEvent()     {}
func (BackendsChanged) isAnnouncerEvent() {}
func (OperatorDrain) isAnnouncerEvent()   {}
func (Stop) isAnnouncerEvent()            {}
func (HardStop) isAnnouncerEvent()        {}
func (Drill) isAnnouncerEvent()           {}
func (DrillEnd) isAnnouncerEvent()        {}
func (TimerFired) isAnnouncerEvent()      {}
func (Sessions) isAnnouncerEvent()        {}
func (EffectFailed) isAnnouncerEvent()    {}
func (Relisten) isAnnouncerEvent()        {}

// ActionKind is one effect on the host or the routers.
type ActionKind uint8

// The actions, in the order a VIP uses them: becoming announced is
// Listen, AddVIP, Announce (the listener is ready before the address, the
// address before any router sends a client); a planned leave is Drain,
// then after DrainTime the leave; leaving is Withdraw, RemoveVIP,
// Unlisten, CloseConns. StopSpeaker ends the BGP sessions (CEASE) once
// nothing is announced, and Stopped ends the runner.
const (
	// ActionTransition records a VIP's state change with its reason
	// (From and To are Announced, Draining or Withdrawn). It comes first.
	ActionTransition ActionKind = iota + 1
	ActionListen
	ActionAddVIP
	ActionAnnounce
	ActionDrain
	ActionWithdraw
	ActionRemoveVIP
	ActionUnlisten
	ActionCloseConns
	ActionStopSpeaker
	ActionStopped
)

func (k ActionKind) String() string {
	switch k {
	case ActionTransition:
		return "transition"
	case ActionListen:
		return "listen"
	case ActionAddVIP:
		return "add VIP"
	case ActionAnnounce:
		return "announce"
	case ActionDrain:
		return "drain"
	case ActionWithdraw:
		return "withdraw"
	case ActionRemoveVIP:
		return "remove VIP"
	case ActionUnlisten:
		return "unlisten"
	case ActionCloseConns:
		return "close connections"
	case ActionStopSpeaker:
		return "stop speaker"
	case ActionStopped:
		return "stopped"
	}
	return "unknown"
}

// Action is one effect for the runner to carry out. VIP is zero for
// StopSpeaker and Stopped.
type Action struct {
	Kind     ActionKind
	VIP      netip.Addr
	From, To string // ActionTransition
	// Reason says why: the transition's reason, the reason a Withdraw or
	// Drain shows in the speaker's status.
	Reason string
}

// AnnouncerStatus is a snapshot of an Announcer.
type AnnouncerStatus struct {
	VIPs []VIPStatus
	// Drained is set by `vipd drain self` until undone.
	Drained bool
	// Stopping is set by Stop; Stopped once the machine emitted
	// ActionStopped.
	Stopping, Stopped bool
	// Drill is set while a drill is draining or holding back; DrillUntil
	// is the end of its hold (zero while it still drains).
	Drill      bool
	DrillUntil time.Time
	// Sessions is the last Sessions count.
	Sessions int
}

// VIPStatus is one VIP as the machine sees it.
type VIPStatus struct {
	VIP netip.Addr
	// State is Announced, Draining or Withdrawn.
	State string
	// Reason says why the VIP is withdrawn or draining ("backends: 0 of 3
	// healthy behind kubernetes, need 1", "drained by the operator"), or
	// why an announced one reaches no router.
	Reason string
	Since  time.Time
	// WithdrawAt is when a draining VIP is withdrawn; RetryAt when a VIP
	// that could not be served is tried again.
	WithdrawAt, RetryAt time.Time
	// Failures counts effects that failed for this VIP (listen, add VIP,
	// announce).
	Failures int
}
