package control

import "time"

// Status is the document behind `vipd status -o json` and /api/v1/status.
// The fields named in DESIGN.md section 6 are a contract: add fields, never
// rename them.
type Status struct {
	Node    string    `json:"node"`
	Version string    `json:"version,omitempty"`
	Mode    string    `json:"mode"` // "vrrp", "bgp" (no VRRP instance) or "single"
	Started time.Time `json:"started"`
	// PID is the daemon's process id: a hitless restart (vipd restart)
	// changes it and nothing else.
	PID int `json:"pid,omitempty"`
	// LastRestart is the last `vipd restart` this process took part in:
	// the one that started it (new side), or the last one it rolled back.
	LastRestart *RestartResult `json:"last_restart,omitempty"`
	Instances   []Instance     `json:"instances"`
	Frontends   []Frontend     `json:"frontends"`
	Backends    []Backend      `json:"backends"`
	Peers       []Peer         `json:"peers,omitempty"`
	Trackers    []Tracker      `json:"trackers,omitempty"`
	LastDrill   *DrillResult   `json:"last_drill,omitempty"`
	// BGP is the node's BGP announcer; nil when it announces nothing.
	BGP *BGP `json:"bgp,omitempty"`
	// Findings are what vipd doctor's cheap checks (the interface and its
	// sysctls) find on the running node, refreshed every 30 s.
	Findings []Finding `json:"findings,omitempty"`
}

// Finding is one thing `vipd doctor` found, also in status (Findings).
type Finding struct {
	// Check names the check: interface, sysctl, firewall, vrrp, peers,
	// vip-conflict, listener, backends, files, config.
	Check string `json:"check"`
	// Severity is "error" (exit 2: breaks failover or serving),
	// "warning" (exit 1: can break it, or weakens it) or "info".
	Severity string `json:"severity"`
	// Instance is the VRRP instance concerned, if one.
	Instance string `json:"instance,omitempty"`
	Seen     string `json:"seen"`
	Fix      string `json:"fix"`
}

// Instance is one VRRP instance.
type Instance struct {
	Name              string    `json:"name"`
	VRID              int       `json:"vrid"`
	Interface         string    `json:"interface"`
	State             string    `json:"state"`
	Priority          int       `json:"priority"`
	EffectivePriority int       `json:"effective_priority"`
	PriorityReason    string    `json:"priority_reason,omitempty"`
	MasterAddr        string    `json:"master_addr"`
	VIPs              []string  `json:"vips"`
	LastTransition    time.Time `json:"last_transition"`
	LastReason        string    `json:"last_reason,omitempty"`
	Transitions       int       `json:"transitions"`
	AdvertIntervalMs  float64   `json:"advert_interval_ms"`
	MasterIntervalMs  float64   `json:"master_interval_ms"`
	DownIntervalMs    float64   `json:"down_interval_ms"`
	SkewTimeMs        float64   `json:"skew_time_ms"`
	Ready             bool      `json:"ready"`
	Unicast           bool      `json:"unicast"`
	Checksum          string    `json:"checksum"`
	// Version is the VRRP version the instance speaks: 3, or 2 for a
	// migration from keepalived.
	Version         int               `json:"version"`
	AdvertsSent     uint64            `json:"adverts_sent"`
	AdvertsReceived uint64            `json:"adverts_received"`
	Drops           map[string]uint64 `json:"drops"`
	// Notices counts adverts accepted with something odd about them
	// (addr_list: the VIP lists differ; interval: a VRRPv2 peer's
	// interval differs).
	Notices map[string]uint64 `json:"notices,omitempty"`
	// EffectErrors counts host effects that failed, by action ("listen",
	// "add VIP", "remove VIP").
	EffectErrors map[string]uint64 `json:"effect_errors,omitempty"`
	// Fault says why the node cannot serve as MASTER (a listener or the
	// VIP could not be set up) until RetryAt; empty otherwise.
	Fault   string    `json:"fault,omitempty"`
	RetryAt time.Time `json:"retry_at,omitempty"`
	// Problems lists, in words an operator can act on, what keeps a
	// peer's adverts from counting or what is odd about them ("peer
	// 192.168.30.21 speaks VRRPv2; set version = 2 to join it").
	Problems []string `json:"problems,omitempty"`
	// Senders lists every router heard on this VRID, with the checksum
	// form it uses (keepalived: pseudo-header).
	Senders []Sender `json:"senders,omitempty"`
	// Recent holds the last transitions, newest first.
	Recent []Transition `json:"recent,omitempty"`
}

// Sender is a router heard on the VRID.
type Sender struct {
	Addr     string    `json:"addr"`
	Name     string    `json:"name,omitempty"` // the [[node]] with that address; empty for a router vipd does not know
	Version  int       `json:"version"`
	Priority int       `json:"priority"`
	Interval float64   `json:"interval_ms"`
	Checksum string    `json:"checksum"`
	VIPs     []string  `json:"vips,omitempty"`
	LastSeen time.Time `json:"last_seen"`
	Count    uint64    `json:"count"`
	Dropped  uint64    `json:"dropped,omitempty"`
	Problem  string    `json:"problem,omitempty"`
}

// Transition is one logged state change.
type Transition struct {
	At     time.Time `json:"at"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
}

// Frontend is one proxy listener set.
type Frontend struct {
	Name        string   `json:"name"`
	Bind        string   `json:"bind"`
	Binds       []string `json:"binds,omitempty"`
	Backend     string   `json:"backend"`
	Listening   bool     `json:"listening"`
	ActiveConns int64    `json:"active_conns"`
	TotalConns  uint64   `json:"total_conns"`
	BytesIn     uint64   `json:"bytes_in"`
	BytesOut    uint64   `json:"bytes_out"`
	Healthy     int      `json:"healthy_servers"`
}

// Backend is a server pool.
type Backend struct {
	Name    string   `json:"name"`
	Servers []Server `json:"servers"`
}

// Server is one backend server with its state and last check.
type Server struct {
	Name        string    `json:"name"`
	Addr        string    `json:"addr"`
	State       string    `json:"state"`
	Health      string    `json:"health"`
	LastCheck   string    `json:"last_check,omitempty"`
	CheckedAt   time.Time `json:"checked_at,omitempty"`
	LatencyMs   float64   `json:"check_latency_ms"`
	ActiveConns int64     `json:"active_conns"`
	TotalConns  uint64    `json:"total_conns"`
	FailedConns uint64    `json:"failed_conns"`
}

// Peer is another vipd node, as its status beacon last described it.
type Peer struct {
	Name              string    `json:"name"`
	Addr              string    `json:"addr"`
	State             string    `json:"state"`
	EffectivePriority int       `json:"effective_priority"`
	Ready             bool      `json:"ready"`
	LastSeen          time.Time `json:"last_seen"`
	Fresh             bool      `json:"fresh"`
	// Instances are the peer's instances; State, EffectivePriority and
	// Ready above are its first one's.
	Instances []PeerInstance `json:"instances,omitempty"`
	// Liveness is this node's liveness connection to the peer (crash
	// detection within milliseconds); absent when liveness_port = 0.
	Liveness *PeerLiveness `json:"liveness,omitempty"`
}

// String words the liveness for a person: "up", "down: connection
// refused", "off: ...", "not a vipd (never said hello)".
func (l *PeerLiveness) String() string {
	switch {
	case l == nil:
		return "-"
	case l.State == "up", l.State == "off":
		return l.State
	case !l.Speaks && l.DialError != "":
		return "down: no vipd answers (" + l.DialError + ")"
	case l.DialError != "":
		return "down: " + l.DialError
	}
	return "down"
}

// PeerLiveness is the state of the liveness connection to one peer.
type PeerLiveness struct {
	// State is "up" (a crash of the peer's vipd would be seen at once),
	// "down" (reconnecting: the RFC timers alone until it is up) or "off"
	// (this node could not listen).
	State string    `json:"state"`
	Since time.Time `json:"since,omitempty"`
	// Speaks is set once the peer completed a hello (a keepalived host
	// never does).
	Speaks    bool      `json:"speaks"`
	DialError string    `json:"dial_error,omitempty"`
	LastEnd   string    `json:"last_end,omitempty"`
	LastEndAt time.Time `json:"last_end_at,omitempty"`
	// Problem is what an operator must fix (a firewall cutting the port).
	Problem string `json:"problem,omitempty"`
	// Counters since this node started: connections that came up, ends
	// after a goodbye, crashes confirmed, ends the peer's vipd outlived
	// (a reset by a firewall), and ends nobody confirmed.
	Ups           uint64 `json:"ups"`
	Goodbyes      uint64 `json:"goodbyes"`
	Crashes       uint64 `json:"crashes"`
	AliveAfterEnd uint64 `json:"alive_after_end"`
	Unconfirmed   uint64 `json:"unconfirmed"`
}

// PeerInstance is one instance of a peer.
type PeerInstance struct {
	Name              string `json:"name"`
	VRID              int    `json:"vrid"`
	State             string `json:"state"`
	EffectivePriority int    `json:"effective_priority"`
	Ready             bool   `json:"ready"`
}

// Tracker is one priority tracker.
type Tracker struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Weight  int    `json:"weight"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
}

// BGP is the node's BGP side: its sessions and the VIPs it announces.
type BGP struct {
	ASN      uint32 `json:"asn"`
	RouterID string `json:"router_id"`
	// Drained is set by `vipd drain self` until `vipd drain self --undo`.
	Drained bool `json:"drained"`
	// Stopping is set once a stop began (planned withdrawal of every VIP).
	Stopping    bool    `json:"stopping,omitempty"`
	DrainTimeMs float64 `json:"drain_time_ms"`
	// DrillUntil is set while a drill holds the VIPs back.
	DrillUntil time.Time    `json:"drill_until,omitempty"`
	Sessions   []BGPSession `json:"sessions"`
	VIPs       []BGPVIP     `json:"vips"`
}

// BGPSession is one BGP session with a router.
type BGPSession struct {
	Peer string `json:"peer"`
	ASN  uint32 `json:"asn"`
	// State is idle, connect, active, opensent, openconfirm or established.
	State string    `json:"state"`
	Since time.Time `json:"since,omitempty"`
	// UptimeS is how long the session has been established (0 when not).
	UptimeS          float64 `json:"uptime_s"`
	HoldTimeS        float64 `json:"hold_time_s"`
	PrefixesSent     uint64  `json:"prefixes_sent"`
	PrefixesReceived uint64  `json:"prefixes_received"`
	Flaps            uint32  `json:"flaps"`
	LastError        string  `json:"last_error,omitempty"`
	// BFD is up, init, down or admin-down when BFD is on.
	BFD string `json:"bfd,omitempty"`
}

// BGPVIP is one announced VIP on this node.
type BGPVIP struct {
	VIP string `json:"vip"`
	// State is announced, draining or withdrawn.
	State string `json:"state"`
	// Reason says why it is withdrawn or draining, or why an announced
	// one reaches no router.
	Reason     string    `json:"reason,omitempty"`
	Since      time.Time `json:"since,omitempty"`
	WithdrawAt time.Time `json:"withdraw_at,omitempty"`
	RetryAt    time.Time `json:"retry_at,omitempty"`
	Frontends  []string  `json:"frontends"`
	// Peers is the number of established sessions it is sent on.
	Peers       int      `json:"peers"`
	MED         *uint32  `json:"med,omitempty"`
	Communities []string `json:"communities,omitempty"`
	// Failures counts effects that failed for it (listen, add VIP,
	// announce).
	Failures int `json:"failures,omitempty"`
}

// DrainRequest is `vipd drain self` (Undo: `--undo`).
type DrainRequest struct {
	Undo bool `json:"undo"`
}

// DrainResult is what `vipd drain self -o json` prints: the VIPs once the
// drain completed (every VIP withdrawn), or at once for --undo.
type DrainResult struct {
	Drained bool     `json:"drained"`
	TookMs  float64  `json:"took_ms"`
	VIPs    []BGPVIP `json:"vips"`
}

// DrillRequest asks the master to hand over the VIP.
type DrillRequest struct {
	// Instance names the VRRP instance to drill; empty means the one this
	// node is MASTER of (an error when it is MASTER of several).
	Instance string        `json:"instance,omitempty"`
	Hard     bool          `json:"hard"`
	Hold     time.Duration `json:"hold"`  // how long not to preempt back
	Force    bool          `json:"force"` // skip the healthy-backup check
	// BGP drills the node's BGP announcement (drain, withdraw, hold)
	// instead of a VRRP instance; automatic on a node without VRRP.
	BGP bool `json:"bgp,omitempty"`
}

// DrillResult is what `vipd drill failover -o json` prints.
type DrillResult struct {
	From       string    `json:"from"`
	To         string    `json:"to"`
	GapMs      float64   `json:"gap_ms"`
	ExpectedMs float64   `json:"expected_ms"`
	TakeoverMs float64   `json:"takeover_ms"`
	Hard       bool      `json:"hard"`
	Probe      string    `json:"probe"`
	Probes     int       `json:"probes"`
	Failed     int       `json:"failed_probes"`
	At         time.Time `json:"at"`
	Instance   string    `json:"instance,omitempty"`
	// Resumed is set when no backup took over a planned handover and this
	// node resumed as MASTER without dropping the VIP.
	Resumed bool `json:"resumed,omitempty"`
	// Mode is "bgp" for a drill of the BGP announcement.
	Mode string `json:"mode,omitempty"`
	// Samples are the probe attempts, from shortly before the fault to the
	// first success after the takeover; Marks are what happened meanwhile
	// (the fault, each node's transitions, the new master heard, the first
	// success). Times are milliseconds from the fault (At).
	Samples []DrillSample `json:"samples,omitempty"`
	Marks   []DrillMark   `json:"marks,omitempty"`
}

// DrillSample is one probe attempt of a drill.
type DrillSample struct {
	TMs    float64 `json:"t_ms"`
	Result string  `json:"result"`         // "ok", "refused", "timeout" or "error"
	Node   string  `json:"node,omitempty"` // who answered: a node name, or a MAC address nobody claims
}

// DrillMark is one event of a drill.
type DrillMark struct {
	TMs  float64 `json:"t_ms"`
	Node string  `json:"node,omitempty"`
	What string  `json:"what"` // "fault", "MASTER → BACKUP", "new master heard", "first success", ...
}

// ServerRequest changes a server's administrative state.
type ServerRequest struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	Action  string `json:"action"` // "drain" | "maint" | "ready"
}

// ReloadResult says what a reload applied.
type ReloadResult struct {
	Applied []string `json:"applied"`
}

// Outcomes of a restart (RestartResult.Outcome).
const (
	// RestartHandedOver: the new process runs with every socket and the
	// state; the old one exited.
	RestartHandedOver = "handed-over"
	// RestartPlanned: no common handoff format (version skew): the old
	// process hands the VIP to the backup with priority 0 and exits, as on
	// SIGTERM, and the new one starts fresh once it has.
	RestartPlanned = "planned-handover"
	// RestartRolledBack: the new process failed; the old one resumed
	// everything it had frozen and runs on.
	RestartRolledBack = "rolled-back"
)

// RestartResult says how a `vipd restart` ended.
type RestartResult struct {
	Outcome string    `json:"outcome"`
	OldPID  int       `json:"old_pid"`
	NewPID  int       `json:"new_pid,omitempty"`
	At      time.Time `json:"at"`
	// TookMs is from the request to the new process's RUNNING (or the
	// rollback).
	TookMs float64 `json:"took_ms"`
	// FrozenMs is how long the old process's VRRP and proxy loops stood
	// still (none sent or forwarded a byte): freeze to the new process's
	// start.
	FrozenMs float64 `json:"frozen_ms,omitempty"`
	// Reason says why it was not handed over, or what the new one runs.
	Reason string `json:"reason,omitempty"`
	// PhasesMs are the steps of a handover, each from the end of the one
	// before: "export" (the proxy's freeze, after the runners froze),
	// "send" (state and descriptors), "ready" (the new process adopted
	// everything), "running" (GO to RUNNING).
	PhasesMs map[string]float64 `json:"phases_ms,omitempty"`
	// Conns and Listeners count what the proxy handed over.
	Conns     int `json:"conns,omitempty"`
	Listeners int `json:"listeners,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
