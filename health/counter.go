package health

import "strconv"

// Status is the health of a target as decided by a [Counter].
type Status uint8

// Status values. The zero value is Unknown: no result has been observed yet.
const (
	Unknown Status = iota
	Up
	Down
)

// String returns "UNKNOWN", "UP" or "DOWN", as operators see them in status
// output.
func (s Status) String() string {
	switch s {
	case Unknown:
		return "UNKNOWN"
	case Up:
		return "UP"
	case Down:
		return "DOWN"
	default:
		return "Status(" + strconv.Itoa(int(s)) + ")"
	}
}

// MarshalText encodes s as its String form, so that status JSON reads
// "UP" rather than 1.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Counter is the rise/fall state machine, with HAProxy semantics: after Fall
// consecutive failures an UP target goes DOWN, after Rise consecutive
// successes a DOWN target goes UP. A result that breaks a streak resets it, so
// a flapping target does not change state until a full streak is seen.
//
// A Counter starts Unknown and the first observation decides at once (UP on
// success, DOWN on failure), so a freshly started node converges in one round.
//
// Counter is a pure value: no time, no goroutines, not safe for concurrent use.
// The zero value is usable; Rise or Fall below 1 count as 1.
type Counter struct {
	Rise, Fall int

	status Status
	streak int // consecutive results against the current status
}

// Observe records one probe result and returns the status after it, and
// whether the status changed (Unknown to Up or Down counts as a change).
func (c *Counter) Observe(ok bool) (s Status, changed bool) {
	switch {
	case c.status == Unknown:
		c.status, c.streak = Down, 0
		if ok {
			c.status = Up
		}
		return c.status, true
	case ok == (c.status == Up):
		// The result agrees with the current status: any streak towards the
		// other status is broken.
		c.streak = 0
		return c.status, false
	}
	c.streak++
	need := max(c.Fall, 1)
	next := Down
	if c.status == Down {
		need, next = max(c.Rise, 1), Up
	}
	if c.streak < need {
		return c.status, false
	}
	c.status, c.streak = next, 0
	return c.status, true
}

// Status returns the current status without changing it.
func (c *Counter) Status() Status { return c.status }

// Streak returns how many consecutive results so far point away from the
// current status (HAProxy's "UP 1/3" going down, "DOWN 1/2" going up).
func (c *Counter) Streak() int { return c.streak }
