package vrrp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
)

// A hitless restart (vipd restart) hands a running instance to a new
// process: Freeze stops the runner at a safe point with no action taken
// (no priority 0, no VIP removed, no effect) and returns its Snapshot;
// the new process builds a runner from it with ResumeRunner on the same
// socket; the old runner then Abandons (Run returns ErrHandedOver) or,
// when the new process failed, Resumes where it stopped.

// ErrHandedOver is returned by Run after Abandon: the instance lives on
// in another process, and this one took no action on the way out.
var ErrHandedOver = errors.New("vrrp: instance handed over to a new process")

// ErrNotFrozen is returned by Resume and Abandon on a runner that is not
// frozen.
var ErrNotFrozen = errors.New("vrrp: instance not frozen")

// Snapshot is a running instance's state for a hitless restart: the
// machine's, and the runner's counters and history, so status carries on
// (transitions, adverts sent) instead of starting from zero. JSON-able.
type Snapshot struct {
	Machine         MachineSnapshot       `json:"machine"`
	TakenAt         time.Time             `json:"taken_at"`
	Transitions     int                   `json:"transitions"`
	LastTransition  time.Time             `json:"last_transition,omitzero"`
	LastReason      string                `json:"last_reason,omitempty"`
	Recent          []TransitionRecord    `json:"recent,omitempty"`
	AdvertsSent     uint64                `json:"adverts_sent"`
	AdvertsReceived uint64                `json:"adverts_received"`
	LateTimers      uint64                `json:"late_timers,omitempty"`
	Drops           map[DropReason]uint64 `json:"drops,omitempty"`
	Notices         map[Notice]uint64     `json:"notices,omitempty"`
	EffectErrors    map[string]uint64     `json:"effect_errors,omitempty"`
}

// Resumer is implemented by Effects that must pick up a state taken over
// from another process (the GARP refresh of a MASTER). Resumed runs on the
// runner's goroutine before anything else when Run starts a runner built
// by ResumeRunner; a MASTER then gets ActionListen.
type Resumer interface {
	Resumed(state State)
}

// readDeadliner is a Conn whose pending read can be cut short without
// closing the socket (netcfg.VRRPConn): a frozen runner must leave the
// socket's queue to the new process.
type readDeadliner interface {
	SetReadDeadline(t time.Time) error
}

type freezeRequest struct {
	reply  chan freezeReply
	resume chan chan error // Resume: nil after the reply
	leave  chan struct{}   // Abandon
}

type freezeReply struct {
	snap Snapshot
	err  error
}

// Freeze stops the runner at a safe point and returns its state (a
// MASTER right after its next periodic advert, so the new process has a
// whole interval before the next one is due): the read loop stops (what it read is fed to the machine first; what it did not
// stays queued on the socket for the new process), no advert is sent and
// no timer fires until Resume or Abandon. It refuses (wrapping
// ErrNoSnapshot) while a handover is under way, and returns ErrStopped
// once stopped. Host events (priority, VIP removed) posted while frozen
// wait in the mailbox and are handled after Resume.
func (r *Runner) Freeze(ctx context.Context) (Snapshot, error) {
	if r.conn != nil {
		if _, ok := r.conn.(readDeadliner); !ok {
			return Snapshot{}, fmt.Errorf("%w: the socket cannot pause its reads", ErrNoSnapshot)
		}
	}
	req := &freezeRequest{reply: make(chan freezeReply, 1), resume: make(chan chan error), leave: make(chan struct{})}
	busy := false
	r.post(func(b *mailbox) {
		if b.freeze != nil {
			busy = true
			return
		}
		b.freeze = req
	})
	if busy {
		return Snapshot{}, errors.New("vrrp: already freezing")
	}
	select {
	case rep := <-req.reply:
		if rep.err == nil {
			r.mu.Lock()
			r.frozenReq = req
			r.mu.Unlock()
		}
		return rep.snap, rep.err
	case <-r.done:
		return Snapshot{}, ErrStopped
	case <-ctx.Done():
		// The runner may still freeze: take the request back, or undo it.
		r.mu.Lock()
		mine := r.box.freeze == req
		if mine {
			r.box.freeze = nil
		}
		r.mu.Unlock()
		if !mine {
			// The runner took it (it waits for its advert, or an effect
			// holds it up): it freezes later and is resumed at once. Not
			// waited for here: what holds the runner up may be waiting
			// for the caller.
			go func() {
				select {
				case rep := <-req.reply:
					if rep.err == nil {
						r.resumeReq(req)
					}
				case <-r.done:
				}
			}()
		}
		return Snapshot{}, ctx.Err()
	}
}

// Resume undoes Freeze (the new process failed): the runner carries on
// where it stopped; a deadline that passed while frozen fires at once.
func (r *Runner) Resume() error {
	r.mu.Lock()
	req := r.frozenReq
	r.frozenReq = nil
	r.mu.Unlock()
	if req == nil {
		return ErrNotFrozen
	}
	return r.resumeReq(req)
}

func (r *Runner) resumeReq(req *freezeRequest) error {
	done := make(chan error, 1)
	select {
	case req.resume <- done:
		return <-done
	case <-r.done:
		return ErrStopped
	}
}

// Abandon ends a frozen runner: Run returns ErrHandedOver with no action
// taken (the socket is closed, which leaves a socket the new process
// shares alone).
func (r *Runner) Abandon() error {
	r.mu.Lock()
	req := r.frozenReq
	r.frozenReq = nil
	r.mu.Unlock()
	if req == nil {
		return ErrNotFrozen
	}
	close(req.leave)
	<-r.done
	return nil
}

// freezeNow returns the Freeze to serve now, if any. A MASTER that
// advertises serves it right after its next periodic advert: the new
// process then has nearly a whole interval before the next one falls due,
// and its peers see no longer gap than usual. Anything else freezes at
// once (and a MASTER whose advert does not come within two intervals).
func (r *Runner) freezeNow() *freezeRequest {
	if req := r.takeFreeze(); req != nil {
		st := r.m.Status()
		if st.State != StateMaster || st.Leaving || r.cfg.Machine.Solo || r.conn == nil {
			return req
		}
		r.pendingFreeze, r.pendingSince, r.advertSent = req, time.Now(), false
		return nil
	}
	req := r.pendingFreeze
	if req == nil {
		return nil
	}
	st := r.m.Status()
	if r.advertSent || st.State != StateMaster || time.Since(r.pendingSince) > 2*st.MasterInterval {
		r.pendingFreeze = nil
		return req
	}
	return nil
}

// takeFreeze takes a pending Freeze from the mailbox.
func (r *Runner) takeFreeze() *freezeRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	req := r.box.freeze
	r.box.freeze = nil
	return req
}

// frozen serves one Freeze on the runner's goroutine: it reports whether
// Run must return, and with what.
func (r *Runner) frozen(ctx context.Context, req *freezeRequest) (done bool, err error) {
	if r.conn != nil {
		r.stopRead()
		r.waitRead()
		// Adverts read before the stop are the machine's, not the new
		// process's: the snapshot includes them.
		for {
			select {
			case p := <-r.pkts:
				if r.exec(r.m.Step(time.Now(), p.ev)) {
					req.reply <- freezeReply{err: ErrStopped}
					return true, nil
				}
				continue
			default:
			}
			break
		}
	}
	snap, err := r.snapshot()
	if err != nil {
		req.reply <- freezeReply{err: err}
		r.startReading(ctx)
		return false, nil
	}
	req.reply <- freezeReply{snap: snap}
	r.log.Info().Str("state", snap.Machine.State).Msg("frozen for a restart: no advert, no effect until the new process takes over or this one resumes")
	select {
	case <-ctx.Done():
		// Torn down while frozen: the usual hard stop.
		r.exec(r.m.Step(time.Now(), HardStop{}))
		return true, ctx.Err()
	case <-req.leave:
		r.log.Info().Msg("handed over to the new process")
		return true, ErrHandedOver
	case reply := <-req.resume:
		r.m.thaw(time.Now())
		r.publish()
		r.startReading(ctx)
		r.log.Info().Msg("resumed after a restart that did not complete")
		reply <- nil
		return false, nil
	}
}

// snapshot takes the machine's and the runner's state.
func (r *Runner) snapshot() (Snapshot, error) {
	ms, err := r.m.Snapshot()
	if err != nil {
		return Snapshot{}, err
	}
	st := r.Status()
	return Snapshot{
		Machine: ms, TakenAt: time.Now().Round(0),
		Transitions: st.Transitions, LastTransition: st.LastTransition.Round(0), LastReason: st.LastReason,
		Recent:      st.Recent,
		AdvertsSent: st.AdvertsSent, AdvertsReceived: st.AdvertsReceived, LateTimers: st.LateTimers,
		Drops: st.Drops, Notices: st.Notices, EffectErrors: st.EffectErrors,
	}, nil
}

// ResumeRunner builds a runner that takes up snap (from Freeze, in this
// process or another) under cfg, on conn: Run makes no transition; a
// MASTER binds its listeners (the ones handed over) and advertises at
// once, then every interval; a BACKUP's Master_Down_Timer runs on. Effects implementing
// Resumer are told the state first. See RestoreMachine for a cfg that
// differs from the snapshot's.
func ResumeRunner(cfg RunnerConfig, conn Conn, fx Effects, snap Snapshot) (*Runner, error) {
	r, err := NewRunner(cfg, conn, fx)
	if err != nil {
		return nil, err
	}
	m, err := RestoreMachine(r.cfg.Machine, snap.Machine, time.Now())
	if err != nil {
		return nil, err
	}
	r.m, r.resumed = m, true
	r.sent.Store(snap.AdvertsSent)
	r.received.Store(snap.AdvertsReceived)
	r.late.Store(snap.LateTimers)
	maps.Copy(r.drops, snap.Drops)
	maps.Copy(r.notices, snap.Notices)
	r.snap = RunnerStatus{
		MachineStatus: m.Status(), Transitions: snap.Transitions, LastTransition: snap.LastTransition,
		LastReason: snap.LastReason, Recent: append([]TransitionRecord(nil), snap.Recent...),
	}
	if len(snap.EffectErrors) > 0 {
		r.snap.EffectErrors = maps.Clone(snap.EffectErrors)
	}
	r.published = snap.Transitions
	return r, nil
}

// resumedFx tells the effects the state taken up and, for a MASTER, binds
// its listeners (the proxy uses the ones handed over): a failure is an
// EffectFailed like any other Listen. It publishes the state.
func (r *Runner) resumedFx() {
	st := r.m.Status().State
	if res, ok := r.fx.(Resumer); ok {
		res.Resumed(st)
	}
	if st == StateMaster {
		listen := Action{Kind: ActionListen, Reason: "taken over from the previous process: serving on its listeners"}
		r.exec(append([]Action{listen}, r.m.takeUp(time.Now())...))
		return
	}
	r.publish()
}

// startReading starts the read loop.
func (r *Runner) startReading(ctx context.Context) {
	if r.conn == nil {
		return
	}
	if d, ok := r.conn.(readDeadliner); ok {
		d.SetReadDeadline(time.Time{})
	}
	readCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	r.readCancel, r.readDone = cancel, done
	go func() { defer close(done); r.readLoop(readCtx) }()
}

// stopRead asks the read loop to stop: a read under way is cut short by
// a deadline when the socket has one, else by closing the socket.
func (r *Runner) stopRead() {
	if r.readCancel == nil {
		return
	}
	r.readCancel()
	if d, ok := r.conn.(readDeadliner); ok {
		d.SetReadDeadline(time.Now())
	}
}

func (r *Runner) waitRead() {
	if r.readDone != nil {
		<-r.readDone
	}
}
