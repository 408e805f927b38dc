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
	// Version is 3 (RFC 9568, the default when 0) or 2 (RFC 3768). A
	// VRRPv2 backup keeps its own Advertisement_Interval (RFC 3768 section
	// 6.1: the advertised interval is for troubleshooting only) and its
	// Skew_Time is (256 - Priority) / 256 seconds.
	Version uint8
	// LowerPrioRounds and LowerPrioEvery rate-limit the re-announcement a
	// MASTER sends when it hears a lower priority (keepalived's
	// vrrp_garp_lower_prio_repeat and vrrp_garp_lower_prio_delay): at most
	// one burst of LowerPrioRounds rounds per LowerPrioEvery. A peer that
	// cannot hear us (a firewall, a one-way link, another VRRP version)
	// would otherwise start an ARP war, one burst per advert. 0 rounds
	// sends none; the advert that asserts the state always goes out.
	LowerPrioRounds int
	LowerPrioEvery  time.Duration
	// Solo is a node without peers (single-LB mode): no adverts, it owns
	// its addresses, and a shutdown stops at once instead of waiting for
	// a successor that does not exist.
	Solo bool
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
	// OtherVersion marks an advert of the other VRRP version from one of
	// the configured nodes (a keepalived still on VRRPv2, a node half way
	// through a switch to VRRPv3). That router cannot hear us, so the
	// election cannot run; rather than become a second MASTER, the
	// machine follows it: a BACKUP never preempts it, a MASTER yields to
	// it, and its priority 0 (it is leaving) is the cue to take over.
	OtherVersion bool
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
// the machine emits ActionStopped. It may come at any time, before Start
// too.
type Shutdown struct{}

// HardStop ends the instance now (the process is being torn down without
// a graceful stop): a MASTER lets go of the VIP, listeners and connections
// with no priority-0 advert, and the machine emits ActionStopped.
type HardStop struct{}

// VIPRemoved says something else (systemd-networkd, an operator) removed a
// VIP from the interface. A MASTER puts it back and re-announces.
type VIPRemoved struct{}

// LinkUp says the VRRP interface's link came back. A MASTER re-announces:
// a burst sent while the link was down went nowhere. (Link down reaches the
// machine as a fault of the interface's weight-0 tracker.)
type LinkUp struct{}

// Relisten says the instance's frontends changed (a reload added one): a
// MASTER binds them; a failure is an EffectFailed like any other Listen.
type Relisten struct{}

// EffectFailed says the runner could not carry out an action. Listen or
// AddVIP failing as MASTER means the node cannot serve: it hands over and
// goes FAULT, and retries with a backoff. RemoveVIP failing leaves a VIP on
// a node that must not hold it: the removal is retried with a backoff.
type EffectFailed struct {
	Kind ActionKind
	Err  error
}

// MasterGone says the vipd process of the router at From is gone while
// its host lives: its liveness connection ended without a goodbye and a
// second, independent signal from that host confirmed it (see
// internal/liveness). A BACKUP whose current master is From treats it
// like a priority-0 advert from that master, on a shorter clock:
// Master_Down_Timer is set to GoneSkew. vipd's rule, not RFC 9568's.
type MasterGone struct {
	From   netip.Addr
	Reason string // how it was learned, for the transition's reason
}

func (Start) isEvent()           {}
func (AdvertReceived) isEvent()  {}
func (TimerFired) isEvent()      {}
func (PriorityChanged) isEvent() {}
func (Ready) isEvent()           {}
func (Leave) isEvent()           {}
func (Shutdown) isEvent()        {}
func (HardStop) isEvent()        {}
func (VIPRemoved) isEvent()      {}
func (LinkUp) isEvent()          {}
func (Relisten) isEvent()        {}
func (EffectFailed) isEvent()    {}
func (MasterGone) isEvent()      {}

// ActionKind says what the runner must do.
type ActionKind uint8

// Actions, in the order the machine emits them for a transition (DESIGN.md
// section 4): becoming MASTER is Listen, AddVIP, Announce, SendAdvert;
// leaving is StopAnnounce, RemoveVIP, Unlisten, CloseConns.
const (
	ActionTransition   ActionKind = iota + 1 // From -> To with Priority and Reason: log, notify, count
	ActionListen                             // bind proxy listeners on the VIP
	ActionAddVIP                             // add the VIP to the interface
	ActionAnnounce                           // start a GARP / unsolicited NA burst (Rounds), then the refresh
	ActionSendAdvert                         // send one advert with Priority
	ActionStopAnnounce                       // stop the burst and the refresh
	ActionRemoveVIP                          // remove the VIP from the interface
	ActionUnlisten                           // close the proxy listeners on the VIP
	ActionCloseConns                         // close the proxied connections still open
	ActionStopped                            // shutdown complete; the runner may exit
)

// String names the action for logs.
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
	case ActionSendAdvert:
		return "send advert"
	case ActionStopAnnounce:
		return "stop announcing"
	case ActionRemoveVIP:
		return "remove VIP"
	case ActionUnlisten:
		return "unlisten"
	case ActionCloseConns:
		return "close connections"
	case ActionStopped:
		return "stopped"
	}
	return "unknown action"
}

// Action is one effect for the runner to carry out, in order.
type Action struct {
	Kind ActionKind
	// Priority is what ActionSendAdvert advertises, and the effective
	// priority after an ActionTransition (for logs and notify hooks).
	Priority uint8
	From, To State // ActionTransition
	// Rounds is the size of an ActionAnnounce burst; 0 means the
	// configured burst (on becoming MASTER).
	Rounds int
	Reason string
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
	// EffectFault says why the node could not serve as MASTER (listen or
	// add VIP failed); it stays FAULT until RetryAt, then rejoins.
	EffectFault string
	RetryAt     time.Time
	// Stopped is set once the machine emitted ActionStopped.
	Stopped bool
}
