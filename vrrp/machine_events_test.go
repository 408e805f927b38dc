package vrrp

import (
	"errors"
	"testing"
	"time"
)

// vipd's rule (DESIGN.md section 2): a transition carries the effective
// priority, so the effects (log line, notify hook) never ask the runner.
func TestMachineTransitionCarriesPriority(t *testing.T) {
	m := newMachine(t, testConfig(150))
	m.Step(t0, PriorityChanged{Priority: 120})
	got := m.Step(t0, Start{})
	if len(got) == 0 || got[0].Kind != ActionTransition || got[0].Priority != 120 {
		t.Fatalf("start: %+v, want a transition carrying priority 120", got)
	}
}

// vipd's rule (DESIGN.md section 2, one owner of the VIP): a VIP removed by
// something else is an event; a MASTER puts it back and re-announces, any
// other state ignores it.
func TestMachineVIPRemoved(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	diffActions(t, []Action{{Kind: ActionAddVIP}, {Kind: ActionAnnounce}}, m.Step(now, VIPRemoved{}))
	b := newMachine(t, testConfig(100))
	b.Step(t0, Start{})
	diffActions(t, nil, b.Step(t0, VIPRemoved{}))
	// While handing over the VIP is still ours: restore it too.
	m.Step(now, Leave{})
	diffActions(t, []Action{{Kind: ActionAddVIP}, {Kind: ActionAnnounce}}, m.Step(now, VIPRemoved{}))
}

// vipd's rule: frontends added by a reload are bound by a MASTER; a
// BACKUP binds nothing.
func TestMachineRelisten(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	diffActions(t, []Action{{Kind: ActionListen}}, m.Step(now, Relisten{}))
	b := newMachine(t, testConfig(100))
	b.Step(t0, Start{})
	diffActions(t, nil, b.Step(t0, Relisten{}))
}

// vipd's rule: the link coming back while MASTER re-announces (a burst
// sent while it was down went nowhere); a BACKUP does nothing.
func TestMachineLinkUp(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	diffActions(t, []Action{{Kind: ActionAnnounce}}, m.Step(now, LinkUp{}))
	b := newMachine(t, testConfig(100))
	b.Step(t0, Start{})
	diffActions(t, nil, b.Step(t0, LinkUp{}))
}

// vipd's rule (DESIGN.md section 2): a MASTER that cannot listen or add the
// VIP cannot serve, so it must not claim the VIP. It tells the backups
// with priority 0, lets go of everything, goes FAULT with the reason, and
// rejoins after a backoff that doubles while it keeps failing and starts
// afresh once it served.
func TestMachineEffectFailedAsMaster(t *testing.T) {
	fault := []Action{
		{Kind: ActionTransition, From: StateMaster, To: StateFault},
		{Kind: ActionSendAdvert, Priority: 0},
		{Kind: ActionStopAnnounce}, {Kind: ActionRemoveVIP}, {Kind: ActionUnlisten}, {Kind: ActionCloseConns},
	}
	for _, kind := range []ActionKind{ActionListen, ActionAddVIP} {
		t.Run(kind.String(), func(t *testing.T) {
			m, now := startMachine(t, testConfig(150), true)
			got := m.Step(now, EffectFailed{Kind: kind, Err: errors.New("address in use")})
			diffActions(t, fault, got)
			if want := "cannot serve: " + kind.String() + " failed: address in use"; got[0].Reason != want {
				t.Errorf("reason = %q, want %q", got[0].Reason, want)
			}
			st := m.Status()
			if st.State != StateFault || st.EffectFault == "" || !st.RetryAt.Equal(now.Add(time.Second)) {
				t.Fatalf("status %+v, want FAULT retrying at +1s", st)
			}
			// Adverts are ignored meanwhile.
			diffActions(t, nil, m.Step(now.Add(100*time.Millisecond), AdvertReceived{From: addrB, Priority: 50, Interval: time.Second}))
			at, got := fire(t, m)
			mustEqualTime(t, "retried", at, now.Add(time.Second))
			diffActions(t, []Action{{Kind: ActionTransition, From: StateFault, To: StateBackup}}, got)
			// It wins again and fails again: twice the wait.
			at, _ = fire(t, m)
			diffActions(t, fault, m.Step(at, EffectFailed{Kind: kind, Err: errors.New("again")}))
			mustDeadline(t, m, at.Add(2*time.Second))
			at, _ = fire(t, m) // back to BACKUP
			at, _ = fire(t, m) // MASTER
			// This time it serves: its first periodic advert resets the backoff.
			at, got = fire(t, m)
			diffActions(t, advert(150), got)
			diffActions(t, fault, m.Step(at, EffectFailed{Kind: kind, Err: errors.New("later")}))
			mustDeadline(t, m, at.Add(time.Second))
		})
	}
}

// vipd's rule: the retry after a failed effect does not override a
// weight-0 tracker that fails meanwhile: the node stays FAULT until it
// clears; and a tracker clearing does not skip the retry wait.
func TestMachineEffectFaultAndTrackerFault(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	m.Step(now, EffectFailed{Kind: ActionListen, Err: errors.New("boom")})
	m.Step(now, PriorityChanged{Priority: 150, Fault: true, Reason: "link down"})
	diffActions(t, nil, m.Step(now.Add(500*time.Millisecond), PriorityChanged{Priority: 150}))
	if st := m.Status().State; st != StateFault {
		t.Fatalf("tracker cleared before the retry: %v, want FAULT until the retry", st)
	}
	m.Step(now.Add(600*time.Millisecond), PriorityChanged{Priority: 150, Fault: true, Reason: "link down"})
	_, got := fire(t, m)
	diffActions(t, nil, got)
	if st := m.Status(); st.State != StateFault || st.EffectFault != "" {
		t.Fatalf("after the retry with the tracker failing: %+v, want FAULT (tracker) only", st)
	}
	got = m.Step(now.Add(2*time.Second), PriorityChanged{Priority: 150})
	diffActions(t, []Action{{Kind: ActionTransition, From: StateFault, To: StateBackup}}, got)
}

// vipd's rule: a VIP that could not be removed from a node that is not
// MASTER is removed again, with a doubling backoff; becoming MASTER ends
// the retries.
func TestMachineRemoveVIPRetried(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	m.Step(now, AdvertReceived{From: addrB, Priority: 200, Interval: time.Second})
	diffActions(t, nil, m.Step(now, EffectFailed{Kind: ActionRemoveVIP, Err: errors.New("busy")}))
	mustDeadline(t, m, now.Add(time.Second))
	at, got := fire(t, m)
	diffActions(t, []Action{{Kind: ActionRemoveVIP}}, got)
	m.Step(at, EffectFailed{Kind: ActionRemoveVIP, Err: errors.New("busy")})
	mustDeadline(t, m, at.Add(2*time.Second))
	// The removal is not retried once the node is MASTER again.
	m2, now2 := startMachine(t, testConfig(150), true)
	diffActions(t, nil, m2.Step(now2, EffectFailed{Kind: ActionRemoveVIP, Err: errors.New("x")}))
	mustDeadline(t, m2, now2.Add(time.Second)) // its advert timer, nothing else
}

// vipd's rule: a hard stop lets go of everything with no priority-0
// advert, from any state, and ends the machine.
func TestMachineHardStop(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	want := []Action{
		{Kind: ActionTransition, From: StateMaster, To: StateInit},
		{Kind: ActionStopAnnounce}, {Kind: ActionRemoveVIP}, {Kind: ActionUnlisten}, {Kind: ActionCloseConns},
		{Kind: ActionStopped},
	}
	diffActions(t, want, m.Step(now, HardStop{}))
	if !m.Status().Stopped {
		t.Error("not stopped")
	}
	diffActions(t, nil, m.Step(now, Start{}))

	b := newMachine(t, testConfig(100))
	b.Step(t0, Start{})
	diffActions(t, []Action{{Kind: ActionTransition, From: StateBackup, To: StateInit}, {Kind: ActionStopped}}, b.Step(t0, HardStop{}))
	mustDeadline(t, b, time.Time{})

	i := newMachine(t, testConfig(100))
	diffActions(t, []Action{{Kind: ActionStopped}}, i.Step(t0, HardStop{}))
}

// vipd's rule (DESIGN.md section 2): a stop requested before the instance
// started is honoured: the machine never starts.
func TestMachineShutdownBeforeStart(t *testing.T) {
	m := newMachine(t, testConfig(255))
	diffActions(t, []Action{{Kind: ActionStopped}}, m.Step(t0, Shutdown{}))
	diffActions(t, nil, m.Step(t0, Start{}))
	if st := m.Status(); st.State != StateInit || !st.Stopped {
		t.Errorf("status %+v, want stopped in INIT", st)
	}
}

// vipd's rule: a solo node (single-LB mode) is MASTER from the start with
// no adverts and no timers, and stops at once.
func TestMachineSolo(t *testing.T) {
	cfg := testConfig(255)
	cfg.Solo = true
	cfg.Addr = addrA
	m := newMachine(t, cfg)
	got := m.Step(t0, Start{})
	diffActions(t, []Action{
		{Kind: ActionTransition, From: StateInit, To: StateMaster},
		{Kind: ActionListen}, {Kind: ActionAddVIP}, {Kind: ActionAnnounce},
	}, got)
	mustDeadline(t, m, time.Time{})
	got = m.Step(t0.Add(time.Second), Shutdown{})
	diffActions(t, []Action{
		{Kind: ActionTransition, From: StateMaster, To: StateInit},
		{Kind: ActionStopAnnounce}, {Kind: ActionRemoveVIP}, {Kind: ActionUnlisten}, {Kind: ActionCloseConns},
		{Kind: ActionStopped},
	}, got)
	// A failed listen goes FAULT without a priority-0 advert, and retries.
	m2 := newMachine(t, cfg)
	m2.Step(t0, Start{})
	got = m2.Step(t0, EffectFailed{Kind: ActionListen, Err: errors.New("in use")})
	diffActions(t, []Action{
		{Kind: ActionTransition, From: StateMaster, To: StateFault},
		{Kind: ActionStopAnnounce}, {Kind: ActionRemoveVIP}, {Kind: ActionUnlisten}, {Kind: ActionCloseConns},
	}, got)
	_, got = fire(t, m2)
	diffActions(t, []Action{
		{Kind: ActionTransition, From: StateFault, To: StateMaster},
		{Kind: ActionListen}, {Kind: ActionAddVIP}, {Kind: ActionAnnounce},
	}, got)
}

// "Skew_Time: Time to skew Master_Down_Interval in seconds. Calculated as:
// ( (256 - Priority) / 256 )" — and a VRRPv2 backup keeps its own
// Advertisement_Interval: "The Advertisement interval ... is used for
// troubleshooting misconfigured routers".
// Reference: RFC 3768 sections 6.1 and 5.3.7
func TestMachineVersion2Timers(t *testing.T) {
	cfg := testConfig(100)
	cfg.Version = 2
	cfg.AdvertInterval = 2 * time.Second
	m := newMachine(t, cfg)
	m.Step(t0, Start{})
	skew := 609375 * time.Microsecond // (256-100)/256 s, not scaled by the 2 s interval
	if st := m.Status(); st.SkewTime != skew || st.DownInterval != 6*time.Second+skew {
		t.Errorf("skew %v down %v, want %v and %v", st.SkewTime, st.DownInterval, skew, 6*time.Second+skew)
	}
	m.Step(t0.Add(time.Second), AdvertReceived{From: addrB, Priority: 200, Interval: time.Second})
	if st := m.Status(); st.MasterInterval != 2*time.Second {
		t.Errorf("v2 backup adopted the advertised interval: %v", st.MasterInterval)
	}
	cfg.AdvertInterval = 1500 * time.Millisecond
	if _, err := NewMachine(cfg); err == nil {
		t.Error("a fractional VRRPv2 interval was accepted")
	}
}

// vipd's rule (keepalived's vrrp_garp_lower_prio_repeat and _delay): a
// MASTER answers every lower priority advert with an advert, but with a
// gratuitous ARP burst at most once per LowerPrioEvery while they keep
// coming; a lower priority heard after a quiet spell longer than
// Down_Interval (a healed partition) is answered at once.
func TestMachineLowerPriorityAnnounceRateLimited(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	lower := AdvertReceived{From: addrB, Priority: 100, Interval: time.Second}
	announces := 0
	for i := range 20 { // a deaf peer: one lower advert a second for 20 s
		for _, a := range m.Step(now.Add(time.Duration(i)*time.Second), lower) {
			if a.Kind == ActionAnnounce {
				announces++
				if a.Rounds != 1 {
					t.Errorf("burst of %d rounds, want 1", a.Rounds)
				}
			}
		}
	}
	if announces != 4 { // at 0, 5, 10 and 15 s
		t.Errorf("%d bursts in 20 s, want 4", announces)
	}
	// Quiet for longer than Down_Interval, then a new episode: at once.
	got := m.Step(now.Add(19*time.Second+5*time.Second), lower)
	diffActions(t, []Action{{Kind: ActionSendAdvert, Priority: 150}, {Kind: ActionAnnounce, Rounds: 1}}, got)
	// LowerPrioRounds 0: adverts only.
	cfg := testConfig(150)
	cfg.LowerPrioRounds = 0
	m2, now2 := startMachine(t, cfg, true)
	diffActions(t, advert(150), m2.Step(now2, lower))
}
