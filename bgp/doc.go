// Package bgp announces vipd's virtual IPs to routers over BGP-4
// (RFC 4271), for load-balancer hosts that do not share one L2 segment, or
// that should all serve at once behind the routers' ECMP.
//
// It embeds GoBGP (github.com/osrg/gobgp/v4) as a library, in process: no
// external daemon, no gRPC listener. A Speaker is one BGP router instance
// with a local ASN and router id, a fixed list of peers, and the prefixes
// the daemon tells it to announce. The daemon drives it from one goroutine:
//
//	s, err := bgp.New(cfg, log)
//	go s.Run(ctx)                        // sessions live until ctx ends
//	s.Announce(vip, attrs)               // proxy listens, backends healthy
//	s.Drain(vip, "drain self")           // planned: routers prefer others
//	s.Withdraw(vip, "backends: 0 of 3")  // and say why
//	st := s.Status()                     // sessions and prefixes
//
// # The announcement state machine
//
// Announcer decides, per VIP, when it is announced, drained and withdrawn
// and in which order the host effects happen (listen, put the VIP on the
// host, announce; drain, then withdraw, remove the VIP, unlisten, close
// connections; end the sessions once nothing is announced on a stop). It
// is a pure value fed events with the time (backends verdicts, operator
// drain, stop, hard stop, drill, timers, failed effects, session counts)
// that returns actions and one deadline, like vrrp.Machine.
//
// # What it implements
//
//   - eBGP and iBGP sessions (the peer's ASN decides), IPv4 and IPv6
//     unicast, each peer with its own hold time (keepalive = hold/3),
//     connect retry, TCP MD5 signature password (RFC 2385), eBGP multihop
//     TTL, passive mode (wait for the router to connect, on port 179 or
//     Config.ListenPort), and optional BFD (RFC 5880/5881 asynchronous
//     mode, single hop, GoBGP's own implementation) so a dead link or
//     router is noticed in MinRx x Multiplier instead of the hold time.
//   - Prefix attributes per node: MED, LOCAL_PREF (sent on iBGP sessions
//     only, RFC 4271 section 5.1.5), standard and well-known communities.
//     The next hop is the session's local address.
//   - Planned withdrawal in two steps: Drain re-announces a prefix with the
//     GRACEFUL_SHUTDOWN community (RFC 8326, 65535:0) and the largest usable
//     MED, so routers that honour either move new flows to the other nodes
//     while this one still serves; Withdraw then removes it.
//   - Crash behaviour for free: when the process dies its kernel closes the
//     TCP sessions and the routers withdraw at once; a dead host is noticed
//     by the routers' hold timer (or BFD).
//   - Status: per peer the FSM state, when it was established, the
//     negotiated hold time, prefixes sent and received, the last error and
//     the BFD state; per prefix whether it is announced, draining or
//     withdrawn, and why.
//   - GoBGP's logs go through zerolog with component=bgp.
//
// # What it does not implement
//
//   - Learning routes: received prefixes are counted, never installed in
//     the kernel (vipd is a stub announcer, not a router).
//   - Policies, route reflection, graceful restart (RFC 4724), add-path,
//     BGP unnumbered, BFD multihop and BFD authentication.
//   - Reconfiguring a running Speaker: a changed peer list means a new
//     Speaker, started after the old one's Run returned. Run one Speaker
//     per process at a time: GoBGP keeps its route selection options in
//     package variables that every server's start writes (the race
//     detector sees two servers starting side by side race on them).
//   - Health gating itself: Announcer decides from the verdicts it is fed
//     (the daemon computes them from its health checks) and the daemon's
//     runner carries its actions out; the Speaker only carries the
//     decision to the routers.
package bgp
