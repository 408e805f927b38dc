package liveness

import (
	"errors"
	"fmt"
	"time"
)

// End is how a connection ended, as far as it matters here.
type End uint8

const (
	// EndEOF: the peer's kernel sent a FIN (its socket closed).
	EndEOF End = iota + 1
	// EndReset: a RST (a socket closed with unread data, or a firewall).
	EndReset
	// EndLocal: this node closed it (a stop, a replacement, a protocol
	// error), always after a goodbye of its own.
	EndLocal
	// EndOther: a timeout or an unreachable peer: silence, never a signal.
	EndOther
)

func (e End) String() string {
	switch e {
	case EndEOF:
		return "closed (FIN)"
	case EndReset:
		return "reset (RST)"
	case EndLocal:
		return "closed by this node"
	case EndOther:
		return "timed out"
	}
	return "unknown"
}

// Verdict is the answer to the second question, asked of the peer's host
// over UDP after a connection ended without a goodbye.
type Verdict uint8

const (
	// Unknown: no answer in time (loss, a firewall dropping UDP, a host
	// that just died): not confirmed.
	Unknown Verdict = iota
	// Gone: ICMP port unreachable: nothing listens there any more.
	Gone
	// Alive: the peer's vipd echoed: the process lives.
	Alive
)

func (v Verdict) String() string {
	switch v {
	case Gone:
		return "port unreachable"
	case Alive:
		return "vipd answered"
	}
	return "no answer"
}

// Phase of a peer's connection.
type Phase uint8

const (
	PhaseDown Phase = iota // no connection that completed a hello
	PhaseUp                // hello exchanged; a crash would be seen
)

func (p Phase) String() string {
	if p == PhaseUp {
		return "up"
	}
	return "down"
}

// Backoff of the dialing side, and how often a refused dial asks the peer
// over UDP whether a firewall is in the way.
const (
	backoffMin        = 100 * time.Millisecond
	backoffMax        = 2 * time.Second
	refusedProbeEvery = 5 * time.Second
)

// core is one peer's state: what its connection's end means, the backoff,
// and what status shows. It is pure: every method takes the time, none
// does I/O. The driver (liveness.go) holds it under a lock.
type core struct {
	peer string // name for messages

	phase   Phase
	since   time.Time // of the current phase
	speaks  bool      // a hello was ever completed
	goodbye string    // reason the peer gave on the current connection
	how     End       // how the last confirmable end happened

	backoff time.Duration
	retryAt time.Time
	dialErr string
	probeAt time.Time // next UDP probe after refused dials

	lastEnd   string
	lastEndAt time.Time
	problem   string

	ups, goodbyes, crashes, aliveAfterEnd, unconfirmed uint64
}

// up records a connection whose hello was exchanged.
func (c *core) up(now time.Time) {
	c.phase, c.since, c.speaks, c.goodbye = PhaseUp, now, true, ""
	c.backoff, c.dialErr, c.problem = 0, "", ""
	c.ups++
}

// bye records the peer's "closing on purpose" message.
func (c *core) bye(reason string) {
	if reason == "" {
		reason = "no reason given"
	}
	c.goodbye = reason
}

// ended records the end of the current connection and reports whether the
// peer's host must be asked if its process is gone: only for a connection
// that completed its hello and ended with a FIN or a RST without a
// goodbye first.
func (c *core) ended(now time.Time, how End, err error) (confirm bool) {
	wasUp := c.phase == PhaseUp
	c.phase, c.since = PhaseDown, now
	c.retryAt = now // the dialing side reconnects at once, then backs off
	c.lastEndAt = now
	switch {
	case !wasUp:
		c.lastEnd = fmt.Sprintf("connection %s before the hello", how)
	case c.goodbye != "":
		c.goodbyes++
		c.lastEnd = "goodbye: " + c.goodbye
	case how == EndEOF || how == EndReset:
		c.how = how
		c.lastEnd = fmt.Sprintf("%s without a goodbye", how)
		return true
	default:
		c.lastEnd = how.String()
		if err != nil && how == EndOther {
			c.lastEnd += ": " + err.Error()
		}
	}
	return false
}

// verdict takes the answer to the second question and reports whether the
// crash is confirmed (report it once). When the two signals disagree
// nothing is acted on: the RFC timers decide.
func (c *core) verdict(now time.Time, v Verdict, port uint16) (gone bool) {
	switch v {
	case Gone:
		c.crashes++
		c.lastEnd = fmt.Sprintf("process gone: tcp/%d %s without a goodbye, udp/%d port unreachable", port, c.how, port)
		return true
	case Alive:
		c.aliveAfterEnd++
		c.lastEnd = fmt.Sprintf("tcp/%d %s without a goodbye, but %s's vipd answers on udp/%d", port, c.how, c.peer, port)
		c.problem = fmt.Sprintf("the liveness connection to %s was %s without a goodbye while %s's vipd answers on udp/%d: a firewall or middlebox is cutting tcp/%d; a crash of %s is detected by the RFC timers only until that is fixed", c.peer, c.how, c.peer, port, port, c.peer)
	default:
		c.unconfirmed++
		c.lastEnd = fmt.Sprintf("tcp/%d %s without a goodbye, not confirmed (no answer on udp/%d): left to the RFC timers", port, c.how, port)
	}
	return false
}

// reason is what a confirmed crash says in the VRRP transition.
func (c *core) reason(port uint16) string {
	return fmt.Sprintf("liveness: tcp/%d %s without a goodbye, udp/%d port unreachable", port, c.how, port)
}

// dialFailed backs off the next attempt and reports whether to ask the
// peer's host over UDP if a firewall is refusing the connection (a peer
// that has spoken liveness before, now refused).
func (c *core) dialFailed(now time.Time, err error, refused bool, jitter float64) (probe bool) {
	c.backoff = min(max(2*c.backoff, backoffMin), backoffMax)
	wait := time.Duration(float64(c.backoff) * (1 + jitter))
	c.retryAt = now.Add(wait)
	c.dialErr = err.Error()
	if refused && c.speaks && !now.Before(c.probeAt) {
		c.probeAt = now.Add(refusedProbeEvery)
		return true
	}
	return false
}

// refusedVerdict takes the answer to a probe after a refused dial.
func (c *core) refusedVerdict(v Verdict, port uint16) {
	if v == Alive {
		c.problem = fmt.Sprintf("%s refuses tcp/%d while its vipd answers on udp/%d: a firewall rejects tcp/%d; a crash of %s is detected by the RFC timers only until that is fixed", c.peer, port, port, port, c.peer)
	}
}

// errProtocol is a peer that spoke something else on the port.
var errProtocol = errors.New("liveness: protocol error")
