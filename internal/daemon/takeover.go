package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/handoff"
	"github.com/vipd/vipd/proxy"
)

// The new side of a hitless restart: Run, with Options.Handoff, says
// hello, receives the state and the sockets, builds everything on them
// without binding or sending anything, says READY, waits for GO, starts,
// and says RUNNING. Any failure before READY is an error: this process
// exits and the old one rolls back.

// awaitGoTimeout bounds the wait for GO: the old process sends it as soon
// as it reads READY.
const awaitGoTimeout = 30 * time.Second

// adoption is what the old process handed over; nil when Run starts
// fresh. Its methods accept a nil receiver.
type adoption struct {
	p     Predecessor
	st    *restartState
	files []*os.File // [0, st.ProxyBase): ours to close; the rest is the proxy's
	taken map[string]bool
	at    time.Time
}

// receive takes over from the old process when there is one: nil when
// there is none, or when it refused (no common format: it has exited
// when receive returns, and Run starts fresh).
func (d *Daemon) receive(ctx context.Context) (*adoption, error) {
	p := d.opts.Handoff
	if p == nil {
		return nil, nil
	}
	log := d.log.With().Str("component", "restart").Logger()
	if err := p.Hello(handoff.Hello{PID: os.Getpid(), BinaryVersion: Version, Formats: d.formatsRead()}); err != nil {
		p.Close()
		return nil, fmt.Errorf("restart: hello: %w", err)
	}
	msg, err := p.Receive(ctx)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("restart: receive the state: %w", err)
	}
	if msg.Refused {
		log.Warn().Str("reason", msg.Reason).Msg("the running vipd cannot hand its state to this version: it hands the VIP over (priority 0) and exits; starting fresh once it has")
		err := p.AwaitExit(ctx)
		p.Close()
		if err != nil {
			return nil, fmt.Errorf("restart: wait for the old process to exit: %w", err)
		}
		log.Info().Msg("the old process has exited: starting fresh")
		return nil, nil
	}
	st, err := decodeState(msg.Format, msg.Body, len(msg.Files))
	if err != nil {
		closeFiles(msg.Files)
		p.Refuse(err.Error())
		p.Close()
		return nil, err
	}
	log.Info().Int("old_pid", st.PID).Str("old_version", st.BinaryVersion).Int("instances", len(st.Instances)).
		Int("files", len(msg.Files)).Msg("taking over from the old process")
	return &adoption{p: p, st: st, files: msg.Files, taken: map[string]bool{}, at: time.Now()}, nil
}

// file returns the handed-over file at i (nil for -1).
func (a *adoption) file(i int) *os.File {
	if a == nil || i < 0 || i >= a.st.ProxyBase {
		return nil
	}
	return a.files[i]
}

// close closes the files that are ours (adopters hold duplicates).
func (a *adoption) close() {
	if a == nil {
		return
	}
	closeFiles(a.files[:a.st.ProxyBase])
}

// fail tells the old process why this one gives up (it rolls back) and
// returns err.
func (a *adoption) fail(err error) error {
	if a != nil {
		a.p.Refuse(err.Error())
		a.p.Close()
	}
	return err
}

// instance takes the state of the instance with that VRID on that
// interface (a renamed one is the same virtual router; solo: the
// single-LB instance); nil when none.
func (a *adoption) instance(vrid uint8, ifname string, solo bool) *instanceState {
	if a == nil {
		return nil
	}
	for i := range a.st.Instances {
		is := &a.st.Instances[i]
		same := solo && is.Solo || !solo && !is.Solo && is.VRID == vrid && is.Interface == ifname
		if same && !a.taken[is.Name] {
			a.taken[is.Name] = true
			return is
		}
	}
	return nil
}

// leftovers are the instances the new config does not have.
func (a *adoption) leftovers() []*instanceState {
	if a == nil {
		return nil
	}
	var out []*instanceState
	for i := range a.st.Instances {
		if is := &a.st.Instances[i]; !a.taken[is.Name] {
			a.taken[is.Name] = true
			out = append(out, is)
		}
	}
	return out
}

// ready says READY and waits for GO.
func (a *adoption) ready(ctx context.Context) error {
	if a == nil {
		return nil
	}
	if err := a.p.Ready(); err != nil {
		return fmt.Errorf("restart: ready: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, awaitGoTimeout)
	defer cancel()
	if err := a.p.AwaitGo(ctx); err != nil {
		return fmt.Errorf("restart: wait for GO: %w", err)
	}
	return nil
}

// running says RUNNING once everything started; once the old process has
// exited (it sent systemd our pid first) this one speaks to systemd.
func (a *adoption) running(ctx context.Context, d *Daemon) {
	if err := a.p.Running(); err != nil {
		d.log.Warn().Err(err).Msg("restart: could not say RUNNING; the old process rolls back")
	}
	res := control.RestartResult{Outcome: control.RestartHandedOver, OldPID: a.st.PID, NewPID: os.Getpid(), At: a.at,
		TookMs: ms(time.Since(a.at)), FrozenMs: ms(time.Since(a.st.FrozenAt)),
		Reason: fmt.Sprintf("took over from vipd %s (pid %d)", a.st.BinaryVersion, a.st.PID)}
	if a.st.Proxy != nil {
		res.Conns, res.Listeners = len(a.st.Proxy.Conns), len(a.st.Proxy.Listeners)
	}
	d.setLastRestart(res)
	go d.closeUnadopted(ctx)
	go func() {
		a.p.AwaitExit(ctx)
		a.p.Close()
		d.log.Info().Str("component", "restart").Int("old_pid", a.st.PID).Msg("the old process has exited")
		d.systemd(ctx)
	}()
}

// closeUnadopted closes the listeners handed over that no frontend took
// (one the new config dropped), once every resumed instance bound its
// own: closing one earlier would reset the clients in its backlog.
func (d *Daemon) closeUnadopted(ctx context.Context) {
	for _, inst := range d.insts {
		if ch := inst.fx.settled; ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}
	if n := d.proxy.CloseAdopted(); n > 0 {
		d.log.Info().Str("component", "restart").Int("listeners", n).Msg("closed the listeners handed over that no frontend binds any more")
	}
}

// adoptProxy gives the proxy the listeners and connections.
func (d *Daemon) adoptProxy(a *adoption) error {
	files := a.files[a.st.ProxyBase:]
	a.files = a.files[:a.st.ProxyBase]
	if a.st.Proxy == nil {
		closeFiles(files)
		return nil
	}
	return d.proxy.Adopt(a.st.Proxy, files)
}

// controlListener opens the control socket, or takes over the old one.
func (d *Daemon) controlListener(cfg *config.Config, a *adoption) (net.Listener, error) {
	if a != nil {
		if f := a.file(a.st.ControlFD); f != nil {
			ln, err := net.FileListener(f)
			if err != nil {
				return nil, fmt.Errorf("restart: control socket: %w", err)
			}
			if ln.Addr().String() == cfg.Control.Socket {
				return ln, nil
			}
			ln.Close() // [control] socket moved: the old path is the old process's to remove
		}
		// Not handed over: the path is the old process's live socket,
		// which control.Listen would refuse. It is ours now.
		os.Remove(cfg.Control.Socket)
	}
	return d.os.ListenControl(control.SocketOptions{Path: cfg.Control.Socket, Mode: cfg.Control.Mode, Group: cfg.Control.Group})
}

// httpListener binds the status listener, or takes over the old one when
// it listens where the config says.
func (d *Daemon) httpListener(h *config.HTTP, a *adoption) (net.Listener, error) {
	if f := a.file(a.httpFD()); f != nil {
		ln, err := net.FileListener(f)
		if err == nil && sameListen(ln.Addr(), h.Listen) {
			return ln, nil
		}
		if err == nil {
			ln.Close()
		}
	}
	return net.Listen("tcp", h.Listen)
}

func (a *adoption) httpFD() int {
	if a == nil {
		return -1
	}
	return a.st.HTTPFD
}

// sameListen reports whether a listener at addr is what listen asks for.
func sameListen(addr net.Addr, listen string) bool {
	want, err := net.ResolveTCPAddr("tcp", listen)
	got, ok := addr.(*net.TCPAddr)
	return err == nil && ok && want.Port == got.Port && (want.IP == nil && got.IP.IsUnspecified() || want.IP.Equal(got.IP))
}

// adoptState takes the trackers' verdicts, the checks' states, the
// servers' operator states and the last drill.
func (d *Daemon) adoptState(a *adoption) {
	st := a.st
	d.trk.restore(st.Trackers)
	d.health.seed(st.Checks)
	restoreAdmin(d.proxy, st.Servers, time.Now(), d.log)
	if st.LastDrill != nil {
		d.drills.mu.Lock()
		d.drills.lastDone = st.LastDrill
		d.drills.mu.Unlock()
	}
}

// leavingInstances takes up the instances the new config no longer has
// and stops them at once: each leaves the planned way (priority 0 as
// MASTER, then its VIPs go), as on SIGTERM.
func (d *Daemon) leavingInstances(ctx context.Context, a *adoption) ([]*instance, error) {
	var out []*instance
	for _, is := range a.leftovers() {
		if is.Solo {
			continue // the instances of the new config serve its frontends
		}
		inst, err := d.leavingInstance(ctx, a, is)
		if err != nil {
			for _, o := range out {
				o.close()
			}
			return nil, err
		}
		inst.log.Info().Str("state", is.Runner.Machine.State).Msg("instance gone from the config: leaving it the planned way")
		inst.runner.Stop()
		out = append(out, inst)
	}
	return out, nil
}

// restoreAdmin puts the servers an operator took out of rotation back in
// DRAIN or MAINT; a DRAIN keeps the old process's deadline (now is when
// the time left is counted from), so a restart never lengthens a drain.
func restoreAdmin(p Proxy, saved []serverSaved, now time.Time, log zerolog.Logger) {
	for _, s := range saved {
		var err error
		switch {
		case s.Admin == proxy.AdminDrain.String() && !s.DrainEnds.IsZero():
			err = p.SetDrainLeft(s.Backend, s.Server, s.DrainEnds.Sub(now))
		case s.Admin == proxy.AdminDrain.String():
			err = p.SetAdmin(s.Backend, s.Server, proxy.AdminDrain)
		case s.Admin == proxy.AdminMaint.String():
			err = p.SetAdmin(s.Backend, s.Server, proxy.AdminMaint)
		default:
			continue
		}
		if err != nil {
			log.Warn().Err(err).Str("backend", s.Backend).Str("server", s.Server).Msg("restart: server state not carried over (gone from the config)")
		}
	}
}
