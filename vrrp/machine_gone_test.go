package vrrp

import (
	"strings"
	"testing"
	"time"
)

// The liveness signal (MasterGone) is vipd's rule, not RFC 9568's: a
// BACKUP told that its master's process is gone treats it like a
// priority-0 advert from that master (RFC 9568 section 6.4.2: "Set the
// Active_Down_Timer to Skew_Time"), on a quarter of the clock: GoneSkew.
// The order of the backups is that of Skew_Time (a higher priority waits
// less), which is what keeps an election with three or more nodes to one
// takeover; TestNetworkMasterGoneThreeNodes checks that.

// followingB is a BACKUP of priority 100 following 10.0.0.2 at 1 s.
func followingB(t *testing.T) (*Machine, time.Time) {
	t.Helper()
	m := newMachine(t, testConfig(100))
	m.Step(t0, Start{})
	now := t0.Add(time.Second)
	m.Step(now, AdvertReceived{From: addrB, Priority: 200, Interval: time.Second})
	return m, now
}

func TestMachineMasterGoneTakesOverAfterGoneSkew(t *testing.T) {
	m, now := followingB(t)
	now = now.Add(100 * time.Millisecond)
	if got := m.Step(now, MasterGone{From: addrB, Reason: "liveness: closed without goodbye"}); len(got) != 0 {
		t.Errorf("MasterGone: actions %v, want none until GoneSkew passed", got)
	}
	// Skew_Time at priority 100 and 1 s is 609.375 ms; a quarter of it.
	if d := GoneSkew(3, 100, time.Second); d != 609375*time.Microsecond/4 {
		t.Fatalf("GoneSkew = %v", d)
	}
	mustDeadline(t, m, now.Add(609375*time.Microsecond/4))
	_, got := fire(t, m)
	diffActions(t, cat(becameMaster, advert(100)), got)
	if !strings.Contains(got[0].Reason, "10.0.0.2's vipd is gone (liveness: closed without goodbye)") {
		t.Errorf("reason %q does not say whose process went and how it was learned", got[0].Reason)
	}
}

// Only the master being followed counts: a backup's own crash, or a
// router nobody follows, changes nothing; nor does any state but BACKUP.
func TestMachineMasterGoneOnlyForTheMaster(t *testing.T) {
	m, now := followingB(t)
	before, _ := m.Deadline()
	diffActions(t, nil, m.Step(now, MasterGone{From: addrC}))
	mustDeadline(t, m, before)

	master, mnow := startMachine(t, testConfig(150), true)
	diffActions(t, nil, master.Step(mnow, MasterGone{From: addrB}))
	if master.Status().State != StateMaster {
		t.Errorf("MASTER changed state on MasterGone")
	}
	init := newMachine(t, testConfig(100))
	diffActions(t, nil, init.Step(t0, MasterGone{From: addrB}))
	if init.Status().State != StateInit {
		t.Errorf("INIT changed state on MasterGone")
	}
}

// An advert from that master after all (the signal was wrong, or it came
// back) restarts Master_Down_Timer as any advert does: no takeover.
func TestMachineMasterGoneCancelledByAdvert(t *testing.T) {
	m, now := followingB(t)
	m.Step(now, MasterGone{From: addrB})
	now = now.Add(10 * time.Millisecond)
	m.Step(now, AdvertReceived{From: addrB, Priority: 200, Interval: time.Second})
	mustDeadline(t, m, now.Add(downInterval(100, time.Second)))
}

// A priority-0 advert from the same master never moves a sooner GoneSkew
// deadline later (the cleanup of a crashed vipd sends one); a MasterGone
// after a priority-0 advert moves the deadline sooner.
func TestMachineMasterGoneAndPriorityZero(t *testing.T) {
	m, now := followingB(t)
	m.Step(now, MasterGone{From: addrB})
	want := now.Add(GoneSkew(3, 100, time.Second))
	m.Step(now.Add(5*time.Millisecond), AdvertReceived{From: addrB, Priority: 0, Interval: time.Second})
	mustDeadline(t, m, want)

	m2, now2 := followingB(t)
	m2.Step(now2, AdvertReceived{From: addrB, Priority: 0, Interval: time.Second})
	mustDeadline(t, m2, now2.Add(SkewTime(3, 100, time.Second)))
	later := now2.Add(time.Millisecond)
	m2.Step(later, MasterGone{From: addrB})
	mustDeadline(t, m2, later.Add(GoneSkew(3, 100, time.Second)))
}
