package vrrp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// t0 is the fake clock's epoch; tests advance plain time.Time values.
var t0 = time.Date(2024, 4, 1, 12, 0, 0, 0, time.UTC)

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
	addrC = netip.MustParseAddr("10.0.0.3")
)

// ignoreReason compares actions by kind, priority and states only; the
// reason tests look at reasons on their own. A transition's priority is
// for logs; TestMachineTransitionCarriesPriority checks it.
var ignoreReason = cmp.Options{
	cmpopts.IgnoreFields(Action{}, "Reason"),
	cmp.Transformer("transitionPriority", func(a Action) Action {
		if a.Kind == ActionTransition {
			a.Priority = 0
		}
		return a
	}),
}

var (
	becameMaster = []Action{
		{Kind: ActionTransition, From: StateBackup, To: StateMaster},
		{Kind: ActionListen},
		{Kind: ActionAddVIP},
		{Kind: ActionAnnounce},
	}
	leftMaster = []Action{
		{Kind: ActionTransition, From: StateMaster, To: StateBackup},
		{Kind: ActionStopAnnounce},
		{Kind: ActionRemoveVIP},
		{Kind: ActionUnlisten},
		{Kind: ActionCloseConns},
	}
)

func testConfig(prio uint8) Config {
	return Config{
		VRID:            51,
		Priority:        prio,
		AdvertInterval:  time.Second,
		Preempt:         true,
		Addr:            addrA,
		LowerPrioRounds: 1,
		LowerPrioEvery:  5 * time.Second,
	}
}

func newMachine(t *testing.T, cfg Config) *Machine {
	t.Helper()
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatalf("NewMachine(%+v): %v", cfg, err)
	}
	return m
}

// startMachine returns a started machine; with master it has also won the
// down timer and is MASTER.
func startMachine(t *testing.T, cfg Config, master bool) (*Machine, time.Time) {
	t.Helper()
	m := newMachine(t, cfg)
	m.Step(t0, Start{})
	now := t0
	if master && m.Status().State != StateMaster {
		now, _ = fire(t, m)
	}
	if master && m.Status().State != StateMaster {
		t.Fatalf("state = %v, want MASTER", m.Status().State)
	}
	return m, now
}

// fire delivers the machine's current deadline, as a runner would.
func fire(t *testing.T, m *Machine) (time.Time, []Action) {
	t.Helper()
	at, gen := m.Deadline()
	if at.IsZero() {
		t.Fatal("no deadline armed")
	}
	return at, m.Step(at, TimerFired{Gen: gen})
}

func mustDeadline(t *testing.T, m *Machine, want time.Time) {
	t.Helper()
	if at, _ := m.Deadline(); !at.Equal(want) {
		t.Errorf("Deadline() = %v, want %v (t0%+v)", at, want, want.Sub(t0))
	}
}

func diffActions(t *testing.T, want, got []Action) {
	t.Helper()
	if diff := cmp.Diff(want, got, ignoreReason, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func cat(parts ...[]Action) []Action {
	var out []Action
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func advert(prio uint8) []Action { return []Action{{Kind: ActionSendAdvert, Priority: prio}} }

// "VRID ... configurable item in the range 1-255"; "Priority ... 1-255";
// "Advertisement_Interval ... 12-bit field ... in centiseconds".
// Reference: RFC 9568 section 6.1
func TestMachineNewValidatesConfig(t *testing.T) {
	good := testConfig(100)
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"vrid 0", func(c *Config) { c.VRID = 0 }},
		{"priority 0", func(c *Config) { c.Priority = 0 }},
		{"interval 0", func(c *Config) { c.AdvertInterval = 0 }},
		{"interval 5ms", func(c *Config) { c.AdvertInterval = 5 * time.Millisecond }},
		{"interval 41s", func(c *Config) { c.AdvertInterval = 41 * time.Second }},
		{"interval 15ms", func(c *Config) { c.AdvertInterval = 15 * time.Millisecond }},
		{"no address", func(c *Config) { c.Addr = netip.Addr{} }},
		{"unspecified address", func(c *Config) { c.Addr = netip.IPv4Unspecified() }},
		{"negative preempt delay", func(c *Config) { c.PreemptDelay = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			if _, err := NewMachine(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewMachine: err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	for _, ok := range []Config{good,
		{VRID: 255, Priority: 255, AdvertInterval: 10 * time.Millisecond, Addr: addrA},
		{VRID: 1, Priority: 1, AdvertInterval: 40950 * time.Millisecond, Addr: netip.MustParseAddr("fe80::1")},
	} {
		if _, err := NewMachine(ok); err != nil {
			t.Errorf("NewMachine(%+v): %v", ok, err)
		}
	}
}

// "Skew_Time: Time to skew Active_Down_Interval in centiseconds. Calculated
// as: (((256 - priority) * Active_Adver_Interval) / 256)";
// "Active_Down_Interval: (3 * Active_Adver_Interval) + Skew_Time".
// Computed from the effective priority.
// Reference: RFC 9568 section 6.1
func TestMachineSkewAndDownInterval(t *testing.T) {
	tests := []struct {
		prio     uint8
		tracked  uint8 // effective priority via PriorityChanged; 0 = none
		interval time.Duration
		skew     time.Duration
	}{
		{prio: 100, interval: time.Second, skew: 609375 * time.Microsecond},
		{prio: 254, interval: time.Second, skew: 7812500 * time.Nanosecond},
		{prio: 1, interval: time.Second, skew: 996093750 * time.Nanosecond},
		{prio: 150, interval: 200 * time.Millisecond, skew: 82812500 * time.Nanosecond},
		{prio: 150, tracked: 90, interval: 200 * time.Millisecond, skew: 129687500 * time.Nanosecond},
	}
	for _, tt := range tests {
		cfg := testConfig(tt.prio)
		cfg.AdvertInterval = tt.interval
		m := newMachine(t, cfg)
		eff := tt.prio
		if tt.tracked != 0 {
			eff = tt.tracked
			m.Step(t0, PriorityChanged{Priority: tt.tracked})
		}
		st := m.Status()
		want := MachineStatus{
			State: StateInit, Priority: tt.prio, EffectivePriority: eff, MasterInterval: tt.interval,
			SkewTime: tt.skew, DownInterval: 3*tt.interval + tt.skew, Ready: true,
		}
		if diff := cmp.Diff(want, st, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("priority %d/%d interval %v: status (-want +got):\n%s", tt.prio, eff, tt.interval, diff)
		}
	}
}

// "If the Priority field equals 255 ... Send an ADVERTISEMENT ... broadcast
// a gratuitous ARP ... Set the Adver_Timer to Advertisement_Interval ...
// Transition to the {Active} state".
// Reference: RFC 9568 section 6.4.1
func TestMachineStartOwnerBecomesMaster(t *testing.T) {
	m := newMachine(t, testConfig(255))
	got := m.Step(t0, Start{})
	want := []Action{
		{Kind: ActionTransition, From: StateInit, To: StateMaster},
		{Kind: ActionListen}, {Kind: ActionAddVIP}, {Kind: ActionAnnounce},
		{Kind: ActionSendAdvert, Priority: 255},
	}
	diffActions(t, want, got)
	mustDeadline(t, m, t0.Add(time.Second))
	if st := m.Status(); st.MasterAddr != addrA {
		t.Errorf("MasterAddr = %v, want own %v", st.MasterAddr, addrA)
	}
}

// "else ... Set Active_Adver_Interval to Advertisement_Interval; Set the
// Active_Down_Timer to Active_Down_Interval; Transition to the {Backup}
// state".
// Reference: RFC 9568 section 6.4.1
func TestMachineStartBackupArmsDownTimer(t *testing.T) {
	m := newMachine(t, testConfig(100))
	got := m.Step(t0, Start{})
	// vipd's rule: a node that starts as BACKUP removes a VIP left behind
	// by a crashed run.
	diffActions(t, []Action{{Kind: ActionTransition, From: StateInit, To: StateBackup}, {Kind: ActionRemoveVIP}}, got)
	mustDeadline(t, m, t0.Add(m.Status().DownInterval))
	if m.Status().State != StateBackup {
		t.Errorf("state = %v, want BACKUP", m.Status().State)
	}
}

// "If the Active_Down_Timer fires: Send an ADVERTISEMENT; broadcast a
// gratuitous ARP ...; Set the Adver_Timer to Advertisement_Interval;
// Transition to the {Active} state". Effects in DESIGN.md section 4 order:
// listeners, VIP, announce, advert.
// Reference: RFC 9568 section 6.4.2
func TestMachineDownTimerMakesMaster(t *testing.T) {
	m := newMachine(t, testConfig(100))
	m.Step(t0, Start{})
	at, got := fire(t, m)
	if want := t0.Add(3*time.Second + 609375*time.Microsecond); !at.Equal(want) {
		t.Errorf("took over at %v, want %v", at, want)
	}
	diffActions(t, cat(becameMaster, advert(100)), got)
	if r := got[0].Reason; r != "no advert for Down_Interval 3.609375s" {
		t.Errorf("reason = %q", r)
	}
	mustDeadline(t, m, at.Add(time.Second))
}

// "If the Adver_Timer fires: Send an ADVERTISEMENT; Reset the Adver_Timer
// to Advertisement_Interval".
// Reference: RFC 9568 section 6.4.3
func TestMachineMasterAdvertisesEveryInterval(t *testing.T) {
	m, now := startMachine(t, testConfig(255), true)
	for i := 1; i <= 3; i++ {
		at, got := fire(t, m)
		if want := now.Add(time.Duration(i) * time.Second); !at.Equal(want) {
			t.Errorf("advert %d at %v, want %v", i, at, want)
		}
		diffActions(t, advert(255), got)
	}
}

// "If the Priority in the ADVERTISEMENT is greater than the local Priority
// or the Priority in the ADVERTISEMENT is equal to the local Priority and
// the primary IPvX address of the sender is greater than the local primary
// IPvX address, then: Cancel Adver_Timer; Set Active_Adver_Interval to
// Max Advertise Interval contained in the ADVERTISEMENT; Recompute the Skew_Time;
// Recompute the Active_Down_Interval; Set Active_Down_Timer to
// Active_Down_Interval; Transition to the {Backup} state".
// Effects: VIP, listeners, connections (DESIGN.md section 4), then one
// parting advert at our priority so that the winner, hearing a lower
// priority, re-announces (DESIGN.md section 3).
// Reference: RFC 9568 section 6.4.3
func TestMachineMasterYieldsToBetterAdvert(t *testing.T) {
	tests := []struct {
		name   string
		adv    AdvertReceived
		reason string
	}{
		{"higher priority", AdvertReceived{From: addrB, Priority: 150, Interval: 2 * time.Second},
			"advert priority 150 from 10.0.0.2"},
		{"equal priority higher address", AdvertReceived{From: addrB, Priority: 100, Interval: 2 * time.Second},
			"advert priority 100 from 10.0.0.2 (equal priority, higher address)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, now := startMachine(t, testConfig(100), true)
			now = now.Add(300 * time.Millisecond)
			got := m.Step(now, tt.adv)
			// The parting advert makes the winner re-announce (DESIGN.md section 3).
			diffActions(t, cat(leftMaster, advert(100)), got)
			if got[0].Reason != tt.reason {
				t.Errorf("reason = %q, want %q", got[0].Reason, tt.reason)
			}
			st := m.Status()
			skew := 609375 * time.Microsecond * 2
			if st.State != StateBackup || st.MasterInterval != 2*time.Second || st.SkewTime != skew || st.MasterAddr != addrB {
				t.Errorf("status = %+v, want BACKUP adopting 2s from %v", st, addrB)
			}
			mustDeadline(t, m, now.Add(6*time.Second+skew))
		})
	}
}

// "If the Priority in the ADVERTISEMENT is zero, then: Set the
// Active_Down_Timer to Skew_Time".
// Reference: RFC 9568 section 6.4.2
func TestMachineBackupPriorityZeroWaitsSkewTime(t *testing.T) {
	m := newMachine(t, testConfig(100))
	m.Step(t0, Start{})
	m.Step(t0.Add(time.Second), AdvertReceived{From: addrB, Priority: 200, Interval: time.Second})
	now := t0.Add(1500 * time.Millisecond)
	if got := m.Step(now, AdvertReceived{From: addrB, Priority: 0, Interval: time.Second}); len(got) != 0 {
		t.Errorf("priority 0 advert: actions %v, want none", got)
	}
	mustDeadline(t, m, now.Add(609375*time.Microsecond))
	_, got := fire(t, m)
	diffActions(t, cat(becameMaster, advert(100)), got)
	if want := "master 10.0.0.2 left (advert priority 0), Skew_Time 609.375ms passed"; got[0].Reason != want {
		t.Errorf("reason = %q, want %q", got[0].Reason, want)
	}
}

// "Else if Preempt_Mode is False, or if the Priority in the ADVERTISEMENT
// is greater than or equal to the local Priority, then: Set
// Active_Adver_Interval to Max Advertise Interval contained in the ADVERTISEMENT;
// Recompute the Active_Down_Interval; Reset the Active_Down_Timer to
// Active_Down_Interval".
// Reference: RFC 9568 section 6.4.2
func TestMachineBackupAdoptsMasterInterval(t *testing.T) {
	tests := []struct {
		name    string
		preempt bool
		prio    uint8
	}{
		{"higher", true, 200},
		{"equal", true, 100},
		{"lower with nopreempt", false, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(100)
			cfg.Preempt = tt.preempt
			m := newMachine(t, cfg)
			m.Step(t0, Start{})
			now := t0.Add(2 * time.Second)
			got := m.Step(now, AdvertReceived{From: addrB, Priority: tt.prio, Interval: 500 * time.Millisecond})
			diffActions(t, nil, got)
			want := MachineStatus{State: StateBackup, Priority: 100, EffectivePriority: 100,
				MasterAddr: addrB, MasterInterval: 500 * time.Millisecond,
				SkewTime: 304687500, DownInterval: 1804687500, Ready: true}
			if diff := cmp.Diff(want, m.Status(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			mustDeadline(t, m, now.Add(want.DownInterval))
		})
	}
}

// "Else (i.e., Preempt_Mode is True and the Priority in the ADVERTISEMENT is
// less than the local Priority): Discard the ADVERTISEMENT" — the
// Active_Down_Timer keeps running and the backup preempts when it fires.
// Reference: RFC 9568 section 6.4.2
func TestMachineBackupPreemptsLowerPriority(t *testing.T) {
	m := newMachine(t, testConfig(100))
	m.Step(t0, Start{})
	first := t0.Add(time.Second)
	m.Step(first, AdvertReceived{From: addrB, Priority: 200, Interval: time.Second})
	// The master's priority drops (its tracker failed): its adverts are
	// discarded and no longer reset the down timer.
	for i := 1; i <= 3; i++ {
		now := first.Add(time.Duration(i) * time.Second)
		diffActions(t, nil, m.Step(now, AdvertReceived{From: addrB, Priority: 90, Interval: time.Second}))
	}
	at, got := fire(t, m)
	mustEqualTime(t, "took over", at, first.Add(m.Status().DownInterval))
	diffActions(t, cat(becameMaster, advert(100)), got)
	if want := "preempting lower priority 90 from 10.0.0.2"; got[0].Reason != want {
		t.Errorf("reason = %q, want %q", got[0].Reason, want)
	}
}

func mustEqualTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s at t0%+v, want t0%+v", what, got.Sub(t0), want.Sub(t0))
	}
}

// vipd's rule (keepalived's preempt_delay, DESIGN.md section 3): a lower
// priority master heard first at T is followed until T+PreemptDelay, then
// preempted.
func TestMachinePreemptDelay(t *testing.T) {
	cfg := testConfig(100)
	cfg.PreemptDelay = 5 * time.Second
	m := newMachine(t, cfg)
	m.Step(t0, Start{})
	lower := AdvertReceived{From: addrB, Priority: 50, Interval: time.Second}
	var last time.Time
	for i := 1; i <= 10; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		m.Step(now, lower)
		if at, _ := m.Deadline(); at.Equal(now.Add(m.Status().DownInterval)) {
			last = now // accepted: the down timer was reset
		}
	}
	// First heard at t0+1s: accepted up to t0+5s, discarded from t0+6s.
	mustEqualTime(t, "last accepted advert", last, t0.Add(5*time.Second))
	at, got := fire(t, m)
	mustEqualTime(t, "took over", at, t0.Add(5*time.Second).Add(m.Status().DownInterval))
	diffActions(t, cat(becameMaster, advert(100)), got)
}

// vipd's rule (DESIGN.md section 3, startup hold): a starting node does not
// preempt until its health checks have completed a round, but takes over
// when no master is heard at all.
func TestMachineHoldUntilReady(t *testing.T) {
	cfg := testConfig(100)
	cfg.HoldUntilReady = true
	lower := AdvertReceived{From: addrB, Priority: 50, Interval: time.Second}

	t.Run("follows lower master until ready", func(t *testing.T) {
		m := newMachine(t, cfg)
		m.Step(t0, Start{})
		if m.Status().Ready {
			t.Error("Ready before the Ready event")
		}
		for i := 1; i <= 10; i++ {
			m.Step(t0.Add(time.Duration(i)*time.Second), lower)
		}
		mustDeadline(t, m, t0.Add(10*time.Second).Add(m.Status().DownInterval))
		m.Step(t0.Add(10*time.Second+time.Millisecond), Ready{})
		if !m.Status().Ready {
			t.Error("not Ready after the Ready event")
		}
		m.Step(t0.Add(11*time.Second), lower) // now discarded
		at, got := fire(t, m)
		mustEqualTime(t, "took over", at, t0.Add(10*time.Second).Add(m.Status().DownInterval))
		diffActions(t, cat(becameMaster, advert(100)), got)
	})
	t.Run("takes over when nobody is master", func(t *testing.T) {
		m := newMachine(t, cfg)
		m.Step(t0, Start{})
		at, got := fire(t, m)
		mustEqualTime(t, "took over", at, t0.Add(m.Status().DownInterval))
		diffActions(t, cat(becameMaster, advert(100)), got)
	})
}

// "If the Priority in the ADVERTISEMENT is zero, then: Send an
// ADVERTISEMENT; Reset the Adver_Timer to Advertisement_Interval".
// Reference: RFC 9568 section 6.4.3
func TestMachineMasterAnswersPriorityZero(t *testing.T) {
	m, now := startMachine(t, testConfig(255), true)
	now = now.Add(400 * time.Millisecond)
	got := m.Step(now, AdvertReceived{From: addrB, Priority: 0, Interval: time.Second})
	diffActions(t, advert(255), got)
	mustDeadline(t, m, now.Add(time.Second))
}

// A MASTER hearing a lower priority (or equal priority and lower address)
// discards it, "but" — two masters — sends an advert at once and
// re-announces so the network follows it again (DESIGN.md section 3).
// Reference: RFC 9568 section 6.4.3
func TestMachineMasterReassertsOverLowerPriority(t *testing.T) {
	for _, adv := range []AdvertReceived{
		{From: addrB, Priority: 50, Interval: time.Second},
		{From: netip.MustParseAddr("10.0.0.0"), Priority: 100, Interval: time.Second},
	} {
		m, now := startMachine(t, testConfig(100), true)
		now = now.Add(250 * time.Millisecond)
		got := m.Step(now, adv)
		diffActions(t, []Action{{Kind: ActionSendAdvert, Priority: 100}, {Kind: ActionAnnounce, Rounds: 1}}, got)
		mustDeadline(t, m, now.Add(time.Second))
		if st := m.Status().State; st != StateMaster {
			t.Errorf("after %+v: state %v, want MASTER", adv, st)
		}
	}
}

// vipd's rule (trackers, DESIGN.md section 3): PriorityChanged sets the
// effective priority that is advertised and used for timers; the owner's
// 255 is never adjusted, and 0 and 255 are never a tracker's result
// (RFC 9568 section 5.2.4 gives them protocol meanings).
func TestMachinePriorityChanged(t *testing.T) {
	tests := []struct {
		base, sent, want uint8
	}{
		{150, 90, 90},
		{100, 200, 200},
		{100, 0, 1},     // 0 is a leaving master, never a tracker result
		{100, 255, 254}, // 255 is the owner's alone
		{255, 100, 255},
	}
	for _, tt := range tests {
		m, _ := startMachine(t, testConfig(tt.base), true)
		diffActions(t, nil, m.Step(t0.Add(time.Millisecond), PriorityChanged{Priority: tt.sent}))
		if got := m.Status().EffectivePriority; got != tt.want {
			t.Errorf("base %d, PriorityChanged %d: effective %d, want %d", tt.base, tt.sent, got, tt.want)
		}
		_, got := fire(t, m)
		diffActions(t, advert(tt.want), got)
	}
}

// vipd's rule (keepalived's FAULT, DESIGN.md section 3): a failing weight-0
// tracker puts a BACKUP in FAULT: no adverts sent, adverts ignored, no
// timer; when it clears, BACKUP with the down timer. The owner can fault
// too.
func TestMachineFaultFromBackup(t *testing.T) {
	for _, prio := range []uint8{100, 255} {
		m := newMachine(t, testConfig(prio))
		if prio == 255 {
			// A fault before Start: the owner starts in FAULT, not MASTER.
			m.Step(t0, PriorityChanged{Priority: prio, Fault: true, Reason: "eth0 link down"})
			diffActions(t, []Action{{Kind: ActionTransition, From: StateInit, To: StateFault}, {Kind: ActionRemoveVIP}}, m.Step(t0, Start{}))
		} else {
			m.Step(t0, Start{})
			got := m.Step(t0.Add(time.Second), PriorityChanged{Priority: prio, Fault: true, Reason: "eth0 link down"})
			diffActions(t, []Action{{Kind: ActionTransition, From: StateBackup, To: StateFault}}, got)
			if want := "fault: eth0 link down"; got[0].Reason != want {
				t.Errorf("reason = %q, want %q", got[0].Reason, want)
			}
		}
		mustDeadline(t, m, time.Time{})
		diffActions(t, nil, m.Step(t0.Add(2*time.Second), AdvertReceived{From: addrB, Priority: 50, Interval: time.Second}))
		if st := m.Status().State; st != StateFault {
			t.Fatalf("state %v, want FAULT", st)
		}
		now := t0.Add(3 * time.Second)
		got := m.Step(now, PriorityChanged{Priority: prio, Reason: "eth0 link up"})
		if prio == 255 {
			// Clearing the fault is a fresh start: the owner is MASTER at once.
			diffActions(t, cat([]Action{{Kind: ActionTransition, From: StateFault, To: StateMaster}}, becameMaster[1:], advert(255)), got)
			continue
		}
		diffActions(t, []Action{{Kind: ActionTransition, From: StateFault, To: StateBackup}}, got)
		mustDeadline(t, m, now.Add(m.Status().DownInterval))
	}
}

// vipd's rule (DESIGN.md section 4): a fault as MASTER is a voluntary leave:
// priority 0 first, the VIP kept until a successor is heard, then FAULT.
func TestMachineFaultFromMasterMakesBeforeBreak(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	now = now.Add(100 * time.Millisecond)
	got := m.Step(now, PriorityChanged{Priority: 150, Fault: true, Reason: "apiserver fault (failing)"})
	diffActions(t, advert(0), got)
	if !m.Status().Leaving || m.Status().State != StateMaster {
		t.Fatalf("status %+v, want leaving MASTER", m.Status())
	}
	got = m.Step(now.Add(50*time.Millisecond), AdvertReceived{From: addrB, Priority: 100, Interval: time.Second})
	want := []Action{
		{Kind: ActionTransition, From: StateMaster, To: StateFault},
		{Kind: ActionStopAnnounce}, {Kind: ActionRemoveVIP}, {Kind: ActionUnlisten}, {Kind: ActionCloseConns},
	}
	diffActions(t, want, got)
	if r := "fault: new master 10.0.0.2 heard (advert priority 100)"; got[0].Reason != r {
		t.Errorf("reason = %q, want %q", got[0].Reason, r)
	}
	mustDeadline(t, m, time.Time{})
}

// "If a Shutdown event is received, then: Cancel the Adver_Timer; Send an
// ADVERTISEMENT with Priority = 0; Transition to the {Initialize} state" —
// made before break: the VIP stays until the successor's advert is heard,
// or Down_Interval passes, and no regular advert goes out meanwhile
// (DESIGN.md section 4).
// Reference: RFC 9568 section 6.4.3
func TestMachineShutdownAsMasterMakesBeforeBreak(t *testing.T) {
	stopped := []Action{
		{Kind: ActionTransition, From: StateMaster, To: StateInit},
		{Kind: ActionStopAnnounce}, {Kind: ActionRemoveVIP}, {Kind: ActionUnlisten}, {Kind: ActionCloseConns},
		{Kind: ActionStopped},
	}
	t.Run("successor heard", func(t *testing.T) {
		m, now := startMachine(t, testConfig(150), true)
		diffActions(t, advert(0), m.Step(now, Shutdown{}))
		// A late priority-0 echo or another leaver does not end it.
		diffActions(t, nil, m.Step(now.Add(10*time.Millisecond), AdvertReceived{From: addrC, Priority: 0, Interval: time.Second}))
		got := m.Step(now.Add(700*time.Millisecond), AdvertReceived{From: addrB, Priority: 100, Interval: time.Second})
		diffActions(t, stopped, got)
		if r := "shutdown: new master 10.0.0.2 heard (advert priority 100)"; got[0].Reason != r {
			t.Errorf("reason = %q, want %q", got[0].Reason, r)
		}
		mustDeadline(t, m, time.Time{})
		diffActions(t, nil, m.Step(now.Add(time.Second), AdvertReceived{From: addrB, Priority: 200, Interval: time.Second}))
	})
	t.Run("nobody takes over", func(t *testing.T) {
		m, now := startMachine(t, testConfig(150), true)
		diffActions(t, advert(0), m.Step(now, Shutdown{}))
		down := 3*time.Second + skewTime(150, time.Second)
		mustDeadline(t, m, now.Add(down)) // no regular advert before it
		at, got := fire(t, m)
		mustEqualTime(t, "gave up", at, now.Add(down))
		diffActions(t, stopped, got)
		if r := "shutdown: no new master within Down_Interval 3.4140625s"; got[0].Reason != r {
			t.Errorf("reason = %q, want %q", got[0].Reason, r)
		}
	})
}

// "If a Shutdown event is received, then: Cancel the Active_Down_Timer;
// Transition to the {Initialize} state".
// Reference: RFC 9568 section 6.4.2
func TestMachineShutdownFromBackup(t *testing.T) {
	for _, fault := range []bool{false, true} {
		m := newMachine(t, testConfig(100))
		m.Step(t0, Start{})
		from := StateBackup
		if fault {
			m.Step(t0, PriorityChanged{Priority: 100, Fault: true})
			from = StateFault
		}
		got := m.Step(t0.Add(time.Second), Shutdown{})
		diffActions(t, []Action{{Kind: ActionTransition, From: from, To: StateInit}, {Kind: ActionStopped}}, got)
		if got[0].Reason != "shutdown" {
			t.Errorf("reason = %q, want shutdown", got[0].Reason)
		}
		mustDeadline(t, m, time.Time{})
	}
	m := newMachine(t, testConfig(100))
	diffActions(t, []Action{{Kind: ActionStopped}}, m.Step(t0, Shutdown{}))
}

// vipd's rule (drills, DESIGN.md sections 4 and 6): a soft Leave hands over
// like Shutdown but ends in BACKUP following the successor, and holds back
// from preempting it for Hold.
func TestMachineLeaveSoft(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	diffActions(t, advert(0), m.Step(now, Leave{Hold: 30 * time.Second}))
	heard := now.Add(700 * time.Millisecond)
	got := m.Step(heard, AdvertReceived{From: addrB, Priority: 100, Interval: time.Second})
	diffActions(t, leftMaster, got)
	st := m.Status()
	if st.State != StateBackup || st.MasterAddr != addrB || !st.HoldUntil.Equal(heard.Add(30*time.Second)) || st.Leaving {
		t.Errorf("status %+v, want BACKUP following %v, held until +30s", st, addrB)
	}
	// Its lower priority adverts are followed during the hold...
	for i := 1; i <= 29; i++ {
		m.Step(heard.Add(time.Duration(i)*time.Second), AdvertReceived{From: addrB, Priority: 100, Interval: time.Second})
	}
	mustDeadline(t, m, heard.Add(29*time.Second).Add(st.DownInterval))
	// ...and discarded after it: preempt back.
	m.Step(heard.Add(30*time.Second), AdvertReceived{From: addrB, Priority: 100, Interval: time.Second})
	at, got := fire(t, m)
	mustEqualTime(t, "preempted back", at, heard.Add(29*time.Second).Add(st.DownInterval))
	diffActions(t, cat(becameMaster, advert(150)), got)
}

// vipd's rule (drills, DESIGN.md section 6): a hard Leave rehearses a
// crash: no priority-0 advert, the VIP goes at once, and the node waits
// long enough that a backup takes over first.
func TestMachineLeaveHard(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	got := m.Step(now, Leave{Hard: true, Hold: 10 * time.Second})
	diffActions(t, leftMaster, got)
	st := m.Status()
	if st.State != StateBackup || !st.HoldUntil.Equal(now.Add(10*time.Second)) {
		t.Errorf("status %+v, want BACKUP held until +10s", st)
	}
	// Longer than any backup's Active_Down_Interval (< 4 intervals).
	mustDeadline(t, m, now.Add(2*st.DownInterval))
}

// vipd's rule for drills: a planned handover that nobody answers within
// Down_Interval resumes as MASTER at once, keeping the VIP it never let go
// of, instead of dropping it for a Down_Interval and taking it back.
func TestMachineLeaveWithoutSuccessorResumes(t *testing.T) {
	m, now := startMachine(t, testConfig(150), true)
	diffActions(t, advert(0), m.Step(now, Leave{Hold: time.Minute}))
	down := m.Status().DownInterval
	at, got := fire(t, m)
	mustEqualTime(t, "gave up waiting", at, now.Add(down))
	diffActions(t, advert(150), got)
	if want := "leave: no backup took over within Down_Interval; resuming as MASTER"; got[0].Reason != want {
		t.Errorf("reason = %q, want %q", got[0].Reason, want)
	}
	st := m.Status()
	if st.State != StateMaster || st.Leaving {
		t.Errorf("status %+v, want MASTER, not leaving", st)
	}
	// Regular adverts again, one interval apart.
	at2, got := fire(t, m)
	mustEqualTime(t, "next advert", at2, at.Add(time.Second))
	diffActions(t, advert(150), got)
}

// vipd's rule: Leave is for a MASTER; a backup refuses drills before they
// get here.
func TestMachineLeaveNotMasterIsNoop(t *testing.T) {
	m := newMachine(t, testConfig(100))
	diffActions(t, nil, m.Step(t0, Leave{}))
	m.Step(t0, Start{})
	before, gen := m.Deadline()
	diffActions(t, nil, m.Step(t0.Add(time.Second), Leave{Hard: true}))
	if at, g := m.Deadline(); !at.Equal(before) || g != gen {
		t.Errorf("Leave on BACKUP moved the deadline")
	}
}

// vipd's rule (DESIGN.md section 2): timer events carry the generation of
// the deadline they were armed for; one armed for a deadline that has
// since moved is ignored.
func TestMachineStaleTimerIgnored(t *testing.T) {
	m := newMachine(t, testConfig(100))
	m.Step(t0, Start{})
	staleAt, stale := m.Deadline()
	// An advert resets the down timer: the old deadline is gone.
	m.Step(t0.Add(time.Second), AdvertReceived{From: addrB, Priority: 200, Interval: time.Second})
	if _, gen := m.Deadline(); gen == stale {
		t.Fatal("generation did not change when the deadline moved")
	}
	diffActions(t, nil, m.Step(staleAt, TimerFired{Gen: stale}))
	if st := m.Status().State; st != StateBackup {
		t.Errorf("stale timer changed state to %v", st)
	}
	// The current generation delivered early does nothing either.
	_, gen := m.Deadline()
	diffActions(t, nil, m.Step(staleAt, TimerFired{Gen: gen}))
	_, got := fire(t, m)
	diffActions(t, cat(becameMaster, advert(100)), got)
}

// vipd's rule (DESIGN.md section 6): every transition says why, naming the
// advert, the timer or the tracker.
func TestMachineTransitionsCarryReasons(t *testing.T) {
	var reasons []string
	collect := func(acts []Action) {
		for _, a := range acts {
			if a.Kind == ActionTransition {
				reasons = append(reasons, a.From.String()+"->"+a.To.String()+": "+a.Reason)
			}
		}
	}
	m := newMachine(t, testConfig(100))
	collect(m.Step(t0, Start{}))
	_, acts := fire(t, m)
	collect(acts)
	collect(m.Step(t0.Add(4*time.Second), AdvertReceived{From: addrB, Priority: 101, Interval: time.Second}))
	collect(m.Step(t0.Add(5*time.Second), PriorityChanged{Priority: 100, Fault: true, Reason: "base 100, eth0 fault (failing)"}))
	collect(m.Step(t0.Add(6*time.Second), PriorityChanged{Priority: 100, Reason: "base 100"}))
	collect(m.Step(t0.Add(7*time.Second), Shutdown{}))
	want := []string{
		"INIT->BACKUP: start",
		"BACKUP->MASTER: no advert for Down_Interval 3.609375s",
		"MASTER->BACKUP: advert priority 101 from 10.0.0.2",
		"BACKUP->FAULT: fault: base 100, eth0 fault (failing)",
		"FAULT->BACKUP: fault cleared: base 100",
		"BACKUP->INIT: shutdown",
	}
	if diff := cmp.Diff(want, reasons); diff != "" {
		t.Errorf("reasons (-want +got):\n%s", diff)
	}
	for _, r := range reasons {
		if strings.HasSuffix(r, ": ") {
			t.Errorf("empty reason in %q", r)
		}
	}
}

// vipd's rule (DESIGN.md section 3): a starting backup assumes
// StartupInterval until it hears an advert, so a 200 ms node beside a
// keepalived master at 1 s waits for its first advert instead of flapping
// to MASTER; once it hears one it adopts the advertised interval (RFC 9568
// section 6.4.2), which this rule only precedes.
func TestMachineStartupInterval(t *testing.T) {
	cfg := testConfig(100)
	cfg.AdvertInterval = 200 * time.Millisecond
	cfg.StartupInterval = time.Second
	m := newMachine(t, cfg)
	m.Step(t0, Start{})
	// Down = 3 x 1 s + (256-100) x 1 s / 256.
	mustDeadline(t, m, t0.Add(3*time.Second+609375*time.Microsecond))
	peer := netip.MustParseAddr("10.0.0.9")
	m.Step(t0.Add(900*time.Millisecond), AdvertReceived{From: peer, Priority: 150, Interval: time.Second})
	if s := m.Status(); s.State != StateBackup || s.MasterInterval != time.Second {
		t.Errorf("after the 1 s master's advert: %v, master interval %v", s.State, s.MasterInterval)
	}
	// With no peer at all it still takes over, after the longer wait.
	m2 := newMachine(t, cfg)
	m2.Step(t0, Start{})
	at, _ := fire(t, m2)
	if want := t0.Add(3*time.Second + 609375*time.Microsecond); !at.Equal(want) {
		t.Errorf("lone node took over at %v, want %v", at, want)
	}
	if s := m2.Status(); s.MasterInterval != 200*time.Millisecond {
		t.Errorf("as MASTER the interval is %v, want its own 200ms", s.MasterInterval)
	}
}
