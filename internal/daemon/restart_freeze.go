package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vipd/vipd/proxy"
	"github.com/vipd/vipd/vrrp"
)

// frozen is what the old process stopped for a restart: Resume (thaw) or
// let go of (abandon) exactly that.
type frozen struct {
	at      time.Time
	last    time.Time          // end of the last phase
	phases  map[string]float64 // ms each phase took (control.RestartResult.PhasesMs)
	runners []*instance
	health  bool
	aux     bool
	proxy   bool
	files   []*os.File // duplicates for the child; closed once sent
	state   restartState
}

// freeze stops everything that acts at a safe point and collects the
// state and the sockets: health results (trackers' verdicts with them),
// the beacon and liveness (with a goodbye), the proxy (its export is the
// longest step), and the runners last, each right after an advert, so
// the new process's whole interval is left for the handover itself. A
// runner whose effect waits on the frozen proxy (a transition in that
// window) cannot freeze: the freeze gives up after runnerFreezeMax and
// everything is thawed, as on any error.
func (d *Daemon) freeze(ctx context.Context) (_ *frozen, err error) {
	fr := &frozen{at: time.Now()}
	fr.last = fr.at
	defer func() {
		if err != nil {
			d.thaw(fr) // what froze so far
		}
	}()
	st := &fr.state
	st.PID, st.BinaryVersion, st.Started = os.Getpid(), Version, d.started
	st.ControlFD, st.HTTPFD = -1, -1
	d.health.pause()
	fr.health = true
	st.Checks = d.health.saved()
	st.Trackers = d.trk.saved()
	st.Servers = adminStates(d.proxy)
	st.LastDrill = d.drills.last()
	d.stopAux("restarting: a new vipd process takes over")
	fr.aux = true
	for _, l := range []struct {
		ln net.Listener
		fd *int
	}{{d.ctlLn, &st.ControlFD}, {d.httpLn, &st.HTTPFD}} {
		f, err := listenerFile(l.ln)
		if err != nil {
			return nil, err
		}
		if f != nil {
			*l.fd = fr.add(f)
		}
	}
	h, pfiles, err := d.proxy.Freeze(ctx)
	if err != nil {
		return nil, err
	}
	fr.proxy = true
	fr.phase("export")
	defer func() {
		if err != nil {
			closeFiles(pfiles)
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, runnerFreezeMax(d.insts))
	snaps, err := d.freezeRunners(rctx, fr)
	cancel()
	if err != nil {
		return nil, err
	}
	fr.at = time.Now() // a MASTER froze right after an advert: from here
	fr.last = fr.at
	for i, inst := range fr.runners {
		is := instanceState{Name: inst.name, Solo: inst.solo, VRID: inst.cfg.VRID, Interface: inst.ifname, Runner: snaps[i], ConnFD: -1, Plan: inst.plan}
		if inst.conn != nil {
			f, err := d.os.ExportVRRP(inst.conn)
			if err != nil {
				return nil, fmt.Errorf("instance %s: %w", inst.name, err)
			}
			is.ConnFD = fr.add(f)
		}
		st.Instances = append(st.Instances, is)
	}
	st.Proxy, st.ProxyBase = h, len(fr.files)
	fr.files = append(fr.files, pfiles...)
	st.FrozenAt = fr.at
	return fr, nil
}

// runnerFreezeMax bounds the runners' freeze: a MASTER waits up to one
// interval for its advert, and half of one more is slack. A runner stuck
// longer (its effect waits on the frozen proxy) has not advertised for
// at most 2.5 intervals when it resumes: its peers wait 3 and more.
func runnerFreezeMax(insts []*instance) time.Duration {
	var d time.Duration
	for _, inst := range insts {
		if iv := inst.runner.Status().MasterInterval; d == 0 || iv < d {
			d = iv
		}
	}
	return max(d*3/2, 50*time.Millisecond)
}

// freezeRunners freezes every running instance at once (a MASTER waits
// for its next advert, and several must not wait in turn); fr.runners
// lists the frozen ones, in order, also on error.
func (d *Daemon) freezeRunners(ctx context.Context, fr *frozen) ([]vrrp.Snapshot, error) {
	var insts []*instance
	for _, inst := range d.insts {
		if !stoppedRunner(inst) { // a leaving instance that has left is not
			insts = append(insts, inst)
		}
	}
	snaps := make([]vrrp.Snapshot, len(insts))
	errs := make([]error, len(insts))
	var wg sync.WaitGroup
	for i, inst := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps[i], errs[i] = inst.runner.Freeze(ctx)
		}()
	}
	wg.Wait()
	var out []vrrp.Snapshot
	var first error
	for i, inst := range insts {
		if errs[i] != nil {
			if first == nil {
				first = fmt.Errorf("instance %s: %w", inst.name, errs[i])
			}
			continue
		}
		fr.runners = append(fr.runners, inst)
		out = append(out, snaps[i])
	}
	return out, first
}

// deadline is when the handover must be done, or be rolled back: a
// MASTER's next advert, a whole interval after the freeze, plus a
// quarter (the new process sends it then at the latest: no gap over
// 1.25 intervals; its peers wait three and more),
// a BACKUP's Master_Down_Timer (past it, a master that failed meanwhile
// would be noticed late). Handoff's own deadlines apply as well.
func (fr *frozen) deadline() time.Time {
	at := fr.at.Add(handoffMax)
	for _, is := range fr.state.Instances {
		m := is.Runner.Machine
		var due time.Time
		switch {
		case is.Solo:
		case m.State == "MASTER" && !m.AdverAt.IsZero():
			due = m.AdverAt.Add(m.MasterInterval / 4)
		case m.State == "BACKUP":
			due = m.DownTimer
		}
		if !due.IsZero() && due.Before(at) {
			at = due
		}
	}
	return at
}

// handoffMax bounds a handover with nothing that falls due (single LB, a
// FAULT node): READY and RUNNING's own deadlines.
const handoffMax = 12 * time.Second

// phase records how long the step that just ended took.
func (fr *frozen) phase(name string) {
	now := time.Now()
	if fr.phases == nil {
		fr.phases = map[string]float64{}
	}
	fr.phases[name] = ms(now.Sub(fr.last))
	fr.last = now
}

// add appends f to the files and returns its index.
func (fr *frozen) add(f *os.File) int {
	fr.files = append(fr.files, f)
	return len(fr.files) - 1
}

// listenerFile duplicates a listener's socket for the child; nil for a
// listener that has none (a test's fake): the child binds its own.
func listenerFile(ln net.Listener) (*os.File, error) {
	fl, ok := ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, nil
	}
	f, err := fl.File()
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", ln.Addr(), err)
	}
	return f, nil
}

// thaw undoes freeze after a failed handover: everything carries on where
// it stopped.
func (d *Daemon) thaw(fr *frozen) {
	if fr == nil {
		return
	}
	closeFiles(fr.files)
	fr.files = nil
	if fr.proxy {
		if err := d.proxy.Resume(); err != nil {
			d.log.Error().Err(err).Msg("restart rollback: resume the proxy")
		}
	}
	if fr.aux {
		d.startAux(d.runCtx)
	}
	if fr.health {
		d.health.resume()
	}
	for _, inst := range fr.runners {
		if err := inst.runner.Resume(); err != nil {
			inst.log.Error().Err(err).Msg("restart rollback: resume the instance")
		}
	}
}

// abandon lets go of everything frozen once the new process runs: no
// leave action, no shutdown(2) on a socket the new process holds.
//
// The control socket's path is the new process's now, so this process
// must not unlink it when it closes its copy of the listener; that is
// settled first. An abandoned runner's Run returns ErrHandedOver, which
// ends the daemon's run group and with it the control server, which closes
// the listener. When that won the race against a later SetUnlinkOnClose,
// the listener unlinked the path and the new process served on a control
// socket no client could reach: only a first restart (later processes
// adopt a listener that never unlinks), seen in `make bench-restart` on
// the master 4 times over two days (TestAbandonKeepsControlPath).
func (d *Daemon) abandon(fr *frozen) {
	if ul, ok := d.ctlLn.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	closeFiles(fr.files)
	fr.files = nil
	if fr.proxy {
		d.proxy.Abandon()
	}
	for _, inst := range fr.runners {
		inst.runner.Abandon()
	}
}

// adminStates lists the servers an operator took out of rotation.
func adminStates(p Proxy) []serverSaved {
	var out []serverSaved
	for _, b := range p.Status().Backends {
		for _, s := range b.Servers {
			if s.Admin == proxy.AdminDrain.String() || s.Admin == proxy.AdminMaint.String() {
				out = append(out, serverSaved{Backend: b.Name, Server: s.Name, Admin: s.Admin, DrainEnds: s.DrainEnds})
			}
		}
	}
	return out
}

// stoppedRunner reports whether the instance's runner has returned.
func stoppedRunner(inst *instance) bool {
	select {
	case <-inst.runner.Done():
		return true
	default:
		return false
	}
}
