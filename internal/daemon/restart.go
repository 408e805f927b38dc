package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/handoff"
)

// Restart hands this node to the binary on disk without a VRRP transition
// and without cutting a connection (`vipd restart`, SIGUSR2): it starts
// the binary as a child, freezes every loop at a safe point, sends the
// state and the sockets (handoff), lets the child start, and once the
// child runs tells systemd its pid (MAINPID) and lets go of everything
// with no leave action; Run then returns. Whatever fails before the child
// runs is rolled back: the child is killed and everything frozen carries
// on where it stopped (Outcome rolled-back, with the reason). A child
// that cannot read this binary's state format gets the planned handover
// instead: this process hands the VIP to the backup and exits as on
// SIGTERM, and the child starts fresh once it has (Outcome
// planned-handover). One restart at a time; BGP mode is refused (a GoBGP
// session cannot be handed to another process).
func (d *Daemon) Restart(ctx context.Context) (control.RestartResult, error) {
	res := control.RestartResult{OldPID: os.Getpid(), At: time.Now()}
	switch {
	case !d.serving.Load():
		return res, fmt.Errorf("%w: vipd is still starting", control.ErrRefused)
	case d.bgpSide() != nil:
		return res, fmt.Errorf("%w: BGP mode: the BGP sessions cannot be handed to a new process without the routers seeing them end; use `systemctl restart vipd` (withdraws this node's VIPs the planned way, as `vipd drain self` does, and the other nodes keep serving)", control.ErrRefused)
	case !d.restarting.CompareAndSwap(false, true):
		return res, fmt.Errorf("%w: a restart is already running", control.ErrRefused)
	}
	handedOver := false
	defer func() {
		if !handedOver {
			d.restarting.Store(false)
		}
	}()
	if !d.drills.running.TryLock() {
		return res, fmt.Errorf("%w: a drill is running; restart once it ended", control.ErrRefused)
	}
	defer d.drills.running.Unlock()
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()

	// The protocol's own deadlines bound every step; a client that hangs
	// up must not roll back a handover half done.
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	log := d.log.With().Str("component", "restart").Logger()
	rollback := func(step string, err error) (control.RestartResult, error) {
		res.Outcome = control.RestartRolledBack
		res.Reason = step + ": " + err.Error()
		res.TookMs = ms(time.Since(start))
		log.Error().Err(err).Str("step", step).Int("new_pid", res.NewPID).Msg("restart rolled back: this process carries on with everything it had")
		d.setLastRestart(res)
		return res, nil
	}

	log.Info().Str("binary", d.exec).Msg("restart: starting the binary on disk")
	succ, err := d.os.StartSuccessor(ctx, handoff.Spawn{
		Path: d.exec, Args: d.args, Env: d.successorEnv(), Stdout: d.opts.Stdout, Stderr: d.opts.Stderr,
	})
	if err != nil {
		return rollback("start "+d.exec, err)
	}
	hello := succ.Hello()
	res.NewPID = succ.PID()
	if !hello.Reads(stateFormat) {
		return d.plannedRestart(succ, hello, res)
	}

	fr, err := d.freeze(ctx)
	if err != nil {
		succ.Abort()
		return rollback("freeze", err)
	}
	if fr.state.Proxy != nil {
		res.Conns, res.Listeners = len(fr.state.Proxy.Conns), len(fr.state.Proxy.Listeners)
	}
	// Frozen, this node sends no advert: the new process must run before
	// a peer could miss one, or this one takes back over.
	hctx, cancel := context.WithDeadline(ctx, fr.deadline())
	step, err := d.handOver(hctx, succ, fr)
	if err != nil && hctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w: the new process did not run within %v of the freeze (an advert of this node falls due then; a peer must not miss it)",
			handoff.ErrTimeout, fr.deadline().Sub(fr.at).Round(time.Millisecond))
	}
	cancel()
	res.FrozenMs, res.PhasesMs = ms(time.Since(fr.at)), fr.phases
	if err != nil {
		succ.Abort()
		d.thaw(fr)
		return rollback(step, err)
	}
	if err := d.os.NotifyMainPID(d.notifySocket, res.NewPID); err != nil {
		log.Warn().Err(err).Int("new_pid", res.NewPID).Msg("could not tell systemd the new main pid (MAINPID=); it may take this process's exit for the service's")
	}
	handedOver = true
	d.handedOver.Store(true)
	d.abandon(fr)
	succ.Close()
	res.Outcome = control.RestartHandedOver
	res.Reason = fmt.Sprintf("vipd %s (pid %d) runs with every socket and the state", hello.BinaryVersion, res.NewPID)
	res.TookMs = ms(time.Since(start))
	log.Info().Int("new_pid", res.NewPID).Str("new_version", hello.BinaryVersion).Float64("took_ms", res.TookMs).
		Float64("frozen_ms", res.FrozenMs).Any("phases_ms", res.PhasesMs).Int("conns", res.Conns).Msg("handed over to the new process; this one exits")
	return res, nil
}

// handOver sends the frozen state and walks the child to RUNNING; it
// names the step that failed.
func (d *Daemon) handOver(ctx context.Context, succ Successor, fr *frozen) (string, error) {
	body, err := fr.state.encode()
	if err != nil {
		return "encode", err
	}
	err = succ.Send(stateFormat, body, fr.files)
	closeFiles(fr.files)
	fr.files = nil
	if err != nil {
		return "send the state", err
	}
	fr.phase("send")
	if err := succ.AwaitReady(ctx); err != nil {
		return "wait for READY", err
	}
	fr.phase("ready")
	select {
	case <-d.stop:
		// A stop (SIGTERM) came meanwhile: it is this process's to carry
		// out the planned way, not to be lost in the handover.
		return "before GO", errors.New("a stop was requested during the restart")
	default:
	}
	if err := succ.Go(); err != nil {
		return "send GO", err
	}
	if err := succ.AwaitRunning(ctx); err != nil {
		return "wait for RUNNING", err
	}
	fr.phase("running")
	return "", nil
}

// plannedRestart is the version skew path: the child cannot read our
// state, so this process stops as on SIGTERM (priority 0, the backup
// takes over) and the child starts fresh once it has exited.
func (d *Daemon) plannedRestart(succ Successor, hello handoff.Hello, res control.RestartResult) (control.RestartResult, error) {
	reason := fmt.Sprintf("vipd %s (pid %d) reads state formats %s and this one writes %d: no hitless handover. "+
		"This process hands the VIP to the backup (priority 0) and exits as on SIGTERM; the new one starts fresh once it has",
		hello.BinaryVersion, res.NewPID, formats(hello.Formats), stateFormat)
	if err := succ.Refuse(reason); err != nil {
		succ.Abort()
		res.Outcome, res.Reason = control.RestartRolledBack, "refuse the new process: "+err.Error()
		d.setLastRestart(res)
		return res, nil
	}
	if err := d.os.NotifyMainPID(d.notifySocket, res.NewPID); err != nil {
		d.log.Warn().Err(err).Msg("could not tell systemd the new main pid (MAINPID=)")
	}
	// The child waits for our end of the socket to close: our exit.
	d.successor = succ
	res.Outcome, res.Reason = control.RestartPlanned, reason
	d.log.Warn().Str("component", "restart").Int("new_pid", res.NewPID).Msg(reason)
	d.Shutdown()
	return res, nil
}

func formats(fs []uint16) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprint(f))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (d *Daemon) setLastRestart(r control.RestartResult) {
	d.restartMu.Lock()
	defer d.restartMu.Unlock()
	d.lastRestart = &r
}

func (d *Daemon) getLastRestart() *control.RestartResult {
	d.restartMu.Lock()
	defer d.restartMu.Unlock()
	return d.lastRestart
}

// initRestart records, at start, what a restart starts and with what:
// the binary as it is now (a package upgrade replaces the file and
// leaves " (deleted)" on the old one's link), argv, and systemd's
// variables before sdnotify takes them out of the environment.
func (d *Daemon) initRestart() {
	d.exec, d.args = d.opts.Exec, d.opts.Args
	if d.exec == "" {
		if exe, err := os.Executable(); err == nil {
			d.exec = strings.TrimSuffix(exe, " (deleted)")
		}
	}
	if len(d.args) == 0 {
		d.args = os.Args
	}
	if d.opts.Stdout == nil {
		d.opts.Stdout = os.Stdout
	}
	if d.opts.Stderr == nil {
		d.opts.Stderr = os.Stderr
	}
	d.notifySocket, d.watchdogUsec = os.Getenv("NOTIFY_SOCKET"), os.Getenv("WATCHDOG_USEC")
}

// successorEnv is this process's environment plus what systemd gave it
// and sdnotify took out of it: the successor must find the notify socket
// and the watchdog too.
func (d *Daemon) successorEnv() []string {
	env := os.Environ()
	if d.notifySocket != "" {
		env = append(env, "NOTIFY_SOCKET="+d.notifySocket)
	}
	if d.watchdogUsec != "" {
		env = append(env, "WATCHDOG_USEC="+d.watchdogUsec)
	}
	return env
}

// errRestartBusy is returned by mutating calls while a restart runs: what
// they change would not reach the new process.
var errRestartBusy = fmt.Errorf("%w: a restart (vipd restart) is running; try again once it ended", control.ErrRefused)

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}
