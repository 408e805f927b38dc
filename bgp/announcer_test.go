package bgp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The announcement state machine, one test per rule, driven with a fake
// clock: the harness keeps "now" and delivers TimerFired exactly at the
// deadline the machine asks for. Rules marked "issue 14" come from the
// issue that specifies BGP mode; RFC 8326 is GRACEFUL_SHUTDOWN.

var (
	vipA = netip.MustParseAddr("192.0.2.10")
	vipB = netip.MustParseAddr("192.0.2.11")
)

type annHarness struct {
	t   *testing.T
	m   *Announcer
	now time.Time
}

func newAnn(t *testing.T, drain time.Duration, vips ...netip.Addr) *annHarness {
	t.Helper()
	if len(vips) == 0 {
		vips = []netip.Addr{vipA}
	}
	m, err := NewAnnouncer(AnnouncerConfig{VIPs: vips, DrainTime: drain})
	if err != nil {
		t.Fatal(err)
	}
	return &annHarness{t: t, m: m, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (h *annHarness) step(ev AnnouncerEvent) string { return kinds(h.m.Step(h.now, ev)) }

// advance moves the clock by d, firing every deadline that falls due on
// the way, and returns the actions of those firings.
func (h *annHarness) advance(d time.Duration) string {
	end := h.now.Add(d)
	var out []string
	for range 100 {
		at, gen := h.m.Deadline()
		if at.IsZero() || at.After(end) {
			break
		}
		h.now = at
		if s := kinds(h.m.Step(h.now, TimerFired{Gen: gen})); s != "" {
			out = append(out, s)
		}
	}
	h.now = end
	return strings.Join(out, " | ")
}

// announced starts the machine and brings every VIP to Announced.
func (h *annHarness) announced(vips ...netip.Addr) {
	h.t.Helper()
	if len(vips) == 0 {
		vips = []netip.Addr{vipA}
	}
	h.step(Start{})
	h.step(Sessions{Established: 1})
	for _, v := range vips {
		h.step(BackendsChanged{VIP: v, OK: true, Reason: "3 of 3 healthy"})
	}
	for _, v := range vips {
		if got := h.state(v); got != Announced {
			h.t.Fatalf("%v is %s after healthy backends, want announced", v, got)
		}
	}
}

func (h *annHarness) vipStatus(v netip.Addr) VIPStatus {
	for _, s := range h.m.Status().VIPs {
		if s.VIP == v {
			return s
		}
	}
	h.t.Fatalf("no status for %v", v)
	return VIPStatus{}
}

func (h *annHarness) state(v netip.Addr) string { return h.vipStatus(v).State }

// kinds renders actions compactly: "withdraw(.10)"; a transition is
// "->draining(.10)".
func kinds(acts []Action) string {
	var out []string
	for _, a := range acts {
		who := ""
		if a.VIP.IsValid() {
			who = "(." + strings.Split(a.VIP.String(), ".")[3] + ")"
		}
		if a.Kind == ActionTransition {
			out = append(out, "->"+a.To+who)
			continue
		}
		out = append(out, a.Kind.String()+who)
	}
	return strings.Join(out, " ")
}

func want(t *testing.T, what, got, wantS string) {
	t.Helper()
	if got != wantS {
		t.Errorf("%s:\n got  %q\n want %q", what, got, wantS)
	}
}

// A starting node removes a VIP left on the host by a crashed run and
// announces nothing until its health checks have completed a round.
// Reference: issue 14 (health-gated announcement); the same rule as a VRRP
// node that does not start as MASTER.
func TestAnnouncerStartAnnouncesNothingBeforeChecks(t *testing.T) {
	h := newAnn(t, 5*time.Second, vipA, vipB)
	want(t, "start", h.step(Start{}), "remove VIP(.10) remove VIP(.11)")
	want(t, "time passes", h.advance(time.Minute), "")
	if s := h.vipStatus(vipA); s.State != Withdrawn || s.Reason != waitingForChecks {
		t.Errorf("status %+v, want withdrawn waiting for checks", s)
	}
}

// Becoming announced: bind the listeners, put the VIP on the host, then
// tell the routers, so no router sends a client before the node answers.
// Reference: issue 14 (become announcing = bind listeners then Announce).
func TestAnnouncerAnnounceOrder(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.step(Start{})
	want(t, "backends ok", h.step(BackendsChanged{VIP: vipA, OK: true, Reason: "3 of 3"}),
		"->announced(.10) listen(.10) add VIP(.10) announce(.10)")
	want(t, "same verdict again", h.step(BackendsChanged{VIP: vipA, OK: true, Reason: "3 of 3"}), "")
}

// Backends failing withdraw at once (no drain: there is nothing to serve
// with), then the address, listeners and connections go.
// Reference: issue 14 (backends failed = Withdraw at once, then close
// listeners).
func TestAnnouncerBackendsFailWithdrawAtOnce(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	want(t, "backends fail", h.step(BackendsChanged{VIP: vipA, OK: false, Reason: "0 of 3 healthy behind kubernetes, need 1"}),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
	if s := h.vipStatus(vipA); s.Reason != "backends: 0 of 3 healthy behind kubernetes, need 1" {
		t.Errorf("reason %q", s.Reason)
	}
	want(t, "backends back", h.step(BackendsChanged{VIP: vipA, OK: true, Reason: "1 of 3"}),
		"->announced(.10) listen(.10) add VIP(.10) announce(.10)")
}

// The withdraw action carries the reason the speaker shows.
func TestAnnouncerWithdrawCarriesReason(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	acts := h.m.Step(h.now, BackendsChanged{VIP: vipA, OK: false, Reason: "0 of 3 healthy"})
	if acts[1].Kind != ActionWithdraw || acts[1].Reason != "backends: 0 of 3 healthy" {
		t.Errorf("withdraw action %+v", acts[1])
	}
}

// A planned withdrawal (vipd drain self): Drain (GRACEFUL_SHUTDOWN and the
// worst MED) while still serving, and only after DrainTime the withdrawal
// and the rest. Reference: RFC 8326 section 4; issue 14 (planned
// withdrawal without failed connections).
func TestAnnouncerOperatorDrainIsPlanned(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	want(t, "drain self", h.step(OperatorDrain{On: true}), "->draining(.10) drain(.10)")
	if s := h.vipStatus(vipA); s.WithdrawAt != h.now.Add(5*time.Second) || s.Reason != reasonDrained {
		t.Errorf("draining status %+v", s)
	}
	want(t, "just before the drain time", h.advance(5*time.Second-time.Millisecond), "")
	want(t, "at the drain time", h.advance(time.Millisecond),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
	want(t, "drained stays withdrawn", h.step(BackendsChanged{VIP: vipA, OK: true, Reason: "3 of 3"}), "")
	if s := h.vipStatus(vipA); s.Reason != reasonDrained {
		t.Errorf("reason %q, want %q", s.Reason, reasonDrained)
	}
	want(t, "undo", h.step(OperatorDrain{On: false}), "->announced(.10) listen(.10) add VIP(.10) announce(.10)")
}

// Undoing a drain before the withdrawal re-announces with the node's own
// attributes; the listeners never went away.
func TestAnnouncerUndrainWhileDraining(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	h.step(OperatorDrain{On: true})
	h.advance(2 * time.Second)
	want(t, "undo", h.step(OperatorDrain{On: false}), "->announced(.10) announce(.10)")
	want(t, "the old drain deadline does nothing", h.advance(10*time.Second), "")
}

// Backends failing during a planned withdrawal cut it short: withdraw now.
// Reference: issue 14.
func TestAnnouncerBackendsFailWhileDraining(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	h.step(OperatorDrain{On: true})
	want(t, "backends fail", h.step(BackendsChanged{VIP: vipA, OK: false, Reason: "0 of 3"}),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
	if s := h.vipStatus(vipA); !strings.HasPrefix(s.Reason, "backends: 0 of 3") || !strings.Contains(s.Reason, reasonDrained) {
		t.Errorf("reason %q, want the backends and the drain", s.Reason)
	}
}

// SIGTERM: every announced VIP leaves the planned way, and once none is
// announced the speaker is ended (CEASE) and the machine stops.
// Reference: issue 14 (planned leave ... then end the speaker).
func TestAnnouncerStopIsPlannedThenCease(t *testing.T) {
	h := newAnn(t, 5*time.Second, vipA, vipB)
	h.announced(vipA, vipB)
	want(t, "stop", h.step(Stop{}), "->draining(.10) drain(.10) ->draining(.11) drain(.11)")
	want(t, "drain time", h.advance(5*time.Second),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10) ->withdrawn(.11) withdraw(.11) remove VIP(.11) unlisten(.11) close connections(.11) stop speaker stopped")
	if !h.m.Status().Stopped {
		t.Error("not stopped")
	}
	want(t, "nothing after stopped", h.step(BackendsChanged{VIP: vipA, OK: true}), "")
	want(t, "no timer after stopped", h.advance(time.Hour), "")
}

// A stop with nothing announced ends at once; so does a stop before Start.
func TestAnnouncerStopWithNothingAnnounced(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	want(t, "stop before start", h.step(Stop{}), "stop speaker stopped")
	want(t, "start after stop", h.step(Start{}), "")

	h = newAnn(t, 5*time.Second)
	h.step(Start{})
	h.step(BackendsChanged{VIP: vipA, OK: false, Reason: "0 of 3"})
	want(t, "stop while withdrawn", h.step(Stop{}), "stop speaker stopped")
}

// A stop during an operator drain keeps the drain's deadline: the routers
// have been moving away since the drain began.
func TestAnnouncerStopDuringDrainKeepsDeadline(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	h.step(OperatorDrain{On: true})
	h.advance(3 * time.Second)
	want(t, "stop", h.step(Stop{}), "")
	want(t, "2 s later", h.advance(2*time.Second),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10) stop speaker stopped")
}

// A hard stop (the process torn down without a graceful stop) withdraws
// at once, with no drain, and ends the speaker.
func TestAnnouncerHardStop(t *testing.T) {
	h := newAnn(t, 5*time.Second, vipA, vipB)
	h.announced(vipA, vipB)
	h.step(OperatorDrain{On: true}) // one way or another, all leave at once
	want(t, "hard stop", h.step(HardStop{}),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10) ->withdrawn(.11) withdraw(.11) remove VIP(.11) unlisten(.11) close connections(.11) stop speaker stopped")
}

// With drain_time 0 a planned leave is a withdrawal at once.
func TestAnnouncerZeroDrainTime(t *testing.T) {
	h := newAnn(t, 0)
	h.announced()
	want(t, "drain self", h.step(OperatorDrain{On: true}),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
}

// A planned drill drains, withdraws after the drain time, holds back for
// Hold, then announces again. Reference: issue 14 (vipd drill failover in
// BGP mode runs drain -> withdraw on this node).
func TestAnnouncerDrillPlanned(t *testing.T) {
	h := newAnn(t, 2*time.Second)
	h.announced()
	want(t, "drill", h.step(Drill{Hold: 10 * time.Second}), "->draining(.10) drain(.10)")
	want(t, "drain time", h.advance(2*time.Second),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
	st := h.m.Status()
	if !st.Drill || !st.DrillUntil.Equal(h.now.Add(10*time.Second)) {
		t.Errorf("drill status %+v, want holding until now+10s", st)
	}
	want(t, "during the hold", h.advance(10*time.Second-time.Millisecond), "")
	want(t, "hold over", h.advance(time.Millisecond), "->announced(.10) listen(.10) add VIP(.10) announce(.10)")
	if h.m.Status().Drill {
		t.Error("drill still set after its hold")
	}
}

// A hard drill rehearses a crash or failed backends: withdraw at once.
func TestAnnouncerDrillHard(t *testing.T) {
	h := newAnn(t, 2*time.Second)
	h.announced()
	want(t, "hard drill", h.step(Drill{Hard: true, Hold: 3 * time.Second}),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
	want(t, "hold over", h.advance(3*time.Second), "->announced(.10) listen(.10) add VIP(.10) announce(.10)")
}

// A drill needs an announced VIP; a second drill while one runs is
// ignored; DrillEnd ends the hold at once (nobody else served the VIP).
func TestAnnouncerDrillRefusedAndEnded(t *testing.T) {
	h := newAnn(t, 2*time.Second)
	h.step(Start{})
	want(t, "drill with nothing announced", h.step(Drill{Hold: time.Second}), "")
	if h.m.Status().Drill {
		t.Error("a drill started with nothing announced")
	}
	h.step(BackendsChanged{VIP: vipA, OK: true})
	h.step(Drill{Hold: time.Minute})
	want(t, "second drill", h.step(Drill{Hold: time.Minute}), "")
	h.advance(2 * time.Second)
	want(t, "drill ended", h.step(DrillEnd{}), "->announced(.10) listen(.10) add VIP(.10) announce(.10)")
}

// Backends failing on one VIP leave the other announced.
func TestAnnouncerVIPsAreIndependent(t *testing.T) {
	h := newAnn(t, 5*time.Second, vipA, vipB)
	h.announced(vipA, vipB)
	want(t, "B's backends fail", h.step(BackendsChanged{VIP: vipB, OK: false, Reason: "0 of 2"}),
		"->withdrawn(.11) withdraw(.11) remove VIP(.11) unlisten(.11) close connections(.11)")
	if h.state(vipA) != Announced {
		t.Error("A left with B")
	}
}

// A VIP whose listener cannot be bound must not stay announced: it is let
// go of and tried again after 1 s, 2 s, 4 s ... 30 s; the backoff starts
// afresh once it served. vipd's rule (the same as a VRRP node that cannot
// serve).
func TestAnnouncerEffectFailedRetriesWithBackoff(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	h.step(BackendsChanged{VIP: vipA, OK: false, Reason: "0"})
	h.step(BackendsChanged{VIP: vipA, OK: true, Reason: "1"})
	boom := errors.New("address in use")
	fail := func() string { return h.step(EffectFailed{VIP: vipA, Kind: ActionListen, Err: boom}) }
	want(t, "listen failed", fail(), "->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
	s := h.vipStatus(vipA)
	if !s.RetryAt.Equal(h.now.Add(time.Second)) || !strings.Contains(s.Reason, "cannot serve: listen failed: address in use") || s.Failures != 1 {
		t.Errorf("status after the failure %+v", s)
	}
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		want(t, "before the retry", h.advance(wait-time.Millisecond), "")
		want(t, "retry", h.advance(time.Millisecond), "->announced(.10) listen(.10) add VIP(.10) announce(.10)")
		fail()
	}
	// Served this time: the next failure waits 1 s again.
	h.advance(8 * time.Second)
	h.step(Sessions{Established: 1})
	fail()
	if s := h.vipStatus(vipA); !s.RetryAt.Equal(h.now.Add(time.Second)) {
		t.Errorf("retry at %v, want 1 s after a VIP that served", s.RetryAt.Sub(h.now))
	}
}

// The backoff stops at 30 s.
func TestAnnouncerBackoffCap(t *testing.T) {
	d := time.Duration(0)
	for range 10 {
		d = nextBackoff(d)
	}
	if d != 30*time.Second {
		t.Errorf("backoff %v, want 30s", d)
	}
}

// A drain the speaker refused cannot be graceful: withdraw at once.
func TestAnnouncerDrainFailedWithdrawsAtOnce(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	h.step(OperatorDrain{On: true})
	want(t, "drain failed", h.step(EffectFailed{VIP: vipA, Kind: ActionDrain, Err: errors.New("refused")}),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
	want(t, "no retry of a drained VIP", h.advance(time.Minute), "")
}

// A TimerFired armed for an older deadline is ignored.
func TestAnnouncerStaleTimer(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	h.step(OperatorDrain{On: true})
	_, gen := h.m.Deadline()
	h.step(OperatorDrain{On: false}) // the deadline goes away
	h.now = h.now.Add(5 * time.Second)
	want(t, "stale timer", h.step(TimerFired{Gen: gen}), "")
	if h.state(vipA) != Announced {
		t.Error("a stale timer withdrew the VIP")
	}
}

// Session state is status only: an announced VIP without an established
// session says no router has it; no action follows.
func TestAnnouncerSessionsAreStatusOnly(t *testing.T) {
	h := newAnn(t, 5*time.Second)
	h.announced()
	want(t, "sessions down", h.step(Sessions{Established: 0}), "")
	if s := h.vipStatus(vipA); s.State != Announced || s.Reason != reasonNoSession {
		t.Errorf("status %+v", s)
	}
	h.step(Sessions{Established: 2})
	if s := h.vipStatus(vipA); s.Reason == reasonNoSession {
		t.Errorf("reason %q with two sessions", s.Reason)
	}
}

// A reload that adds a frontend to an announced VIP binds it.
func TestAnnouncerRelisten(t *testing.T) {
	h := newAnn(t, 5*time.Second, vipA, vipB)
	h.announced(vipA)
	want(t, "announced", h.step(Relisten{VIP: vipA}), "listen(.10)")
	want(t, "withdrawn", h.step(Relisten{VIP: vipB}), "")
}

// Status says why each VIP is where it is.
func TestAnnouncerStatusReasons(t *testing.T) {
	h := newAnn(t, 5*time.Second, vipA, vipB)
	h.step(Start{})
	h.step(Sessions{Established: 1})
	h.step(BackendsChanged{VIP: vipA, OK: true, Reason: "2 of 2 healthy"})
	h.step(BackendsChanged{VIP: vipB, OK: false, Reason: "0 of 2 healthy"})
	got := map[netip.Addr]string{}
	for _, s := range h.m.Status().VIPs {
		got[s.VIP] = s.State + ": " + s.Reason
	}
	wantM := map[netip.Addr]string{vipA: "announced: backends: 2 of 2 healthy", vipB: "withdrawn: backends: 0 of 2 healthy"}
	if diff := cmp.Diff(wantM, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNewAnnouncerErrors(t *testing.T) {
	for _, cfg := range []AnnouncerConfig{
		{},
		{VIPs: []netip.Addr{vipA, vipA}},
		{VIPs: []netip.Addr{{}}},
		{VIPs: []netip.Addr{vipA}, DrainTime: -time.Second},
	} {
		if _, err := NewAnnouncer(cfg); err == nil {
			t.Errorf("NewAnnouncer(%+v): no error", cfg)
		}
	}
}

// A reload's drain time applies to the next drain; changed attributes
// re-announce the announced VIPs only.
func TestAnnouncerReconfigure(t *testing.T) {
	h := newAnn(t, 5*time.Second, vipA, vipB)
	h.announced(vipA)
	want(t, "reconfigure", h.step(Reconfigure{DrainTime: time.Second, Reannounce: true}), "announce(.10)")
	h.step(OperatorDrain{On: true})
	want(t, "new drain time", h.advance(time.Second),
		"->withdrawn(.10) withdraw(.10) remove VIP(.10) unlisten(.10) close connections(.10)")
	want(t, "nothing to re-announce", h.step(Reconfigure{DrainTime: time.Second, Reannounce: true}), "")
}
