package vrrp

import (
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// roundTrip snapshots m, sends the snapshot through JSON as the restart
// does, and restores it under cfg at now.
func roundTrip(t *testing.T, m *Machine, cfg Config, now time.Time) *Machine {
	t.Helper()
	s, err := m.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back MachineSnapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, back, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Fatalf("snapshot JSON round trip (-want +got):\n%s", diff)
	}
	r, err := RestoreMachine(cfg, back, now)
	if err != nil {
		t.Fatalf("RestoreMachine: %v", err)
	}
	return r
}

// vipd's rule (hitless restart): a MASTER taken up by a new process makes
// no transition and sends its next advert at the old deadline, and every
// interval after; a backup then hears no gap longer than one interval.
func TestRestoreMasterKeepsAdvertSchedule(t *testing.T) {
	m, now := startMachine(t, testConfig(200), true)
	before := m.Status()
	mid := now.Add(400 * time.Millisecond) // frozen between two adverts
	r := roundTrip(t, m, testConfig(200), mid)
	if diff := cmp.Diff(before, r.Status(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("status after restore (-want +got):\n%s", diff)
	}
	mustDeadline(t, r, now.Add(time.Second))
	at, got := fire(t, r)
	diffActions(t, advert(200), got)
	_, got = fire(t, r)
	diffActions(t, advert(200), got)
	mustDeadline(t, r, at.Add(2*time.Second))
}

// A deadline that passed while the state travelled fires at once.
func TestRestoreLateDeadlineFiresAtOnce(t *testing.T) {
	m, now := startMachine(t, testConfig(200), true)
	late := now.Add(1500 * time.Millisecond)
	r := roundTrip(t, m, testConfig(200), late)
	at, _ := r.Deadline()
	if at.After(late) {
		t.Fatalf("deadline %v is after now %v: the advert due at %v would be later still", at, late, now.Add(time.Second))
	}
	_, got := fire(t, r)
	diffActions(t, advert(200), got)
}

// A BACKUP keeps its Master_Down_Timer and the master it follows: with no
// advert it takes over exactly when the old process would have, and an
// advert restarts the timer as before.
// Reference: RFC 9568 section 6.4.2
func TestRestoreBackupKeepsDownTimer(t *testing.T) {
	m, _ := startMachine(t, testConfig(100), false)
	m.Step(t0.Add(time.Second), AdvertReceived{From: addrB, Priority: 150, Interval: 2 * time.Second})
	want, _ := m.Deadline()
	r := roundTrip(t, m, testConfig(100), t0.Add(2*time.Second))
	mustDeadline(t, r, want)
	if got := r.Status(); got.MasterAddr != addrB || got.MasterInterval != 2*time.Second {
		t.Errorf("master %v interval %v, want %v 2s", got.MasterAddr, got.MasterInterval, addrB)
	}
	r.Step(t0.Add(3*time.Second), AdvertReceived{From: addrB, Priority: 150, Interval: 2 * time.Second})
	mustDeadline(t, r, t0.Add(3*time.Second).Add(r.Status().DownInterval))
	_, got := fire(t, r)
	diffActions(t, cat(becameMaster, advert(100)), got)
}

// Election settings change with the new process's config, without a
// transition: a MASTER advertises the new interval from its next advert,
// no later than one new interval away; the address owner keeps 255.
func TestRestoreUnderChangedConfig(t *testing.T) {
	m, now := startMachine(t, testConfig(200), true)
	cfg := testConfig(210)
	cfg.AdvertInterval = 200 * time.Millisecond
	cfg.Preempt = false
	r := roundTrip(t, m, cfg, now.Add(100*time.Millisecond))
	st := r.Status()
	if st.State != StateMaster || st.MasterInterval != 200*time.Millisecond || st.EffectivePriority != 200 {
		t.Errorf("state %v interval %v priority %d, want MASTER 200ms 200 (the trackers move it)", st.State, st.MasterInterval, st.EffectivePriority)
	}
	mustDeadline(t, r, now.Add(300*time.Millisecond))
	at, _ := fire(t, r)
	mustDeadline(t, r, at.Add(200*time.Millisecond))

	owner := roundTrip(t, m, testConfig(255), now)
	if p := owner.Status().EffectivePriority; p != 255 {
		t.Errorf("owner's priority %d, want 255", p)
	}
}

// No snapshot while a handover is under way or after a stop: the new
// process could not finish the handover the way it was started.
func TestSnapshotRefused(t *testing.T) {
	leaving, now := startMachine(t, testConfig(200), true)
	leaving.Step(now, Leave{Hold: time.Second})
	stopped := newMachine(t, testConfig(100))
	stopped.Step(t0, Shutdown{})
	for name, m := range map[string]*Machine{"leaving": leaving, "stopped": stopped, "init": newMachine(t, testConfig(100))} {
		if _, err := m.Snapshot(); !errors.Is(err, ErrNoSnapshot) {
			t.Errorf("%s: Snapshot error %v, want ErrNoSnapshot", name, err)
		}
	}
	if _, err := RestoreMachine(testConfig(100), MachineSnapshot{State: "INIT"}, t0); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("restore INIT: %v, want ErrNoSnapshot", err)
	}
	if _, err := RestoreMachine(testConfig(100), MachineSnapshot{State: "BOGUS"}, t0); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("restore BOGUS: %v, want ErrNoSnapshot", err)
	}
}

// FAULT from a failed effect keeps its retry deadline and reason.
func TestRestoreFaultKeepsRetry(t *testing.T) {
	m, now := startMachine(t, testConfig(200), true)
	m.Step(now, EffectFailed{Kind: ActionAddVIP, Err: errors.New("boom")})
	want, _ := m.Deadline()
	r := roundTrip(t, m, testConfig(200), now)
	if st := r.Status(); st.State != StateFault || st.EffectFault == "" {
		t.Fatalf("state %v fault %q, want FAULT with the reason", st.State, st.EffectFault)
	}
	mustDeadline(t, r, want)
}

// vipd's rule: a BACKUP taken up after its Master_Down_Timer passed (the
// freeze outlasted it) reads the adverts queued meanwhile before the
// timer can fire: it runs one more Master_Adver_Interval.
func TestRestoreBackupReadsQueuedAdvertsFirst(t *testing.T) {
	m, _ := startMachine(t, testConfig(100), false)
	m.Step(t0, AdvertReceived{From: addrB, Priority: 150, Interval: time.Second})
	due, _ := m.Deadline()
	late := due.Add(time.Second)
	r := roundTrip(t, m, testConfig(100), late)
	mustDeadline(t, r, late.Add(time.Second))
	r.Step(late, AdvertReceived{From: addrB, Priority: 150, Interval: time.Second})
	if st := r.Status(); st.State != StateBackup || st.MasterAddr != addrB {
		t.Errorf("%v following %v, want BACKUP following %v", st.State, st.MasterAddr, addrB)
	}
}
