package vrrp

import (
	"net/netip"
	"time"
)

// State is the RFC 9568 state of a virtual router instance.
type State uint8

// The states of RFC 9568 section 6.4, plus FAULT (keepalived's: a tracker
// with weight 0 is failing, the instance takes no part in the election).
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
)

// String returns the upper-case name used in logs and status JSON.
func (s State) String() string {
	switch s {
	case StateInit:
		return "INIT"
	case StateBackup:
		return "BACKUP"
	case StateMaster:
		return "MASTER"
	case StateFault:
		return "FAULT"
	}
	return "UNKNOWN"
}

// Config is what the state machine needs to know about its instance.
type Config struct {
	VRID           uint8
	Priority       uint8         // configured priority; 255 = address owner
	AdvertInterval time.Duration // our advertisement interval (centisecond resolution)
	Preempt        bool          // false = keepalived's nopreempt
	PreemptDelay   time.Duration // keepalived's preempt_delay
	Addr           netip.Addr    // our primary address: the tie-breaker
	// HoldUntilReady makes a starting node refrain from preempting until it
	// receives a Ready event (its health checks have completed one round).
	HoldUntilReady bool
	// StartupInterval is the Master_Adver_Interval a starting backup
	// assumes until it hears an advert (0: AdvertInterval). A node at
	// 200 ms next to a peer at keepalived's 1 s would otherwise time out
	// before the peer's first advert and flap to MASTER for a moment.
	StartupInterval time.Duration
}

// Event is an input to Machine.Step.
type Event interface{ isEvent() }

// Start moves INIT to BACKUP (or straight to MASTER for the owner).
type Start struct{}

// AdvertReceived is a valid advertisement for our VRID from another router.
// The runner has already checked version, TTL, checksum, VRID and peers.
type AdvertReceived struct {
	From     netip.Addr
	Priority uint8
	Interval time.Duration
}

// TimerFired is delivered when the deadline returned by Deadline passes.
// Gen must match the generation returned with that deadline, else the event
// is stale and ignored.
type TimerFired struct{ Gen uint64 }

// PriorityChanged carries the effective priority computed from trackers.
// Fault is true when a weight-0 tracker fails.
type PriorityChanged struct {
	Priority uint8
	Fault    bool
	Reason   string
}

// Ready says the node's health checks have completed one round.
type Ready struct{}

// Leave asks a MASTER to hand over (a drill). Hard rehearses a crash: stop
// advertising and drop the VIP at once with no priority-0 advert. Hold is
// how long to refrain from preempting back afterwards.
type Leave struct {
	Hold time.Duration
	Hard bool
}

// Shutdown is a terminal stop (SIGTERM): a MASTER sends priority 0 and keeps
// serving until the new master is heard (bounded by Down_Interval); then
// the machine emits ActionStopped.
type Shutdown struct{}

func (Start) isEvent()           {}
func (AdvertReceived) isEvent()  {}
func (TimerFired) isEvent()      {}
func (PriorityChanged) isEvent() {}
func (Ready) isEvent()           {}
func (Leave) isEvent()           {}
func (Shutdown) isEvent()        {}

// ActionKind says what the runner must do.
type ActionKind uint8

// Actions, in the order the machine emits them for a transition (DESIGN.md
// section 4): becoming MASTER is Listen, AddVIP, Announce, SendAdvert;
// leaving is RemoveVIP, Unlisten, CloseConns.
const (
	ActionTransition ActionKind = iota + 1 // From -> To, Reason: log, notify, count
	ActionListen                           // bind proxy listeners on the VIP
	ActionAddVIP                           // add the VIP to the interface
	ActionAnnounce                         // start a GARP / unsolicited NA burst
	ActionSendAdvert                       // send one advert with Priority
	ActionRemoveVIP
	ActionUnlisten
	ActionCloseConns
	ActionStopped // shutdown complete; the runner may exit
)

// Action is one effect for the runner to carry out, in order.
type Action struct {
	Kind     ActionKind
	Priority uint8 // ActionSendAdvert
	From, To State // ActionTransition
	Reason   string
}

// MachineStatus is a snapshot of a Machine for logs, status JSON and tests.
type MachineStatus struct {
	State             State
	Priority          uint8         // configured priority
	EffectivePriority uint8         // after trackers; what we advertise
	MasterAddr        netip.Addr    // last master heard, or our own address as MASTER
	MasterInterval    time.Duration // Master_Adver_Interval: adopted from the master, ours as MASTER
	SkewTime          time.Duration // from MasterInterval and EffectivePriority
	DownInterval      time.Duration // Master_Down_Interval
	Ready             bool          // false until Ready when Config.HoldUntilReady
	Leaving           bool          // MASTER that sent priority 0 and awaits its successor
	HoldUntil         time.Time     // after a Leave: no preemption before this; zero = none
}
