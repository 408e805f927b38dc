package daemon

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/bgp"
)

// errNothingAnnounced is returned by a BGP drill on a node that announces
// no VIP.
var errNothingAnnounced = errors.New("this node announces no VIP")

// bgpRunner drives the announcement state machine (bgp.Announcer) with
// a timer and owns the node's one BGP speaker: it is the only goroutine
// that announces, drains or withdraws, and the only one that binds or
// closes the listeners of frontends on a [bgp] VIP and puts those VIPs on
// the host (bgpEffects). It publishes the machine's status after the
// effects of each step ran and wakes the node's subscribers, so
// "announced" in status means the listener, the address and the
// announcement exist.
//
// Inputs from other goroutines never block and are never lost, as with
// vrrp.Runner: a stop is a flag, the health verdicts and the operator's
// drain are latest-value slots, relistens are a set, and only a drill
// (which needs an answer) waits for the runner.
type bgpRunner struct {
	log    zerolog.Logger
	m      *bgp.Announcer
	sp     Speaker
	fx     *bgpEffects
	notify func()

	wake chan struct{}
	done chan struct{}

	mu   sync.Mutex
	box  bgpMailbox
	snap bgp.AnnouncerStatus
	errs map[string]uint64 // effects that failed, by action
}

type bgpMailbox struct {
	stop        bool
	verdicts    map[netip.Addr]bgpVerdict // nil: nothing new
	drain       *bool
	reconfigure *bgp.Reconfigure
	relisten    map[netip.Addr]bool
	drill       *bgpDrillRequest
	drillEnd    bool
}

// bgpVerdict is the health of the servers behind one VIP's frontends.
type bgpVerdict struct {
	ok     bool
	reason string
}

type bgpDrillRequest struct {
	ev    bgp.Drill
	reply chan error
}

func newBGPRunner(log zerolog.Logger, m *bgp.Announcer, sp Speaker, fx *bgpEffects, notify func()) *bgpRunner {
	return &bgpRunner{
		log: log, m: m, sp: sp, fx: fx, notify: notify,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		snap: m.Status(), errs: map[string]uint64{},
	}
}

// Run starts the speaker and the machine and runs until the machine has
// stopped: after Stop (every VIP withdrawn the planned way, then the
// sessions ended with CEASE) it returns nil. When ctx ends first, every
// VIP is withdrawn at once, the sessions are ended, and Run returns
// ctx.Err(). A speaker that cannot start (port 179 taken) is an error.
func (r *bgpRunner) Run(ctx context.Context) error {
	defer close(r.done)
	// The speaker has its own context: a planned stop needs it after ctx
	// ended for everything else, and it is ended by ActionStopSpeaker
	// (or on the way out), never by a side door.
	spCtx, spCancel := context.WithCancel(context.Background())
	spDone := make(chan error, 1)
	sessions := r.sp.Changed() // before Run: no session change is missed
	go func() { spDone <- r.sp.Run(spCtx) }()
	spRunning := true
	stopSpeaker := func() error {
		if !spRunning {
			return nil
		}
		spRunning = false
		spCancel()
		return <-spDone
	}
	defer stopSpeaker()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	exec := func(acts []bgp.Action) bool { return r.exec(acts, stopSpeaker) }
	if exec(r.m.Step(time.Now(), bgp.Start{})) || r.drain(time.Now(), exec) {
		return nil
	}
	for {
		at, gen := r.m.Deadline()
		timer.Stop()
		if !at.IsZero() {
			timer.Reset(time.Until(at))
		}
		var stopped bool
		select {
		case <-ctx.Done():
			exec(r.m.Step(time.Now(), bgp.HardStop{}))
			return ctx.Err()
		case err := <-spDone:
			spRunning = false
			exec(r.m.Step(time.Now(), bgp.HardStop{}))
			if err == nil {
				err = errors.New("bgp: the speaker ended by itself")
			}
			return err // "bgp: start: listen tcp :179: address already in use"
		case <-sessions:
			sessions = r.sp.Changed()
			stopped = exec(r.m.Step(time.Now(), bgp.Sessions{Established: established(r.sp.Status())}))
			r.notify() // session state is in status even when nothing else moved
		case now := <-timer.C:
			stopped = exec(r.m.Step(now, bgp.TimerFired{Gen: gen}))
		case <-r.wake:
			stopped = r.drain(time.Now(), exec)
		}
		if stopped {
			return nil
		}
	}
}

func sortedVIPs[T any](m map[netip.Addr]T) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func established(st bgp.Status) int {
	n := 0
	for _, p := range st.Peers {
		if p.State == bgp.StateEstablished {
			n++
		}
	}
	return n
}

// drain feeds what the mailbox holds to the machine, the stop first (a
// stop that came before a healthy verdict means the VIP is never
// announced); it reports whether the machine stopped.
func (r *bgpRunner) drain(now time.Time, exec func([]bgp.Action) bool) bool {
	r.mu.Lock()
	box := r.box
	r.box = bgpMailbox{stop: box.stop}
	r.mu.Unlock()
	var stopped bool
	step := func(ev bgp.AnnouncerEvent) {
		if !stopped {
			stopped = exec(r.m.Step(now, ev))
		}
	}
	if box.stop {
		step(bgp.Stop{})
	}
	// The operator's drain before the verdicts: a drained node that also
	// got a healthy verdict must not announce for a moment.
	if box.reconfigure != nil {
		step(*box.reconfigure)
	}
	if box.drain != nil {
		step(bgp.OperatorDrain{On: *box.drain})
	}
	for _, v := range sortedVIPs(box.verdicts) {
		step(bgp.BackendsChanged{VIP: v, OK: box.verdicts[v].ok, Reason: box.verdicts[v].reason})
	}
	for _, v := range sortedVIPs(box.relisten) {
		step(bgp.Relisten{VIP: v})
	}
	if box.drillEnd {
		step(bgp.DrillEnd{})
	}
	if req := box.drill; req != nil {
		switch {
		case stopped || r.m.Status().Stopping:
			req.reply <- errors.New("vipd is stopping")
		case !r.m.AnyAnnounced():
			req.reply <- errNothingAnnounced
		case r.m.Status().Drill:
			req.reply <- errors.New("a drill is already running")
		default:
			step(req.ev)
			req.reply <- nil
		}
	}
	return stopped || r.m.Status().Stopped
}

// exec carries out actions in order and publishes the status once their
// effects ran; it reports whether the machine stopped. An effect that
// fails goes back into the machine as EffectFailed; the rest of that
// VIP's actions in the batch are skipped (they assumed it worked), the
// other VIPs' go on.
func (r *bgpRunner) exec(acts []bgp.Action, stopSpeaker func() error) (stopped bool) {
	for range 8 { // each EffectFailed answer is a fresh, shorter batch
		var failed []bgp.EffectFailed
		skip := map[netip.Addr]bool{}
		for _, a := range acts {
			if a.VIP.IsValid() && skip[a.VIP] {
				continue
			}
			switch a.Kind {
			case bgp.ActionTransition:
				r.transition(a)
			case bgp.ActionStopSpeaker:
				if err := stopSpeaker(); err != nil {
					r.log.Warn().Err(err).Msg("BGP speaker ended with an error")
				}
			case bgp.ActionStopped:
				stopped = true
			default:
				if a.Reason != "" && (a.Kind == bgp.ActionListen || a.Kind == bgp.ActionAnnounce) {
					// Not part of a transition (whose line says it all):
					// a frontend added, attributes changed.
					r.log.Info().Stringer("vip", a.VIP).Str("action", a.Kind.String()).Msg(a.Reason)
				}
				if err := r.fx.do(a); err != nil {
					r.log.Error().Err(err).Stringer("vip", a.VIP).Str("action", a.Kind.String()).Msg("effect failed; the announcer decides what to do")
					r.count(a.Kind)
					skip[a.VIP] = true
					failed = append(failed, bgp.EffectFailed{VIP: a.VIP, Kind: a.Kind, Err: err})
				}
			}
		}
		if len(failed) == 0 {
			break
		}
		acts = nil
		for _, f := range failed {
			acts = append(acts, r.m.Step(time.Now(), f)...)
		}
	}
	r.publish()
	return stopped
}

// transition is one log line per VIP state change, with its reason.
func (r *bgpRunner) transition(a bgp.Action) {
	e := r.log.Info()
	if a.To == bgp.Withdrawn {
		e = r.log.Warn()
	}
	e.Stringer("vip", a.VIP).Str("from", a.From).Str("to", a.To).Str("reason", a.Reason).
		Msgf("%s %s -> %s: %s", a.VIP, a.From, a.To, a.Reason)
}

func (r *bgpRunner) count(k bgp.ActionKind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[k.String()]++
}

// publish makes the machine's state after a step visible and wakes the
// subscribers if it changed.
func (r *bgpRunner) publish() {
	st := r.m.Status()
	r.mu.Lock()
	same := reflect.DeepEqual(st, r.snap)
	r.snap = st
	r.mu.Unlock()
	if !same {
		r.notify()
	}
}

// status is the machine's status as last published, and the effects that
// failed by action.
func (r *bgpRunner) status() (bgp.AnnouncerStatus, map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := make(map[string]uint64, len(r.errs))
	for k, v := range r.errs {
		errs[k] = v
	}
	st := r.snap
	st.VIPs = append([]bgp.VIPStatus(nil), r.snap.VIPs...)
	return st, errs
}

func (r *bgpRunner) post(f func(*bgpMailbox)) {
	r.mu.Lock()
	f(&r.box)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stop asks for a graceful stop: every announced VIP is withdrawn the
// planned way, then the sessions end. It never blocks and may come before
// Run.
func (r *bgpRunner) Stop() { r.post(func(b *bgpMailbox) { b.stop = true }) }

// SetVerdicts hands over the latest health verdicts of every VIP. Callers
// compute and post them under one lock, so the latest always wins.
func (r *bgpRunner) SetVerdicts(v map[netip.Addr]bgpVerdict) {
	r.post(func(b *bgpMailbox) { b.verdicts = v })
}

// SetDrained is `vipd drain self` (true) and its --undo (false).
func (r *bgpRunner) SetDrained(on bool) { r.post(func(b *bgpMailbox) { b.drain = &on }) }

// Reconfigure takes a reload's drain time and re-announces on changed
// attributes.
func (r *bgpRunner) Reconfigure(rc bgp.Reconfigure) {
	r.post(func(b *bgpMailbox) {
		if b.reconfigure != nil && b.reconfigure.Reannounce {
			rc.Reannounce = true
		}
		b.reconfigure = &rc
	})
}

// Relisten says a reload added frontends to VIP.
func (r *bgpRunner) Relisten(v netip.Addr) {
	r.post(func(b *bgpMailbox) {
		if b.relisten == nil {
			b.relisten = map[netip.Addr]bool{}
		}
		b.relisten[v] = true
	})
}

// DrillEnd ends a drill's hold at once.
func (r *bgpRunner) DrillEnd() { r.post(func(b *bgpMailbox) { b.drillEnd = true }) }

// Drill starts a drill; it fails when nothing is announced, a drill runs
// already, or the node is stopping.
func (r *bgpRunner) Drill(ctx context.Context, hard bool, hold time.Duration) error {
	req := &bgpDrillRequest{ev: bgp.Drill{Hard: hard, Hold: hold}, reply: make(chan error, 1)}
	busy := false
	r.post(func(b *bgpMailbox) {
		if b.drill != nil {
			busy = true
			return
		}
		b.drill = req
	})
	if busy {
		return errors.New("a drill is already being started")
	}
	select {
	case err := <-req.reply:
		return err
	case <-r.done:
		return errors.New("vipd has stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when Run has returned.
func (r *bgpRunner) Done() <-chan struct{} { return r.done }
