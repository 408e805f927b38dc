// Package liveness tells a vipd node, within milliseconds, that the vipd
// process of a peer has died while the peer's host lives on: a crash, an
// OOM kill, a panic, an upgrade gone wrong. VRRP cannot know it (a backup
// only hears silence, and waits Master_Down_Interval for it), but the
// peer's kernel says so at once: it closes the dead process's sockets.
//
// # How
//
// Every pair of vipd nodes keeps one TCP connection on the liveness port
// (the node with the lower address dials, with a backoff of 100 ms
// doubling to 2 s; both ends send a hello with their name and VRRP advert
// sources, then a ping every second). Every close a vipd makes on purpose
// — a stop, a hard stop, a hitless restart, a connection it replaces — is
// preceded by a goodbye ("closing on purpose") message. So when a
// connection that completed its hello ends with a FIN or a RST and no
// goodbye came first, the peer's process is probably gone.
//
// Probably: a firewall or a middlebox can reset a connection too. Before
// acting, the node asks the peer's host a second, independent question: a
// UDP datagram to the same port number, where a live vipd answers with an
// echo and a host whose vipd is gone answers ICMP port unreachable. Only
// that answer confirms the crash; an echo means the process lives (a
// warning names the firewall), and no answer at all leaves it to the RFC
// timers. Silence on the connection (a dead host, a cut cable, a
// partition, a SIGSTOP) is never a signal: TCP then ends, if ever, with a
// timeout, which changes nothing.
//
// A confirmed crash is reported once through Config.Gone with the peer's
// advert sources; the daemon turns it into a vrrp.MasterGone event for
// every instance, and only a BACKUP whose current master is that peer acts
// on it (after GoneSkew, so the best backup moves first).
//
// # Structure
//
// core.go is the pure per-peer state (what an ended connection means,
// backoff, counters) with no I/O and no clock; liveness.go drives it with
// real sockets, one goroutine per peer; probe.go is the UDP question and
// its echo. The package does not know VRRP states: it reports facts.
//
// # What it does not do
//
// It does not detect dead hosts or cut links (that is VRRP's job), does
// not speak to keepalived (a peer that never completes a hello is never
// acted on), and does not authenticate peers beyond accepting only the
// configured node addresses.
package liveness
