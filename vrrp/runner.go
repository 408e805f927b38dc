package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Conn is the VRRP socket a Runner reads and writes. netcfg.VRRPConn
// implements it; tests use an in-memory pair.
type Conn interface {
	// ReadFrom returns one VRRP message (IP header stripped), its source
	// and destination addresses and the TTL (hop limit) it arrived with,
	// or -1 when the kernel reported none.
	ReadFrom(b []byte) (n int, src, dst netip.Addr, ttl int, err error)
	// WriteTo sends one VRRP message to dst (the group, or a unicast peer).
	WriteTo(b []byte, dst netip.Addr) error
	Close() error
}

// Effects carry out the machine's actions on the host, in the order the
// machine emits them (DESIGN.md section 4). They run on the runner's
// goroutine, the only place host effects on the instance's VIP are taken,
// and must not block for long: Announce starts a burst and returns. They
// never call back into the Runner: everything they need comes with the
// action.
type Effects interface {
	Listen() error
	AddVIP() error
	// Announce starts a gratuitous ARP / unsolicited NA burst of rounds
	// rounds (0: the configured burst) and then the periodic refresh,
	// replacing any burst still running.
	Announce(rounds int)
	// StopAnnounce stops the burst and the refresh.
	StopAnnounce()
	RemoveVIP() error
	Unlisten()
	CloseConns()
	// Transition is called first for every state change, with the
	// effective priority and the reason: log it, count it, run hooks.
	Transition(from, to State, prio uint8, reason string)
}

// ErrNotMaster is returned by Leave on a node that is not MASTER.
var ErrNotMaster = errors.New("vrrp: not master")

// ErrStopped is returned by Leave once the instance has stopped.
var ErrStopped = errors.New("vrrp: instance stopped")

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Machine  Config
	VIPs     []netip.Addr // the addresses put in adverts
	Checksum ChecksumMode // VRRPv3 IPv4 transmit form; both are accepted on receive
	// AuthPass is VRRPv2's simple text password (auth type 1, up to 8
	// bytes); empty means no authentication. Ignored for VRRPv3.
	AuthPass string
	Unicast  bool
	Peers    []netip.Addr // unicast: the only sources accepted and the destinations
	// Siblings are the VRIDs of this node's other instances on the same
	// link: their adverts reach this socket too and are ignored without
	// being counted as drops.
	Siblings []uint8
	Log      zerolog.Logger
}

// Runner drives a Machine with a socket and a timer. It is the one owner
// of the instance's host effects: every action of the machine, and every
// event from the host (a VIP removed, the link back, a stop, an effect that
// failed), goes through its goroutine, and it publishes status after the
// effects of each step ran, so MASTER in status means the VIP and the
// listeners exist.
//
// Inputs from other goroutines never block and are never lost: a stop is a
// flag, the priority and readiness are latest-value slots, host events are
// flags, and only Leave (a drill, which needs an answer) waits for the
// runner.
type Runner struct {
	cfg  RunnerConfig
	conn Conn // nil for a solo instance
	fx   Effects
	m    *Machine
	log  zerolog.Logger
	auth [v2AuthDataLen]byte
	// checks are the receive checks (receive.go).
	checks *Checker

	pkts chan received // from readLoop
	wake chan struct{} // 1-buffered: the mailbox has something
	done chan struct{} // closed when Run returns

	box mailbox // guarded by mu

	// Runner goroutine only: the read loop (stopped while frozen), and
	// whether Run takes up a restored state instead of starting.
	readCancel func()
	readDone   chan struct{}
	resumed    bool
	// A MASTER freezes right after a periodic advert (runner_handoff.go):
	// the freeze waits in pendingFreeze until advertSent, or until
	// pendingSince is two intervals old.
	pendingFreeze *freezeRequest
	pendingSince  time.Time
	advertSent    bool

	sent, received, late atomic.Uint64

	// Runner goroutine only.
	sendErrs      uint64
	sendErrLogged time.Time
	lateAt        time.Time // the deadline whose stall was last logged

	mu        sync.Mutex
	snap      RunnerStatus
	published int // snap.Transitions when last published
	changed   chan struct{}
	drops     map[DropReason]uint64
	notices   map[Notice]uint64
	senders   map[netip.Addr]*Sender
	lastLog   map[DropReason]time.Time
	frozenReq *freezeRequest // set by Freeze, taken by Resume or Abandon
}

// mailbox holds what other goroutines asked of the runner.
type mailbox struct {
	stop       bool
	prio       *PriorityChanged
	ready      bool
	vipRemoved bool
	linkUp     bool
	relisten   bool
	gone       []MasterGone // one per sender, the latest reason wins
	leave      *leaveRequest
	freeze     *freezeRequest
}

type leaveRequest struct {
	ev    Leave
	reply chan error
}

type received struct {
	ev   AdvertReceived
	at   time.Time
	from netip.Addr
}

// NewRunner validates cfg and builds the machine; Run starts it. conn may be
// nil only for a solo machine (single-LB mode: no adverts).
func NewRunner(cfg RunnerConfig, conn Conn, fx Effects) (*Runner, error) {
	m, err := NewMachine(cfg.Machine)
	if err != nil {
		return nil, err
	}
	if len(cfg.VIPs) == 0 && !cfg.Machine.Solo {
		return nil, errors.New("vrrp: no virtual addresses")
	}
	if conn == nil && !cfg.Machine.Solo {
		return nil, errors.New("vrrp: no socket")
	}
	if len(cfg.AuthPass) > v2AuthDataLen {
		return nil, fmt.Errorf("vrrp: auth_pass of %d bytes; VRRPv2 carries at most %d", len(cfg.AuthPass), v2AuthDataLen)
	}
	if cfg.Checksum == 0 {
		cfg.Checksum = ChecksumPseudoHeader
	}
	if cfg.Machine.Version == 0 {
		cfg.Machine.Version = 3
	}
	r := &Runner{
		cfg: cfg, conn: conn, fx: fx, m: m, log: cfg.Log,
		pkts:    make(chan received, 64),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		drops:   make(map[DropReason]uint64),
		notices: make(map[Notice]uint64),
		senders: make(map[netip.Addr]*Sender),
		lastLog: make(map[DropReason]time.Time),
	}
	copy(r.auth[:], cfg.AuthPass)
	r.checks = NewChecker(cfg)
	r.snap.MachineStatus = m.Status()
	return r, nil
}

// Run starts the instance and runs until it has stopped, and closes the
// socket before it returns: after Stop (a
// graceful stop: a MASTER hands over first) it returns nil. When ctx ends
// first, the instance stops hard (a MASTER lets go of the VIP, listeners
// and connections at once, with no priority-0 advert) and Run returns
// ctx.Err(). A Stop that came before Run means the instance never starts.
func (r *Runner) Run(ctx context.Context) error {
	defer close(r.done)
	if r.conn != nil {
		// The runner owns the socket: closing it is what ends the read
		// loop, and Run returns only once it has.
		r.startReading(ctx)
		defer func() { r.stopRead(); r.conn.Close(); r.waitRead() }()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if r.resumed {
		// Taken over from another process (ResumeRunner): no Start, no
		// transition; the state carries on.
		r.resumedFx()
		if r.drain(time.Now()) {
			return nil
		}
	} else if r.drain(time.Now()) || r.exec(r.m.Step(time.Now(), Start{})) {
		return nil
	}
	for {
		if req := r.freezeNow(); req != nil {
			if done, err := r.frozen(ctx, req); done {
				return err
			}
			continue
		}
		at, gen := r.m.Deadline()
		timer.Stop()
		if !at.IsZero() {
			timer.Reset(time.Until(at))
		}
		var stopped bool
		select {
		case <-ctx.Done():
			r.exec(r.m.Step(time.Now(), HardStop{}))
			return ctx.Err()
		case p := <-r.pkts:
			r.woke(at)
			stopped = r.exec(r.m.Step(time.Now(), p.ev))
		case now := <-timer.C:
			r.woke(at)
			sent := r.sent.Load()
			stopped = r.exec(r.m.Step(now, TimerFired{Gen: gen}))
			r.advertSent = r.sent.Load() != sent
		case <-r.wake:
			r.woke(at)
			stopped = r.drain(time.Now())
		}
		if stopped {
			return nil
		}
	}
}

// woke logs a stall: checked on every wakeup, not only when the timer wins
// the select, since after a SIGSTOP a queued advert may be handled first
// and move the deadline, hiding the stall.
func (r *Runner) woke(at time.Time) {
	if at.IsZero() || r.lateAt.Equal(at) {
		return
	}
	if late := time.Since(at); late > r.lateThreshold() {
		r.late.Add(1)
		r.lateAt = at
		r.log.Warn().Dur("late", late).Msg("timer fired late: this process was stalled (SIGSTOP, CPU starvation or a suspended VM?)")
	}
}

func (r *Runner) lateThreshold() time.Duration {
	return max(r.cfg.Machine.AdvertInterval, 100*time.Millisecond)
}

// drain feeds what the mailbox holds to the machine; it reports whether
// the machine stopped. The stop goes last, so a priority that changed in
// the same breath is the one the priority-0 handover starts from.
func (r *Runner) drain(now time.Time) bool {
	r.mu.Lock()
	box := r.box
	r.box = mailbox{stop: box.stop, freeze: box.freeze}
	r.mu.Unlock()
	var stopped bool
	step := func(ev Event) {
		if !stopped {
			stopped = r.exec(r.m.Step(now, ev))
		}
	}
	if box.prio != nil {
		step(*box.prio)
	}
	if box.ready {
		step(Ready{})
	}
	if box.vipRemoved {
		step(VIPRemoved{})
	}
	if box.linkUp {
		step(LinkUp{})
	}
	if box.relisten {
		step(Relisten{})
	}
	for _, g := range box.gone {
		step(g)
	}
	if req := box.leave; req != nil {
		switch {
		case stopped || r.m.Status().Stopped:
			req.reply <- ErrStopped
		case r.m.Status().State != StateMaster:
			req.reply <- ErrNotMaster
		default:
			step(req.ev)
			req.reply <- nil
		}
	}
	if box.stop {
		step(Shutdown{})
	}
	return stopped || r.m.Status().Stopped
}

// exec carries out actions in order and publishes the status once their
// effects ran; it reports whether the machine stopped. An effect that
// fails ends the batch (the rest assumed it worked) and goes back into the
// machine as EffectFailed, whose answer is carried out the same way.
func (r *Runner) exec(acts []Action) (stopped bool) {
	for range 8 { // each EffectFailed answer is a fresh, shorter batch
		var failed *EffectFailed
		for _, a := range acts {
			if err := r.do(a); err != nil {
				failed = &EffectFailed{Kind: a.Kind, Err: err}
				r.log.Error().Err(err).Str("action", a.Kind.String()).Msg("effect failed; the state machine decides what to do")
				break
			}
			if a.Kind == ActionStopped {
				stopped = true
			}
		}
		if failed == nil {
			break
		}
		r.count(failed.Kind)
		acts = r.m.Step(time.Now(), *failed)
	}
	r.publish()
	return stopped
}

// do carries out one action. Host effects the machine took for a reason
// of its own (a VIP restored, a re-announcement, a retry) get a log line;
// the ones that belong to a transition are in its line already.
func (r *Runner) do(a Action) error {
	if a.Reason != "" {
		switch a.Kind {
		case ActionListen, ActionAddVIP, ActionAnnounce, ActionRemoveVIP:
			r.log.Info().Str("action", a.Kind.String()).Msg(a.Reason)
		}
	}
	switch a.Kind {
	case ActionTransition:
		r.record(a)
		r.fx.Transition(a.From, a.To, a.Priority, a.Reason)
	case ActionListen:
		return r.fx.Listen()
	case ActionAddVIP:
		return r.fx.AddVIP()
	case ActionAnnounce:
		r.fx.Announce(a.Rounds)
	case ActionSendAdvert:
		r.send(a.Priority)
	case ActionStopAnnounce:
		r.fx.StopAnnounce()
	case ActionRemoveVIP:
		return r.fx.RemoveVIP()
	case ActionUnlisten:
		r.fx.Unlisten()
	case ActionCloseConns:
		r.fx.CloseConns()
	}
	return nil
}

func (r *Runner) send(prio uint8) {
	if r.conn == nil {
		return
	}
	pkts, err := r.cfg.Adverts(prio)
	if err != nil {
		r.log.Error().Err(err).Msg("encode advert")
		return
	}
	for _, p := range pkts {
		if err := r.conn.WriteTo(p.B, p.Dst); err != nil {
			// An interface that is down fails every advert: log the
			// first and then once a minute, with the count.
			r.sendErrs++
			if now := time.Now(); now.Sub(r.sendErrLogged) > time.Minute {
				r.log.Warn().Err(err).Str("dst", p.Dst.String()).Uint64("failed_sends", r.sendErrs).Msg("send advert (logged once a minute)")
				r.sendErrLogged = now
			}
			continue
		}
		r.sent.Add(1)
	}
}

// Packet is one encoded advert and where it goes.
type Packet struct {
	Dst netip.Addr
	B   []byte
}

// Adverts encodes the instance's advert with prio for every destination
// (the group, or each unicast peer), as its runner sends it. `vipd
// cleanup` sends the priority-0 advert of a crashed master with it.
func (cfg RunnerConfig) Adverts(prio uint8) ([]Packet, error) {
	version := cfg.Machine.Version
	if version == 0 {
		version = 3
	}
	mode := cfg.Checksum
	if mode == 0 {
		mode = ChecksumPseudoHeader
	}
	adv := Advertisement{
		Version:           version,
		Type:              TypeAdvertisement,
		VRID:              cfg.Machine.VRID,
		Priority:          prio,
		MaxAdvertInterval: cfg.Machine.AdvertInterval,
		Addresses:         cfg.VIPs,
	}
	if version == 2 && cfg.AuthPass != "" {
		adv.AuthType = authPass
		copy(adv.AuthData[:], cfg.AuthPass)
	}
	var out []Packet
	for _, dst := range cfg.destinations() {
		b, err := MarshalAdvertisement(&adv, cfg.Machine.Addr, dst, mode)
		if err != nil {
			return nil, err
		}
		out = append(out, Packet{Dst: dst, B: b})
	}
	return out, nil
}

// destinations are the unicast peers, or the group of the VIPs' family.
func (cfg RunnerConfig) destinations() []netip.Addr {
	switch {
	case cfg.Unicast:
		return cfg.Peers
	case len(cfg.VIPs) > 0 && cfg.VIPs[0].Is6():
		return []netip.Addr{IPv6Group}
	}
	return []netip.Addr{IPv4Group}
}

// post puts something in the mailbox and wakes the runner.
func (r *Runner) post(f func(*mailbox)) {
	r.mu.Lock()
	f(&r.box)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stop asks for a graceful stop: a MASTER sends priority 0 and serves until
// the new master is heard, then Run returns. It may be called at any time,
// before Run too (the instance then never starts), and never blocks.
func (r *Runner) Stop() { r.post(func(b *mailbox) { b.stop = true }) }

// SetPriority feeds the effective priority computed from trackers. The
// latest value wins: callers that compute it under their own lock and call
// SetPriority under that lock can never leave a stale value behind.
func (r *Runner) SetPriority(prio uint8, fault bool, reason string) {
	r.post(func(b *mailbox) { b.prio = &PriorityChanged{Priority: prio, Fault: fault, Reason: reason} })
}

// SetReady says the first round of health checks is complete.
func (r *Runner) SetReady() { r.post(func(b *mailbox) { b.ready = true }) }

// VIPRemoved says something else removed one of the instance's VIPs.
func (r *Runner) VIPRemoved() { r.post(func(b *mailbox) { b.vipRemoved = true }) }

// LinkUp says the instance's interface came back up.
func (r *Runner) LinkUp() { r.post(func(b *mailbox) { b.linkUp = true }) }

// Relisten says the instance's frontends changed: a MASTER binds them.
func (r *Runner) Relisten() { r.post(func(b *mailbox) { b.relisten = true }) }

// MasterGone says the vipd process at from (an advert source) is gone
// while its host lives; a BACKUP following it takes over after GoneSkew.
// It never blocks, and a peer's is never lost: one slot per sender (a
// repeat keeps the slot), bounded by maxGoneSlots distinct senders per
// wakeup; the peers of an instance are a handful.
func (r *Runner) MasterGone(from netip.Addr, reason string) {
	r.post(func(b *mailbox) {
		for i := range b.gone {
			if b.gone[i].From == from {
				b.gone[i].Reason = reason
				return
			}
		}
		if len(b.gone) < maxGoneSlots {
			b.gone = append(b.gone, MasterGone{From: from, Reason: reason})
		}
	})
}

// maxGoneSlots bounds the mailbox: more distinct senders than this in one
// wakeup cannot be peers of one instance.
const maxGoneSlots = 64

// Leave hands the VIP over (a drill). It returns ErrNotMaster on a backup,
// ErrStopped once stopped, and an error if a drill is already being
// started.
func (r *Runner) Leave(ctx context.Context, hold time.Duration, hard bool) error {
	req := &leaveRequest{ev: Leave{Hold: hold, Hard: hard}, reply: make(chan error, 1)}
	busy := false
	r.post(func(b *mailbox) {
		if b.leave != nil {
			busy = true
			return
		}
		b.leave = req
	})
	if busy {
		return errors.New("vrrp: a leave is already pending")
	}
	select {
	case err := <-req.reply:
		return err
	case <-r.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when Run has returned.
func (r *Runner) Done() <-chan struct{} { return r.done }

// String describes the runner for logs.
func (r *Runner) String() string {
	return fmt.Sprintf("vrid %d on %s", r.cfg.Machine.VRID, r.cfg.Machine.Addr)
}
