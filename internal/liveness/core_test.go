package liveness

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// The rule of the package: only a connection that completed its hello and
// ended with a FIN or a RST without a goodbye first is worth asking about;
// a goodbye, a timeout, an end before the hello or our own close never is.
func TestCoreWhichEndsAreAsked(t *testing.T) {
	tests := []struct {
		name    string
		hello   bool
		goodbye string
		how     End
		confirm bool
	}{
		{"FIN without goodbye", true, "", EndEOF, true},
		{"RST without goodbye", true, "", EndReset, true},
		{"FIN after goodbye (planned stop)", true, "stopping", EndEOF, false},
		{"RST after goodbye", true, "restart", EndReset, false},
		{"timeout (dead host, cut link)", true, "", EndOther, false},
		{"closed by this node", true, "", EndLocal, false},
		{"FIN before the hello (not a vipd)", false, "", EndEOF, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := core{peer: "lb1"}
			if tt.hello {
				c.up(t0)
			}
			if tt.goodbye != "" {
				c.bye(tt.goodbye)
			}
			if got := c.ended(t0.Add(time.Second), tt.how, errors.New("x")); got != tt.confirm {
				t.Errorf("ended(%v) = %v, want %v", tt.how, got, tt.confirm)
			}
			if c.phase != PhaseDown {
				t.Errorf("phase %v after the end", c.phase)
			}
			if tt.goodbye != "" && (c.goodbyes != 1 || !strings.Contains(c.lastEnd, tt.goodbye)) {
				t.Errorf("goodbye not recorded: %+v", c)
			}
		})
	}
}

// The second signal decides: port unreachable confirms; an echo (the
// process lives: a firewall reset the connection) or no answer leaves it
// to the RFC timers, and an echo is a problem an operator must see.
func TestCoreVerdict(t *testing.T) {
	for _, tt := range []struct {
		v       Verdict
		gone    bool
		problem bool
	}{{Gone, true, false}, {Alive, false, true}, {Unknown, false, false}} {
		c := core{peer: "lb1"}
		c.up(t0)
		if !c.ended(t0, EndReset, nil) {
			t.Fatal("not asked")
		}
		if got := c.verdict(t0, tt.v, 9602); got != tt.gone {
			t.Errorf("%v: gone = %v, want %v", tt.v, got, tt.gone)
		}
		if (c.problem != "") != tt.problem {
			t.Errorf("%v: problem %q", tt.v, c.problem)
		}
		if tt.problem && !strings.Contains(c.problem, "firewall") {
			t.Errorf("problem %q does not name the likely cause", c.problem)
		}
		if n := c.crashes + c.aliveAfterEnd + c.unconfirmed; n != 1 {
			t.Errorf("%v counted %d times", tt.v, n)
		}
	}
	c := core{peer: "lb1", how: EndEOF}
	if r := c.reason(9602); r != "liveness: tcp/9602 closed (FIN) without a goodbye, udp/9602 port unreachable" {
		t.Errorf("reason %q", r)
	}
}

// The dialing side backs off 100 ms, doubling to 2 s (within the jitter),
// and a hello starts it afresh. A dial refused by a peer that spoke
// liveness before is worth a UDP question (a firewall?), at most every
// 5 s.
func TestCoreBackoffAndRefused(t *testing.T) {
	c := core{peer: "lb1"}
	now := t0
	var waits []time.Duration
	asked := 0
	for range 7 {
		if c.dialFailed(now, errors.New("refused"), true, 0) {
			asked++
		}
		waits = append(waits, c.retryAt.Sub(now))
		now = c.retryAt
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", waits, want)
		}
	}
	if asked != 0 {
		t.Errorf("asked %d times about a peer that never spoke liveness (keepalived)", asked)
	}
	c.up(now)
	c.ended(now, EndLocal, nil)
	if !c.retryAt.Equal(now) || c.backoff != 0 {
		t.Errorf("after a hello the next dial is at once: retry %v backoff %v", c.retryAt.Sub(now), c.backoff)
	}
	if !c.dialFailed(now, errors.New("refused"), true, 0) {
		t.Errorf("a refused dial of a peer that spoke liveness is not asked about")
	}
	if c.dialFailed(now.Add(time.Second), errors.New("refused"), true, 0) {
		t.Errorf("asked again within 5 s")
	}
	c.refusedVerdict(Alive, 9602)
	if !strings.Contains(c.problem, "firewall rejects tcp/9602") {
		t.Errorf("problem %q", c.problem)
	}
	if !c.dialFailed(now.Add(5*time.Second), errors.New("refused"), true, 0.1) || c.retryAt.Sub(now.Add(5*time.Second)) != 440*time.Millisecond {
		t.Errorf("jitter or the 5 s re-ask: retry in %v", c.retryAt.Sub(now.Add(5*time.Second)))
	}
	c.up(now)
	if c.problem != "" {
		t.Errorf("problem kept after a good connection: %q", c.problem)
	}
}
