package daemon

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// vipEffects carries out one instance's actions on the host: its
// frontends' listeners and connections, its VIPs, its gratuitous ARP. It
// is the only code that touches them, and it runs on the instance's runner
// goroutine (vrrp.Effects). Nothing else adds or removes a VIP.
type vipEffects struct {
	log   zerolog.Logger
	os    *OS
	proxy Proxy
	// ctx is the parent of the announce goroutine: Run's context.
	ctx    context.Context
	ifname string
	// vips are the VIPs vipd adds and removes; an address owner's own
	// address is not among them (config.Instance.Owns): vipd never
	// deletes a node's own address.
	vips []netip.Prefix
	// announced are every VIP address, owned or not, for GARP.
	announced []netip.Addr
	ann       netcfg.Announcer // nil: nothing to announce (solo)
	// onTransition logs, runs hooks and wakes the subscribers.
	onTransition func(from, to vrrp.State, prio uint8, reason string)

	mu        sync.Mutex // frontends and garp change on reload
	frontends []string
	garp      garpSettings

	// settled is closed once a resumed instance bound its listeners (or
	// had none to bind): the adopted listeners left over may go then.
	settled    chan struct{}
	settleOnce sync.Once

	// Runner goroutine only.
	held        bool               // this process added the VIPs
	stopAnnounc context.CancelFunc // the burst and refresh running, if any
	announcing  sync.WaitGroup
}

type garpSettings struct {
	repeat            int
	interval, refresh time.Duration
}

var _ vrrp.Effects = (*vipEffects)(nil)

func (e *vipEffects) current() ([]string, garpSettings) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.frontends, e.garp
}

// reconfigure takes a reload's frontends and GARP settings; it reports
// whether frontends were added (a MASTER must bind them).
func (e *vipEffects) reconfigure(frontends []string, g garpSettings) (added bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range frontends {
		if !slices.Contains(e.frontends, f) {
			added = true
		}
	}
	e.frontends, e.garp = frontends, g
	return added
}

func (e *vipEffects) Listen() error {
	defer e.settle()
	fes, _ := e.current()
	if len(fes) == 0 {
		return nil
	}
	return e.proxy.Listen(fes...)
}

// settle marks the instance's listeners as bound (see settled).
func (e *vipEffects) settle() {
	e.settleOnce.Do(func() {
		if e.settled != nil {
			close(e.settled)
		}
	})
}

func (e *vipEffects) AddVIP() error {
	var errs []error
	for _, p := range e.vips {
		errs = append(errs, e.os.Addrs.AddVIP(e.ifname, p))
	}
	e.held = true
	return errors.Join(errs...)
}

// Announce starts a burst of rounds rounds (0: the configured burst) and
// then the periodic refresh, replacing any burst still running.
//
// The first round goes out here, on the runner's goroutine, before the
// advert the machine sends next: the old master lets go of the VIP when it
// hears that advert, and a client that has not yet heard where the VIP
// went would send its SYNs to a host that no longer holds it. The rest of
// the burst and the refresh run in the background.
func (e *vipEffects) Announce(rounds int) {
	if e.ann == nil || len(e.announced) == 0 {
		return
	}
	e.StopAnnounce()
	_, g := e.current()
	if rounds <= 0 {
		rounds = g.repeat
	}
	for _, ip := range e.announced {
		if err := e.ann.Announce(ip); err != nil {
			e.log.Warn().Err(err).Str("vip", ip.String()).Msg("gratuitous ARP")
			break
		}
	}
	e.background(rounds, g)
}

// background runs the rest of a burst of rounds (the first went out) and
// then the periodic refresh.
func (e *vipEffects) background(rounds int, g garpSettings) {
	ctx, cancel := context.WithCancel(e.ctx)
	e.stopAnnounc = cancel
	e.announcing.Add(1)
	go func() {
		defer e.announcing.Done()
		if rounds > 1 {
			t := time.NewTimer(g.interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if err := e.os.Burst(ctx, e.ann, e.announced, rounds-1, g.interval); err != nil && ctx.Err() == nil {
				e.log.Warn().Err(err).Msg("gratuitous ARP burst")
			}
		}
		if g.refresh <= 0 {
			return
		}
		t := time.NewTicker(g.refresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, ip := range e.announced {
					if err := e.ann.Announce(ip); err != nil {
						e.log.Warn().Err(err).Msg("gratuitous ARP refresh")
					}
				}
			}
		}
	}()
}

// StopAnnounce stops the burst and the refresh and waits for them.
func (e *vipEffects) StopAnnounce() {
	if e.stopAnnounc != nil {
		e.stopAnnounc()
		e.stopAnnounc = nil
	}
	e.announcing.Wait()
}

// Resumed takes up a state handed over by the old process of a restart:
// a MASTER's VIPs are this process's now and their periodic refresh runs
// on (no burst: nothing moved).
func (e *vipEffects) Resumed(state vrrp.State) {
	if state != vrrp.StateMaster {
		e.settle() // nothing to bind
		return
	}
	e.held = true
	if e.ann == nil || len(e.announced) == 0 {
		return
	}
	_, g := e.current()
	e.background(1, g)
}

func (e *vipEffects) RemoveVIP() error {
	var errs []error
	for _, p := range e.vips {
		if !e.held {
			// Not ours to our knowledge: a crashed run's, or an
			// operator's. Say so when there is one.
			if has, err := e.os.Addrs.HasVIP(e.ifname, p); err == nil && has {
				e.log.Warn().Str("vip", p.String()).Str("interface", e.ifname).
					Msg("removing a VIP this process did not add (left behind by a previous run: a node that is not MASTER must not hold it, or clients get refused connections)")
			}
		}
		errs = append(errs, e.os.Addrs.RemoveVIP(e.ifname, p))
	}
	err := errors.Join(errs...)
	if err == nil {
		e.held = false
	}
	return err
}

func (e *vipEffects) Unlisten() {
	if fes, _ := e.current(); len(fes) > 0 {
		e.proxy.Unlisten(fes...)
	}
}

func (e *vipEffects) CloseConns() {
	if fes, _ := e.current(); len(fes) > 0 {
		e.proxy.CloseConns(fes...)
	}
}

func (e *vipEffects) Transition(from, to vrrp.State, prio uint8, reason string) {
	e.onTransition(from, to, prio, reason)
}
