// Package health implements the active health checks that feed both the
// proxy (which servers get new connections) and the VRRP trackers (priority).
//
// # Pieces
//
// The package is split so that each piece can be tested on its own:
//
//   - [Probe] is a function type that runs one check and honours its context.
//     [NewProbe] builds the network probes (tcp, tls, http, https) from a
//     [Spec]; [ScriptProbe] runs an external command (keepalived's
//     track_script).
//   - [Counter] is the pure rise/fall state machine with HAProxy semantics:
//     an UP target goes DOWN after Fall consecutive failures, a DOWN target
//     goes UP after Rise consecutive successes. A fresh counter is UNKNOWN and
//     the first result decides at once, so a node that just started converges
//     in one round instead of Rise rounds.
//   - [Checker] schedules one probe on an interval (±10% jitter) with a
//     timeout, feeds a Counter and emits an [Event] for every result. Time
//     comes from an injected [Clock]; package healthtest has a fake one.
//   - [Group] runs many checkers, remembers the latest Event per name for
//     status output, and reports when every checker has completed its first
//     round (VRRP must not preempt before that: it would take the VIP blind).
//
// # Probe semantics
//
// tcp connects and closes. tls also completes a full handshake, verified
// against a CA file (or not, with InsecureSkipVerify), with optional SNI and
// client certificate: unlike HAProxy's plain tcp check it fails on a hung
// apiserver that accepts connections but never handshakes. http and https send
// one request (no connection reuse between probes), compare the status code
// exactly (redirects are not followed) and read at most a few KiB of body.
// Every probe fails when its context expires; Result.Detail then says
// "timeout after ...".
//
// # What it does not do
//
// It does not decide what a result means for the proxy or for VRRP priority:
// events leave through a channel and the daemon routes them. It imports
// neither package. It does not follow redirects, reuse connections, or run
// passive (traffic-based) checks.
package health
