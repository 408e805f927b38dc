package vrrp

import (
	"sort"
	"time"
)

// TransitionRecord is one state change with its reason.
type TransitionRecord struct {
	At       time.Time
	From, To State
	Reason   string
}

// RunnerStatus is a snapshot for status output. It is published after the
// effects of each machine step ran.
type RunnerStatus struct {
	MachineStatus
	Version         uint8
	LastTransition  time.Time
	LastReason      string
	Transitions     int
	Recent          []TransitionRecord // newest first, at most 16
	AdvertsSent     uint64
	AdvertsReceived uint64
	LateTimers      uint64
	Drops           map[DropReason]uint64
	Notices         map[Notice]uint64
	// EffectErrors counts effects that failed, by action.
	EffectErrors map[string]uint64
	Senders      []Sender
}

// record notes a transition in the status (published with the batch).
func (r *Runner) record(a Action) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap.LastTransition = now
	r.snap.LastReason = a.Reason
	r.snap.Transitions++
	rec := TransitionRecord{At: now, From: a.From, To: a.To, Reason: a.Reason}
	r.snap.Recent = append([]TransitionRecord{rec}, r.snap.Recent...)
	if len(r.snap.Recent) > 16 {
		r.snap.Recent = r.snap.Recent[:16]
	}
}

func (r *Runner) count(k ActionKind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.snap.EffectErrors == nil {
		r.snap.EffectErrors = map[string]uint64{}
	}
	r.snap.EffectErrors[k.String()]++
}

// publish makes the machine's state after a step visible and wakes the
// subscribers if it changed.
func (r *Runner) publish() {
	st := r.m.Status()
	r.mu.Lock()
	defer r.mu.Unlock()
	if st == r.snap.MachineStatus && r.snap.Transitions == r.published {
		return
	}
	r.snap.MachineStatus = st
	r.published = r.snap.Transitions
	close(r.changed)
	r.changed = make(chan struct{})
}

// Changed returns a channel that is closed the next time the published
// status changes (state, priority, readiness, master, a transition). Take
// a fresh one after each wakeup.
func (r *Runner) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Status returns a snapshot.
func (r *Runner) Status() RunnerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.snap
	s.Version = r.cfg.Machine.Version
	s.Recent = append([]TransitionRecord(nil), r.snap.Recent...)
	s.AdvertsSent = r.sent.Load()
	s.AdvertsReceived = r.received.Load()
	s.LateTimers = r.late.Load()
	s.Drops = make(map[DropReason]uint64, len(r.drops))
	for k, v := range r.drops {
		s.Drops[k] = v
	}
	s.Notices = make(map[Notice]uint64, len(r.notices))
	for k, v := range r.notices {
		s.Notices[k] = v
	}
	s.EffectErrors = make(map[string]uint64, len(r.snap.EffectErrors))
	for k, v := range r.snap.EffectErrors {
		s.EffectErrors[k] = v
	}
	for _, x := range r.senders {
		c := *x
		c.VIPs = append(c.VIPs[:0:0], x.VIPs...)
		s.Senders = append(s.Senders, c)
	}
	sort.Slice(s.Senders, func(i, j int) bool { return s.Senders[i].Addr.Less(s.Senders[j].Addr) })
	return s
}
