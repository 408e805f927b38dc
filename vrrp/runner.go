package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Conn is the VRRP socket a Runner reads and writes. netcfg.VRRPConn
// implements it; tests use an in-memory pair.
type Conn interface {
	// ReadFrom returns one VRRP message (IP header stripped), its source
	// and destination addresses and the TTL it arrived with.
	ReadFrom(b []byte) (n int, src, dst netip.Addr, ttl int, err error)
	// WriteTo sends one VRRP message to dst (the group, or a unicast peer).
	WriteTo(b []byte, dst netip.Addr) error
	Close() error
}

// Effects carry out the machine's actions on the host, in the order the
// machine emits them (DESIGN.md section 4). Methods run on the runner's
// goroutine and must not block for long: Announce starts a burst and
// returns.
type Effects interface {
	Listen() error
	AddVIP() error
	Announce()
	RemoveVIP() error
	Unlisten()
	CloseConns()
	Transition(from, to State, reason string)
}

// ErrNotMaster is returned by Leave on a node that is not MASTER.
var ErrNotMaster = errors.New("vrrp: not master")

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Machine  Config
	VIPs     []netip.Addr // the addresses put in adverts
	Checksum ChecksumMode // transmit form; both are accepted on receive
	Unicast  bool
	Peers    []netip.Addr // unicast: the only sources accepted and the destinations
	Log      zerolog.Logger
}

// Runner drives a Machine with a real socket and a real timer.
type Runner struct {
	cfg  RunnerConfig
	conn Conn
	fx   Effects
	m    *Machine
	log  zerolog.Logger

	events chan request
	pkts   chan AdvertReceived
	dsts   []netip.Addr

	sent, received, late atomic.Uint64

	// Send failures, counted and logged at most once a minute (runner
	// goroutine only).
	sendErrs      uint64
	sendErrLogged time.Time
	lateAt        time.Time // the deadline whose stall was last logged

	mu      sync.Mutex
	snap    RunnerStatus
	drops   map[DropReason]uint64
	senders map[netip.Addr]*Sender
	lastLog map[DropReason]time.Time
}

// Sender is a router heard on our VRID.
type Sender struct {
	Addr     netip.Addr
	Priority uint8
	Interval time.Duration
	Checksum ChecksumMode
	LastSeen time.Time
	Count    uint64
}

// TransitionRecord is one state change with its reason.
type TransitionRecord struct {
	At       time.Time
	From, To State
	Reason   string
}

// RunnerStatus is a snapshot for status output.
type RunnerStatus struct {
	MachineStatus
	LastTransition  time.Time
	LastReason      string
	Transitions     int
	Recent          []TransitionRecord // newest first, at most 16
	AdvertsSent     uint64
	AdvertsReceived uint64
	LateTimers      uint64
	Drops           map[DropReason]uint64
	Senders         []Sender
}

type request struct {
	ev    Event
	reply chan error
}

// NewRunner validates cfg and builds the machine; Run starts it.
func NewRunner(cfg RunnerConfig, conn Conn, fx Effects) (*Runner, error) {
	m, err := NewMachine(cfg.Machine)
	if err != nil {
		return nil, err
	}
	if len(cfg.VIPs) == 0 {
		return nil, errors.New("vrrp: no virtual addresses")
	}
	if cfg.Checksum == 0 {
		cfg.Checksum = ChecksumPseudoHeader
	}
	r := &Runner{
		cfg: cfg, conn: conn, fx: fx, m: m, log: cfg.Log,
		events:  make(chan request),
		pkts:    make(chan AdvertReceived, 64),
		drops:   make(map[DropReason]uint64),
		senders: make(map[netip.Addr]*Sender),
		lastLog: make(map[DropReason]time.Time),
	}
	if cfg.Unicast {
		r.dsts = cfg.Peers
	} else if cfg.VIPs[0].Is4() {
		r.dsts = []netip.Addr{IPv4Group}
	} else {
		r.dsts = []netip.Addr{IPv6Group}
	}
	r.snap.MachineStatus = m.Status()
	return r, nil
}

// Run starts the instance and runs until Shutdown completes or ctx is
// done. On ctx cancellation without a Shutdown, a MASTER drops the VIP and
// listeners at once (no priority 0: that is what Shutdown is for).
func (r *Runner) Run(ctx context.Context) error {
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	go r.readLoop(readCtx)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if r.exec(r.m.Step(time.Now(), Start{})) {
		return nil
	}
	for {
		at, gen := r.m.Deadline()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !at.IsZero() {
			timer.Reset(time.Until(at))
		}
		var acts []Action
		woke := func() {
			// Checked on every wakeup, not only when the timer wins the
			// select: after a SIGSTOP a queued advert may be handled
			// first and move the deadline, hiding the stall.
			if !at.IsZero() && !r.lateSeen(at) {
				if late := time.Since(at); late > r.lateThreshold() {
					r.late.Add(1)
					r.lateAt = at
					r.log.Warn().Dur("late", late).Msg("timer fired late: this process was stalled (SIGSTOP, CPU starvation or a suspended VM?)")
				}
			}
		}
		select {
		case <-ctx.Done():
			if r.m.Status().State == StateMaster {
				r.fx.RemoveVIP()
				r.fx.Unlisten()
				r.fx.CloseConns()
			}
			return ctx.Err()
		case adv := <-r.pkts:
			woke()
			acts = r.m.Step(time.Now(), adv)
		case now := <-timer.C:
			woke()
			acts = r.m.Step(now, TimerFired{Gen: gen})
		case req := <-r.events:
			woke()
			if _, ok := req.ev.(Leave); ok && r.m.Status().State != StateMaster {
				req.reply <- ErrNotMaster
				continue
			}
			acts = r.m.Step(time.Now(), req.ev)
			req.reply <- nil
		}
		if r.exec(acts) {
			return nil
		}
	}
}

// lateSeen reports whether the stall past deadline at was logged already.
func (r *Runner) lateSeen(at time.Time) bool { return r.lateAt.Equal(at) }

func (r *Runner) lateThreshold() time.Duration {
	t := r.cfg.Machine.AdvertInterval
	if t < 100*time.Millisecond {
		t = 100 * time.Millisecond
	}
	return t
}

// exec carries out actions in order; it reports whether the machine stopped.
func (r *Runner) exec(acts []Action) (stopped bool) {
	// The machine has decided already: publish its state before carrying
	// out the effects, so status never shows a state older than the
	// transitions it lists.
	r.mu.Lock()
	r.snap.MachineStatus = r.m.Status()
	r.mu.Unlock()
	for _, a := range acts {
		switch a.Kind {
		case ActionTransition:
			r.record(a)
			r.fx.Transition(a.From, a.To, a.Reason)
		case ActionListen:
			if err := r.fx.Listen(); err != nil {
				r.log.Error().Err(err).Msg("proxy listeners could not bind on the VIP")
			}
		case ActionAddVIP:
			if err := r.fx.AddVIP(); err != nil {
				r.log.Error().Err(err).Msg("adding the VIP failed")
			}
		case ActionAnnounce:
			r.fx.Announce()
		case ActionSendAdvert:
			r.send(a.Priority)
		case ActionRemoveVIP:
			if err := r.fx.RemoveVIP(); err != nil {
				r.log.Error().Err(err).Msg("removing the VIP failed")
			}
		case ActionUnlisten:
			r.fx.Unlisten()
		case ActionCloseConns:
			r.fx.CloseConns()
		case ActionStopped:
			stopped = true
		}
	}
	return stopped
}

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

func (r *Runner) send(prio uint8) {
	adv := Advertisement{
		Version:           3,
		Type:              TypeAdvertisement,
		VRID:              r.cfg.Machine.VRID,
		Priority:          prio,
		MaxAdvertInterval: r.cfg.Machine.AdvertInterval,
		Addresses:         r.cfg.VIPs,
	}
	for _, dst := range r.dsts {
		b, err := MarshalAdvertisement(&adv, r.cfg.Machine.Addr, dst, r.cfg.Checksum)
		if err != nil {
			r.log.Error().Err(err).Msg("encode advert")
			return
		}
		if err := r.conn.WriteTo(b, dst); err != nil {
			// An interface that is down fails every advert: log the
			// first and then once a minute, with the count.
			r.sendErrs++
			if now := time.Now(); now.Sub(r.sendErrLogged) > time.Minute {
				r.log.Warn().Err(err).Str("dst", dst.String()).Uint64("failed_sends", r.sendErrs).Msg("send advert (logged once a minute)")
				r.sendErrLogged = now
			}
			continue
		}
		r.sent.Add(1)
	}
}

// readLoop validates packets and hands good adverts to Run. Drops are
// counted by reason and logged at most once a minute per reason.
func (r *Runner) readLoop(ctx context.Context) {
	buf := make([]byte, 1500)
	for {
		n, src, dst, ttl, err := r.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn().Err(err).Msg("read VRRP socket")
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		adv, mode, reason := r.validate(buf[:n], src, dst, ttl)
		if reason != "" {
			r.drop(reason, src)
			continue
		}
		r.received.Add(1)
		now := time.Now()
		r.mu.Lock()
		s := r.senders[src]
		if s == nil {
			s = &Sender{Addr: src}
			r.senders[src] = s
		}
		s.Priority, s.Interval, s.Checksum, s.LastSeen = adv.Priority, adv.MaxAdvertInterval, mode, now
		s.Count++
		r.mu.Unlock()
		select {
		case r.pkts <- AdvertReceived{From: src, Priority: adv.Priority, Interval: adv.MaxAdvertInterval}:
		case <-ctx.Done():
			return
		}
	}
}

// validate applies RFC 9568 section 7.1 receive checks.
func (r *Runner) validate(b []byte, src, dst netip.Addr, ttl int) (Advertisement, ChecksumMode, DropReason) {
	var adv Advertisement
	if src == r.cfg.Machine.Addr {
		return adv, 0, DropSelf
	}
	if ttl != 255 {
		return adv, 0, DropTTL
	}
	if r.cfg.Unicast && !contains(r.cfg.Peers, src) {
		return adv, 0, DropPeer
	}
	if err := adv.UnmarshalBinary(b); err != nil {
		return adv, 0, Reason(err)
	}
	if adv.VRID != r.cfg.Machine.VRID {
		return adv, 0, DropVRID
	}
	mode, err := VerifyChecksum(b, src, dst)
	if err != nil {
		return adv, 0, Reason(err)
	}
	if len(adv.Addresses) > 0 && adv.Addresses[0].Is4() != r.cfg.VIPs[0].Is4() {
		return adv, 0, DropFamily
	}
	return adv, mode, ""
}

func contains(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func (r *Runner) drop(reason DropReason, src netip.Addr) {
	r.mu.Lock()
	r.drops[reason]++
	now := time.Now()
	logIt := reason != DropSelf && now.Sub(r.lastLog[reason]) > time.Minute
	if logIt {
		r.lastLog[reason] = now
	}
	r.mu.Unlock()
	if logIt {
		r.log.Warn().Str("reason", string(reason)).Str("src", src.String()).Msg("dropped VRRP packet (logged once a minute per reason; see drops in status)")
	}
}

func (r *Runner) do(ctx context.Context, ev Event) error {
	req := request{ev: ev, reply: make(chan error, 1)}
	select {
	case r.events <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetPriority feeds the effective priority computed from trackers.
func (r *Runner) SetPriority(ctx context.Context, prio uint8, fault bool, reason string) error {
	return r.do(ctx, PriorityChanged{Priority: prio, Fault: fault, Reason: reason})
}

// SetReady says the first round of health checks is complete.
func (r *Runner) SetReady(ctx context.Context) error { return r.do(ctx, Ready{}) }

// Leave hands the VIP over (a drill). It returns ErrNotMaster on a backup.
func (r *Runner) Leave(ctx context.Context, hold time.Duration, hard bool) error {
	return r.do(ctx, Leave{Hold: hold, Hard: hard})
}

// Shutdown starts a terminal stop: a MASTER sends priority 0 and serves
// until the new master is heard. Run returns when it is complete.
func (r *Runner) Shutdown(ctx context.Context) error { return r.do(ctx, Shutdown{}) }

// Status returns a snapshot.
func (r *Runner) Status() RunnerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.snap
	s.Recent = append([]TransitionRecord(nil), r.snap.Recent...)
	s.AdvertsSent = r.sent.Load()
	s.AdvertsReceived = r.received.Load()
	s.LateTimers = r.late.Load()
	s.Drops = make(map[DropReason]uint64, len(r.drops))
	for k, v := range r.drops {
		s.Drops[k] = v
	}
	for _, x := range r.senders {
		s.Senders = append(s.Senders, *x)
	}
	sort.Slice(s.Senders, func(i, j int) bool { return s.Senders[i].Addr.Less(s.Senders[j].Addr) })
	return s
}

// String describes the runner for logs.
func (r *Runner) String() string {
	return fmt.Sprintf("vrid %d on %s", r.cfg.Machine.VRID, r.cfg.Machine.Addr)
}
