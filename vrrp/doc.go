// Package vrrp implements the Virtual Router Redundancy Protocol version 3
// (RFC 9568, which obsoletes RFC 5798) as vipd uses it: to elect which
// load-balancer host owns the virtual IP.
//
// # What it implements
//
// The state machine of RFC 9568 section 6 (Initialize, Backup and Master —
// RFC 9568 says "Active"; this package keeps the MASTER name operators know
// from keepalived) plus keepalived's FAULT state. Machine is a pure value in
// the style of etcd-io/raft: Step feeds it one Event with the current time
// and returns the Actions to carry out, in order; Deadline says when the
// next TimerFired is due. It does no I/O, starts no goroutines and never
// reads the clock, so an in-memory network of machines can rehearse
// elections, crashes, partitions and ties in microseconds.
//
// Beyond the RFC, following DESIGN.md sections 3 and 4:
//
//   - A MASTER that hears a lower priority sends an advert at once and
//     re-announces the VIP, and a MASTER that yields sends one parting
//     advert so that the winner re-announces: a healed split brain heals
//     the hosts' ARP caches too.
//   - Voluntary hand-overs (Shutdown, Leave, a weight-0 tracker failing on
//     the MASTER) are make-before-break: priority 0 first, the VIP and
//     listeners kept until the successor is heard, bounded by
//     Master_Down_Interval.
//   - keepalived's nopreempt and preempt_delay, a hold after a drill, and
//     HoldUntilReady, which keeps a starting node from preempting before
//     its health checks have completed a round. None of them stops a node
//     from taking over when no master is heard at all.
//   - MasterGone: a BACKUP told that its master's process is gone while
//     its host lives (internal/liveness: the peer connection closed
//     without a goodbye, confirmed by the host) sets Master_Down_Timer to
//     GoneSkew, a quarter of Skew_Time, as it would to Skew_Time for a
//     priority-0 advert; the best backup still moves first.
//   - The order of effects: listeners before the VIP before the announcement
//     when becoming MASTER; VIP, listeners, then open connections when
//     leaving.
//   - VRRPv2 (RFC 3768) per instance, for running beside keepalived's
//     default: its timers, whole-second intervals, message-only checksum
//     and keepalived's simple text password (auth type 1), which is no
//     security (RFC 3768 says so) but lets the nodes join while migrating.
//   - A configured node that speaks the other version is followed, never
//     elected against: a BACKUP does not preempt it, a MASTER yields to
//     it, and its priority 0 hands over as usual (AdvertReceived's
//     OtherVersion). The two cannot hear each other; this keeps one
//     MASTER, reports the mismatch, and makes a switch of version one
//     node at a time a planned handover.
//
// The advertisement codec (Advertisement, MarshalAdvertisement, and
// checksums with or without the IPv4 pseudo-header, as keepalived and RFC
// 9568 differ), EffectivePriority for keepalived's tracker weights, and
// Runner, which drives a Machine with a socket, a timer and host effects
// behind the Conn and Effects interfaces.
//
// # What it does not implement
//
//   - Authentication other than VRRPv2's simple text password: IP
//     Authentication Header (keepalived's auth_type AH) is dropped and
//     reported, and VRRPv3 has none.
//   - Sending both versions at once (RFC 5798 section 8.4's optional
//     mixed mode).
//   - Virtual MAC addresses: the VIP is a secondary address on the host's
//     own interface, claimed with gratuitous ARP or unsolicited neighbour
//     advertisements.
//   - Sockets and the host: raw IPv4 and IPv6 VRRP sockets, adding and
//     removing the VIP, gratuitous ARP and unsolicited NA live in package
//     netcfg; the proxy listeners in package proxy; health checks in
//     package health.
//   - Accept_Mode false: the VIP always accepts traffic, since the proxy
//     must receive it.
//
// # Files
//
// One idea per file: packet.go and checksum.go (the codec), machine.go
// (the state machine: states, adverts, preemption), machine_timing.go
// (Skew_Time, Master_Down_Interval, GoneSkew), machine_leave.go (leaving
// MASTER on purpose: make before break, shutdown, hard stop),
// machine_events.go (a changed priority, a master's process gone, a
// failed effect), machine_api.go (events, actions, status), track.go
// (effective priority from trackers), receive.go (validating what the
// socket read), runner.go and runner_status.go (the goroutine that owns
// the socket and the timer and carries out the actions), snapshot.go and
// runner_handoff.go (freezing a runner and taking it up in a new process:
// the hitless restart).
package vrrp
