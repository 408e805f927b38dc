package vrrp

import (
	"strings"
	"testing"
	"time"
)

// A configured node that speaks the other VRRP version cannot hear us, so
// the election cannot run between us. vipd's rule: follow it rather than
// become a second MASTER (RFC 5798 section 8.4 leaves mixed VRRPv2/v3
// operation to the implementation and keeps it to migrations).

// vipd's rule: a BACKUP never preempts a node of the other version, even
// at a higher priority, and keeps following it past any Down_Interval.
func TestMachineFollowsOtherVersion(t *testing.T) {
	cfg := testConfig(150)
	cfg.AdvertInterval = 200 * time.Millisecond
	m := newMachine(t, cfg)
	m.Step(t0, Start{})
	m.Step(t0, Ready{})
	now := t0
	for i := 0; i < 20; i++ { // 20 s of a VRRPv2 master's 1 s adverts
		now = now.Add(time.Second)
		diffActions(t, nil, m.Step(now, AdvertReceived{From: addrB, Priority: 100, Interval: time.Second, OtherVersion: true}))
		if at, gen := m.Deadline(); !at.After(now) {
			t.Fatalf("deadline %v not after the advert at %v", at, now)
		} else if at.Before(now.Add(time.Second)) {
			diffActions(t, nil, m.Step(at, TimerFired{Gen: gen}))
		}
	}
	st := m.Status()
	if st.State != StateBackup || st.MasterAddr != addrB || st.MasterInterval != time.Second {
		t.Fatalf("status %+v, want BACKUP following %v at its 1 s", st, addrB)
	}
	mustDeadline(t, m, now.Add(3*time.Second+skewTime(150, time.Second)))
}

// vipd's rule: a node of the other version that leaves (priority 0) is
// taken over from after Skew_Time, as from a master of our own version:
// this is what makes a switch of VRRP version a planned handover.
// Reference: RFC 9568 section 6.4.2
func TestMachineOtherVersionPriorityZero(t *testing.T) {
	m := newMachine(t, testConfig(100))
	m.Step(t0, Start{})
	m.Step(t0.Add(time.Second), AdvertReceived{From: addrB, Priority: 200, Interval: time.Second, OtherVersion: true})
	now := t0.Add(1500 * time.Millisecond)
	diffActions(t, nil, m.Step(now, AdvertReceived{From: addrB, Priority: 0, Interval: time.Second, OtherVersion: true}))
	mustDeadline(t, m, now.Add(609375*time.Microsecond))
	_, got := fire(t, m)
	diffActions(t, cat(becameMaster, advert(100)), got)
}

// vipd's rule: a MASTER hearing a MASTER of the other version yields to
// it whatever the priorities (it will never yield to us), with no parting
// advert (it cannot hear one); its priority 0 needs no answer; the address
// owner keeps its address.
func TestMachineYieldsToOtherVersion(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	diffActions(t, nil, m.Step(now, AdvertReceived{From: addrB, Priority: 0, Interval: time.Second, OtherVersion: true}))
	got := m.Step(now, AdvertReceived{From: addrB, Priority: 100, Interval: time.Second, OtherVersion: true})
	diffActions(t, leftMaster, got)
	if !strings.Contains(got[0].Reason, "10.0.0.2 is MASTER too and speaks the other VRRP version") {
		t.Errorf("reason %q, want the other version named", got[0].Reason)
	}
	if st := m.Status(); st.State != StateBackup || st.MasterAddr != addrB {
		t.Errorf("status %+v, want BACKUP following %v", st, addrB)
	}

	owner, now := startMachine(t, testConfig(255), true)
	diffActions(t, nil, owner.Step(now, AdvertReceived{From: addrB, Priority: 100, Interval: time.Second, OtherVersion: true}))
	if s := owner.Status().State; s != StateMaster {
		t.Errorf("owner is %v, want MASTER", s)
	}
}

// vipd's rule (DESIGN.md section 4): a MASTER handing over takes the first
// advert of a successor of the other version as the new master: the break
// after the make, across a switch of VRRP version.
func TestMachineLeavingHearsOtherVersion(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	diffActions(t, advert(0), m.Step(now, Shutdown{}))
	got := m.Step(now.Add(600*time.Millisecond), AdvertReceived{From: addrB, Priority: 100, Interval: 200 * time.Millisecond, OtherVersion: true})
	diffActions(t, []Action{
		{Kind: ActionTransition, From: StateMaster, To: StateInit},
		{Kind: ActionStopAnnounce}, {Kind: ActionRemoveVIP}, {Kind: ActionUnlisten}, {Kind: ActionCloseConns},
		{Kind: ActionStopped},
	}, got)
}
