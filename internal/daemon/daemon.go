package daemon

import (
	"context"
	"errors"
	"fmt"
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
	// Run before up.
	liveness Liveness
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
// (every instance handed over), or when ctx ends (every instance lets go
// at once). Every component stops when Run returns.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg, node := d.config()

	// Fail fast on the co-location trap (kube-apiserver on *:6443),
	// without binding anything, before we could ever win an election
	// with listeners that cannot bind.
	if err := d.proxy.CheckBinds(); err != nil {
		return err
	}
	ln, err := d.os.ListenControl(control.SocketOptions{Path: cfg.Control.Socket, Mode: cfg.Control.Mode, Group: cfg.Control.Group})
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Control.Socket)

	var insts []*instance
	closeAll := func() {
		for _, inst := range insts {
			inst.close()
		}
	}
	bn, err := d.openBGP(cfg, node)
	if err != nil {
		ln.Close()
		return err
	}
	// Single-LB mode, or the fixed-address frontends of a BGP node: the
	// solo instance. A BGP node with nothing else to run needs none.
	if cfg.VRRP == nil && (bn == nil || len(frontendsOf(cfg, nil)) > 0) {
		inst, err := d.soloInstance(ctx, cfg)
		if err != nil {
			ln.Close()
			return err
		}
		insts = append(insts, inst)
	}
	for i := range cfg.Instances {
		inst, err := d.openInstance(ctx, cfg, node, &cfg.Instances[i])
		if err != nil {
			closeAll()
			ln.Close()
			return err
		}
		insts = append(insts, inst)
	}
	defer closeAll()
	d.insts = insts
	d.bgp = bn
	d.liveness = d.newLiveness(cfg, node, insts)
	for _, inst := range insts {
		if !inst.solo {
			d.trk.attach(inst.name, inst.runner)
		}
	}
	d.up.Store(true)

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
		g.Go(func() error { return d.serveHTTP(gctx, h) })
	}
	if cfg.VRRP != nil {
		g.Go(func() error { return d.runBeacon(gctx) })
		g.Go(func() error { return d.runLiveness(gctx) })
	}
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
			if errors.Is(err, context.Canceled) {
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
		// Once every instance has stopped (a completed Shutdown), the
		// node is done.
		runners.Wait()
		cancel()
	}()
	go d.systemd(gctx)
	d.log.Info().Str("version", Version).Str("config", cfg.Path).Str("mode", d.mode()).Int("instances", len(cfg.Instances)).Msg("vipd started")
	err = g.Wait()
	d.waitHooks()
	if errors.Is(err, context.Canceled) {
		err = nil
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
		if !inst.solo {
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
