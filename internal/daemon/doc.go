// Package daemon wires one vipd node: its VRRP instances, its BGP
// announcements, the proxy, the health checks, the trackers, the status
// beacons, drills, the control API and the optional status page.
//
// # The flow
//
// Data flows one way, and every host effect on a VIP has one owner:
//
//		config ──► trackers ──────────────► vrrp.Runner (one per instance) ──► effects
//		   │        ▲  (priority, fault)     │  Machine.Step decides           (vipEffects:
//		   │        │                        │  the runner carries out          listeners, VIP,
//		   │     health checks ──► proxy     │  every action, in order          GARP, conns,
//		   │     (servers, scripts)          ▼                                   hooks)
//		   └──► proxy config         status, published after the effects ──► changes
//		                                                                    (beacon, systemd,
//		                                                                     drill, page)
//
//	  - The trackers turn health results, link states and the configured
//	    priorities into each instance's effective priority and fault, and
//	    hand the latest value to the runner under their own lock, so updates
//	    can never arrive out of order.
//	  - Things that happen to the host — a VIP removed by someone else, the
//	    link coming back, a stop requested at any moment, an effect that
//	    failed, a peer's vipd process gone (internal/liveness, as
//	    vrrp.MasterGone) — are events into the instance's runner, never a
//	    side door to netlink or the proxy (DESIGN.md section 2).
//	  - vipEffects is the only code that adds or removes a VIP, binds or
//	    closes a frontend, or sends gratuitous ARP, and it runs on the
//	    runner's goroutine.
//	  - The runner publishes status after the effects of each step ran; one
//	    "state changed" broadcast (changes) wakes everything that follows
//	    state: the beacon, the systemd notifier, a drill in progress.
//
// Outside the daemon, Cleanup (`vipd cleanup`, the unit's ExecStopPost)
// lets go of the VIPs a crashed run left on the interface, once another
// router is master.
//
// In single-LB mode (no VRRP) the node runs one solo instance: the same
// runner and effects, with no socket and no peers, so that listening,
// retrying a failed bind and letting go on stop follow the same path.
//
// # BGP mode
//
// A node with [bgp] peers runs one more owner beside its instances: the
// BGP runner (bgpRunner), the only goroutine that drives the node's one
// bgp.Speaker and binds the frontends on [bgp] VIPs and puts those VIPs on
// lo (bgpEffects). Its decisions come from the pure bgp.Announcer, fed:
//
//	health checks ──► proxy ──► per-VIP verdict (healthy servers behind
//	                            each frontend on the VIP ≥ min_healthy)
//	vipd drain self, Shutdown, a drill, its timers, failed effects
//	                        ──► bgpRunner ──► listen, VIP on lo, announce /
//	                                          drain, withdraw, unlisten, CEASE
//
// Shutdown waits for it as for the VRRP runners: every VIP leaves the
// planned way (GRACEFUL_SHUTDOWN for drain_time, then withdrawn) and the
// sessions end with CEASE before Run returns.
//
// # What it does not do
//
// It does not parse files (internal/config), speak VRRP on the wire (vrrp),
// touch netlink directly (netcfg) or move bytes (proxy).
package daemon
