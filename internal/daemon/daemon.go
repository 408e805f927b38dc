package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/hooks"
	"github.com/vipd/vipd/vrrp"
)

// Version is set by cmd/vipd at build time.
var Version = "dev"

// Options configure a Daemon.
type Options struct {
	ConfigPath string
	NodeName   string // --node; empty: by hostname, then by local address
	Log        zerolog.Logger
	OS         OS
	// Handoff, when set, makes Run take over from the old process of a
	// hitless restart (`vipd run` started by `vipd restart`).
	Handoff Predecessor
	// Formats replaces the state formats this binary says it reads (a
	// version skew test: VIPD_HANDOFF_FORMATS); nil: handoff.Supported.
	Formats []uint16
	// Exec and Args are what a restart starts: the binary on disk and
	// this process's argv. Empty: os.Executable() as it was at start
	// (without the " (deleted)" a package upgrade leaves) and os.Args.
	Exec string
	Args []string
	// Stdout and Stderr are what the restarted process inherits (nil:
	// os.Stdout and os.Stderr): files, so it keeps them once this process
	// has exited.
	Stdout, Stderr *os.File
}

// Daemon is one vipd node (see the package documentation for the flow).
type Daemon struct {
	opts    Options
	log     zerolog.Logger
	os      OS
	started time.Time

	// cur is the running config and this node's entry in it; Reload
	// replaces it whole, readers load it once.
	cur atomic.Pointer[running]

	proxy  Proxy
	trk    *trackers
	health *healthChecks
	links  *linkTrackers
	peers  *peerTable
	// liveness is nil when liveness_port = 0 or there is no peer; set by
	// startAux (a restart that rolls back makes a fresh one); auxMu
	// guards it and aux.
	auxMu    sync.Mutex
	liveness Liveness
	aux      *aux
	changes  *changes
	drills   *drills
	hooks    *hooks.Runner // [notify], in transition order
	live     liveFindings  // doctor's live subset, for status

	// insts and bgp are set by Run before up is stored, and not changed
	// after; bgp is nil when the node announces no [bgp] VIP.
	insts []*instance
	bgp   *bgpNode
	up    atomic.Bool

	reloadMu sync.Mutex // one reload at a time

	// Hitless restart (restart.go). runCtx is Run's, for what a rollback
	// starts again; ctlLn and httpLn are the control and status
	// listeners, handed to the new process.
	runCtx       context.Context
	ctlLn        net.Listener
	httpLn       net.Listener
	serving      atomic.Bool // everything started: a restart may freeze it
	restarting   atomic.Bool
	handedOver   atomic.Bool
	restartMu    sync.Mutex
	lastRestart  *control.RestartResult
	successor    Successor // the planned path's child, kept until exit
	exec         string
	args         []string
	notifySocket string // $NOTIFY_SOCKET and $WATCHDOG_USEC as found, for
	watchdogUsec string // the restarted process (sdnotify unsets them)

	stopOnce sync.Once
	stop     chan struct{} // closed by Shutdown, at any time
}

// running is one config and this node's [[node]] in it.
type running struct {
	cfg  *config.Config
	node *config.Node
}

// New loads the config, picks this node and builds the components. It
// touches nothing on the host yet: Run does.
func New(opts Options) (*Daemon, error) {
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	if err := opts.OS.fill(); err != nil {
		return nil, err
	}
	d := &Daemon{
		opts: opts, log: opts.Log, os: opts.OS,
		stop:    make(chan struct{}),
		started: time.Now(),
		peers:   newPeerTable(),
		changes: newChanges(),
		hooks:   hooks.New(opts.Log.With().Str("component", "notify").Logger()),
	}
	d.initRestart()
	hostname, _ := os.Hostname()
	local, _ := d.os.LocalAddrs()
	node, err := cfg.SelectNode(opts.NodeName, hostname, local)
	if err != nil {
		return nil, err
	}
	d.cur.Store(&running{cfg: cfg, node: node})
	d.log = d.log.With().Str("node", node.Name).Logger()

	p, err := d.os.NewProxy(proxyConfig(cfg), d.log.With().Str("component", "proxy").Logger())
	if err != nil {
		return nil, err
	}
	d.proxy = p
	d.trk = newTrackers(cfg, node, d.log, d.changes.Notify)
	d.health = newHealthChecks(d.log, p, d.trk, d.changes.Notify)
	d.health.onBackends = d.pushBGPVerdicts
	checks, err := plan(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	d.health.apply(checks)
	d.peers.setNames(cfg)
	d.drills = &drills{d: d}
	d.links = &linkTrackers{d: d}
	return d, nil
}

// config returns the running config and this node.
func (d *Daemon) config() (*config.Config, *config.Node) {
	r := d.cur.Load()
	return r.cfg, r.node
}

// Run brings the node up and blocks until it has stopped: after Shutdown
// (every instance handed over), when ctx ends (every instance lets go
// at once), or after a hitless restart handed everything to a new
// process (nothing let go). Every component stops when Run returns. With
// Options.Handoff it first takes over from the old process of a restart
// (takeover.go).
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ad, err := d.receive(ctx)
	if err != nil {
		return err
	}
	defer ad.close()
	cfg, node := d.config()

	if ad == nil {
		// Fail fast on the co-location trap (kube-apiserver on *:6443),
		// without binding anything, before we could ever win an election
		// with listeners that cannot bind. (A new process of a restart
		// takes over listeners that pass.)
		if err := d.proxy.CheckBinds(); err != nil {
			return err
		}
	} else if err := d.adoptProxy(ad); err != nil {
		return ad.fail(err)
	}
	ln, err := d.controlListener(cfg, ad)
	if err != nil {
		return ad.fail(err)
	}
	d.ctlLn = ln
	defer func() {
		if !d.handedOver.Load() {
			os.Remove(cfg.Control.Socket)
		}
	}()
	if h := cfg.HTTP; h != nil {
		if d.httpLn, err = d.httpListener(h, ad); err != nil {
			ln.Close()
			return ad.fail(err)
		}
	}

	var insts []*instance
	closeAll := func() {
		for _, inst := range insts {
			inst.close()
		}
	}
	fail := func(err error) error {
		closeAll()
		ln.Close()
		if d.httpLn != nil {
			d.httpLn.Close()
		}
		return ad.fail(err)
	}
	bn, err := d.openBGP(cfg, node)
	if err != nil {
		return fail(err)
	}
	// Single-LB mode, or the fixed-address frontends of a BGP node: the
	// solo instance. A BGP node with nothing else to run needs none.
	if cfg.VRRP == nil && (bn == nil || len(frontendsOf(cfg, nil)) > 0) {
		inst, err := d.soloInstance(ctx, cfg, ad.instance(1, "", true))
		if err != nil {
			return fail(err)
		}
		insts = append(insts, inst)
	}
	for i := range cfg.Instances {
		inst, err := d.openInstance(ctx, cfg, node, &cfg.Instances[i], ad)
		if err != nil {
			return fail(err)
		}
		insts = append(insts, inst)
	}
	leaving, err := d.leavingInstances(ctx, ad)
	if err != nil {
		return fail(err)
	}
	insts = append(insts, leaving...)
	defer closeAll()
	d.insts = insts
	d.bgp = bn
	if ad != nil {
		d.adoptState(ad)
	}
	for _, inst := range insts {
		if !inst.solo && !inst.leaving {
			d.trk.attach(inst.name, inst.runner)
		}
	}
	d.up.Store(true)
	if err := ad.ready(ctx); err != nil {
		return err
	}

	// A stop requested at any moment, during start-up too, reaches every
	// runner; a runner stopped before it ran never starts.
	// The peers are told first that our liveness connections close on
	// purpose: a planned stop is never taken for a crash.
	stopAll := func() {
		d.byeLiveness("stopping")
		for _, inst := range insts {
			inst.runner.Stop()
		}
		if bn != nil {
			bn.runner.Stop()
		}
	}
	select {
	case <-d.stop:
		stopAll()
	default:
	}
	go func() {
		select {
		case <-d.stop:
			stopAll()
		case <-ctx.Done():
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	d.runCtx = gctx
	api := &control.API{Service: d, Group: cfg.Control.Group, Log: d.log.With().Str("component", "control").Logger()}
	g.Go(func() error { return api.Serve(gctx, ln) })
	g.Go(func() error { return d.proxy.Run(gctx) })
	g.Go(func() error {
		return d.health.run(gctx, func() {
			if hasChecks(cfg) {
				d.log.Info().Msg("health checks completed one round: preemption allowed")
			}
			for _, inst := range insts {
				inst.runner.SetReady()
			}
			if bn != nil {
				bn.setReady(d)
			}
		})
	})
	if h := cfg.HTTP; h != nil {
		g.Go(func() error { return d.serveHTTP(gctx, h, d.httpLn) })
	}
	d.startAux(gctx)
	d.links.start(gctx, cfg)
	go d.runLive(gctx)
	var runners sync.WaitGroup
	for _, inst := range insts {
		d.watch(gctx, inst)
		go d.follow(gctx, inst)
		runners.Add(1)
		g.Go(func() error {
			defer runners.Done()
			err := inst.runner.Run(gctx)
			if errors.Is(err, context.Canceled) || errors.Is(err, vrrp.ErrHandedOver) {
				return nil
			}
			return err
		})
	}
	if bn != nil {
		runners.Add(1)
		g.Go(func() error {
			defer runners.Done()
			err := bn.runner.Run(gctx)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		})
	}
	go func() {
		// Once every instance has stopped (a completed Shutdown, or a
		// restart that handed them over), the node is done.
		runners.Wait()
		cancel()
	}()
	d.serving.Store(true)
	if ad != nil {
		ad.running(gctx, d)
	} else {
		go d.systemd(gctx)
	}
	d.log.Info().Str("version", Version).Str("config", cfg.Path).Str("mode", d.mode()).Int("instances", len(cfg.Instances)).Int("pid", os.Getpid()).Msg("vipd started")
	err = g.Wait()
	d.stopAux("stopping")
	d.waitHooks()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if d.handedOver.Load() {
		d.log.Info().Msg("vipd handed over and exits")
		return err
	}
	d.log.Info().Msg("vipd stopped")
	return err
}

// follow wakes the node's subscribers whenever an instance publishes a new
// state (after its effects ran).
func (d *Daemon) follow(ctx context.Context, inst *instance) {
	for {
		ch := inst.runner.Changed()
		select {
		case <-ctx.Done():
			return
		case <-inst.runner.Done():
			d.changes.Notify()
			return
		case <-ch:
			d.changes.Notify()
		}
	}
}

// transitionFunc is an instance's Transition effect: one log line with the
// reason, and the notify hook.
func (d *Daemon) transitionFunc(inst *instance) func(from, to vrrp.State, prio uint8, reason string) {
	return func(from, to vrrp.State, prio uint8, reason string) {
		inst.log.Info().Str("from", from.String()).Str("to", to.String()).Int("priority", int(prio)).Str("reason", reason).
			Msgf("%s -> %s: %s", from, to, reason)
		if !inst.solo {
			cfg, _ := d.config()
			d.hooks.Deliver(cfg.Notify, hooks.Transition{Instance: inst.name, From: from.String(), To: to.String(), Priority: int(prio), At: time.Now()})
		}
	}
}

// mode is "vrrp" when the node runs VRRP instances (BGP beside them or
// not), "bgp" when it only announces, else "single".
func (d *Daemon) mode() string {
	cfg, _ := d.config()
	switch {
	case cfg.VRRP != nil:
		return "vrrp"
	case cfg.BGP != nil:
		return "bgp"
	}
	return "single"
}

// vrrpInstances are the node's VRRP instances (none in single-LB mode), or
// nil before Run set them up.
func (d *Daemon) vrrpInstances() []*instance {
	if !d.up.Load() {
		return nil
	}
	var out []*instance
	for _, inst := range d.insts {
		if !inst.solo && !inst.leaving {
			out = append(out, inst)
		}
	}
	return out
}

func (d *Daemon) instance(name string) *instance {
	for _, inst := range d.vrrpInstances() {
		if inst.name == name {
			return inst
		}
	}
	return nil
}

// Shutdown starts a terminal stop (SIGTERM/SIGINT), at any moment, during
// start-up too: a master sends priority 0 and keeps serving until the new
// master is heard; then Run returns. It does not wait.
func (d *Daemon) Shutdown() {
	d.stopOnce.Do(func() { close(d.stop) })
}
