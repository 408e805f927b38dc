package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/hooks"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/proxy"
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

// Daemon wires one node: VRRP runner, netcfg, health checks, proxy and
// the control API. Data flows one way: config -> daemon -> components.
type Daemon struct {
	opts    Options
	log     zerolog.Logger
	os      OS
	started time.Time

	mu   sync.Mutex // guards cfg, node, trackers, lastDrill
	cfg  *config.Config
	node *config.Node

	proxy  *proxy.Proxy
	runner *vrrp.Runner // nil in single-LB mode
	conn   vrrp.Conn
	ann    netcfg.Announcer
	ifname string

	trk   *trackers
	hooks *hooks.Runner // [notify], in transition order

	// health checks are restarted on reload; healthMu guards them.
	healthMu     sync.Mutex
	healthGroup  *health.Group
	healthCancel context.CancelFunc
	healthEvents chan health.Event

	announceMu     sync.Mutex
	announceCancel context.CancelFunc

	peers *peerTable

	lastDrill *control.DrillResult
	drillMu   sync.Mutex // one drill at a time
	reloadMu  sync.Mutex // one reload at a time

	// vipWanted is true between AddVIP and RemoveVIP: the VIP watcher
	// restores the VIP only then (the runner's status snapshot lags the
	// actions it is executing).
	vipWanted atomic.Bool

	// up is set once Run has built every component; Status answers a
	// minimal "starting" document before that, so readers never race with
	// setup writing the runner and interface name.
	up atomic.Bool

	cancelMu sync.Mutex
	cancel   context.CancelFunc // Run's context, for a Shutdown that cannot be graceful

	stopOnce sync.Once
	stop     chan struct{} // closed by Shutdown
	runCtx   context.Context
}

// New loads the config, picks this node and builds every component. It
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
		opts: opts, log: opts.Log, os: opts.OS, cfg: cfg,
		stop:         make(chan struct{}),
		started:      time.Now(),
		healthEvents: make(chan health.Event, 256),
		peers:        newPeerTable(),
		hooks:        hooks.New(opts.Log.With().Str("component", "notify").Logger()),
	}
	hostname, _ := os.Hostname()
	local, _ := d.os.LocalAddrs()
	node, err := cfg.SelectNode(opts.NodeName, hostname, local)
	if err != nil {
		return nil, err
	}
	d.node = node
	d.log = d.log.With().Str("node", node.Name).Logger()

	p, err := proxy.New(proxyConfig(cfg, node), d.log.With().Str("component", "proxy").Logger())
	if err != nil {
		return nil, err
	}
	d.proxy = p
	d.trk = newTrackers(cfg, node)
	return d, nil
}

// Run brings the node up and blocks until Shutdown has completed or ctx is
// cancelled. Every component stops when Run returns.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.runCtx = ctx
	d.cancelMu.Lock()
	d.cancel = cancel
	d.cancelMu.Unlock()
	cfg := d.config()

	// Fail fast on the co-location trap (kube-apiserver on *:6443) before
	// we could ever win an election with listeners that cannot bind.
	if err := d.proxy.Listen(); err != nil {
		return err
	}
	if cfg.VRRP != nil {
		d.proxy.Unlisten()
	}

	ln, err := control.Listen(control.SocketOptions{Path: cfg.Control.Socket, Mode: cfg.Control.Mode, Group: cfg.Control.Group})
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Control.Socket)

	if cfg.VRRP != nil {
		if err := d.setupVRRP(cfg); err != nil {
			ln.Close()
			return err
		}
		defer d.conn.Close()
		defer d.ann.Close()
	}

	d.up.Store(true)
	g, gctx := errgroup.WithContext(ctx)
	api := &control.API{Service: d, Group: cfg.Control.Group, Log: d.log.With().Str("component", "control").Logger()}
	g.Go(func() error { return api.Serve(gctx, ln) })
	g.Go(func() error { return d.proxy.Run(gctx) })
	g.Go(func() error { return d.healthLoop(gctx) })
	if h := cfg.HTTP; h != nil {
		g.Go(func() error { return d.serveHTTP(gctx, h) })
	}

	if d.runner != nil {
		g.Go(func() error {
			err := d.runner.Run(gctx)
			// The runner returns nil only after a completed Shutdown:
			// that ends the whole daemon.
			cancel()
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		})
		g.Go(func() error { return d.watchVIPs(gctx, cfg) })
		g.Go(func() error { return d.watchOwnLink(gctx) })
		g.Go(func() error { return d.runBeacon(gctx, cfg) })
	} else {
		g.Go(func() error {
			select {
			case <-d.stop:
				cancel()
			case <-gctx.Done():
			}
			return nil
		})
	}
	d.restartHealth(gctx, cfg)
	go d.systemd(gctx)
	d.log.Info().Str("version", Version).Str("config", cfg.Path).Str("mode", d.mode()).Msg("vipd started")
	err = g.Wait()
	d.waitHooks()
	d.stopHealth()
	d.stopAnnounce()
	if d.runner == nil {
		d.proxy.Unlisten()
		d.proxy.CloseConns()
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	d.log.Info().Msg("vipd stopped")
	return err
}

func (d *Daemon) mode() string {
	if d.runner != nil {
		return "vrrp"
	}
	return "single"
}

func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// setupVRRP removes a VIP left behind by a crashed run, opens the VRRP
// socket and the announcer, and builds the runner.
func (d *Daemon) setupVRRP(cfg *config.Config) error {
	v := cfg.VRRP
	d.ifname = v.Interface
	if d.node.Interface != "" {
		d.ifname = d.node.Interface
	}
	for _, p := range v.VIPs {
		has, err := d.os.Addrs.HasVIP(d.ifname, p)
		if err != nil {
			return err
		}
		if has {
			d.log.Warn().Str("vip", p.String()).Str("interface", d.ifname).
				Msg("removing a VIP left behind by a previous run (a crashed master keeps it and clients would be refused)")
			if err := d.os.Addrs.RemoveVIP(d.ifname, p); err != nil {
				return err
			}
		}
	}
	// Without promote_secondaries, deleting the node's own address would
	// take a same-subnet VIP with it.
	if err := netcfg.NewSysctls().Set(netcfg.InterfaceSysctl(d.ifname, "promote_secondaries"), "1"); err != nil {
		d.log.Warn().Err(err).Msg("could not set promote_secondaries")
	}
	var peers []netip.Addr
	for _, n := range cfg.Nodes {
		if n.Name != d.node.Name {
			peers = append(peers, n.Address)
		}
	}
	var vips []netip.Addr
	for _, p := range v.VIPs {
		vips = append(vips, p.Addr())
	}
	// The VIPs pick the family. Adverts leave from the node's configured
	// address, except over IPv6 multicast: there RFC 9568 section 5.1.2.1
	// makes the source the interface's link-local address, and that is
	// the primary address the election compares and self-detection
	// matches. Unicast peers are the configured node addresses, so a
	// unicast node sends from its own configured address.
	v6 := vips[0].Is6()
	src := d.node.Address
	if v6 && !v.Unicast {
		ll, err := d.os.LinkLocal(d.ifname)
		if err != nil {
			return err
		}
		src = ll
	}
	conn, err := d.os.ListenVRRP(netcfg.VRRPConfig{Interface: d.ifname, Source: src, IPv6: v6, Unicast: v.Unicast, Peers: peers})
	if err != nil {
		return err
	}
	ann, err := d.os.NewAnnouncer(d.ifname)
	if err != nil {
		conn.Close()
		return err
	}
	mode := vrrp.ChecksumPseudoHeader
	if v.Checksum == "rfc9568" {
		mode = vrrp.ChecksumMessage
	}
	r, err := vrrp.NewRunner(vrrp.RunnerConfig{
		Machine: vrrp.Config{
			VRID:            v.VRID,
			Priority:        d.node.Priority,
			AdvertInterval:  v.AdvertInterval,
			Preempt:         v.Preempt,
			PreemptDelay:    v.PreemptDelay,
			Addr:            src,
			HoldUntilReady:  v.StartupHold && d.hasChecks(cfg),
			StartupInterval: v.StartupInterval,
		},
		VIPs:     vips,
		Checksum: mode,
		Unicast:  v.Unicast,
		Peers:    peers,
		Log:      d.log.With().Str("component", "vrrp").Int("vrid", int(v.VRID)).Logger(),
	}, conn, (*effects)(d))
	if err != nil {
		conn.Close()
		ann.Close()
		return err
	}
	d.conn, d.ann, d.runner = conn, ann, r
	return nil
}

func (d *Daemon) hasChecks(cfg *config.Config) bool {
	for _, b := range cfg.Backends {
		if b.Check.Type != "none" {
			return true
		}
	}
	for _, t := range cfg.Tracks {
		if t.Type == "script" {
			return true
		}
	}
	return false
}

// Shutdown starts a terminal stop (SIGTERM/SIGINT): a master sends
// priority 0 and keeps serving until the new master is heard; then Run
// returns. It does not wait.
func (d *Daemon) Shutdown() {
	d.stopOnce.Do(func() {
		close(d.stop)
		if d.runner != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.runner.Shutdown(ctx); err != nil {
				// The runner did not take the request (still starting,
				// or wedged): stop anyway rather than hang; the VIP
				// goes with the runner's context.
				d.log.Warn().Err(err).Msg("graceful handover not possible; stopping now")
				d.cancelMu.Lock()
				if d.cancel != nil {
					d.cancel()
				}
				d.cancelMu.Unlock()
			}
		}
	})
}

// watchVIPs puts the VIP back when something else (systemd-networkd, an
// operator) removes it while we are MASTER.
func (d *Daemon) watchVIPs(ctx context.Context, cfg *config.Config) error {
	err := d.os.WatchVIPs(ctx, d.ifname, cfg.VRRP.VIPs, func(p netip.Prefix) {
		if !d.vipWanted.Load() {
			return
		}
		d.log.Warn().Str("vip", p.String()).Msg("the VIP was removed by something else while MASTER; restoring it and re-announcing")
		if err := d.os.Addrs.AddVIP(d.ifname, p); err != nil {
			d.log.Error().Err(err).Msg("restore VIP")
			return
		}
		(*effects)(d).Announce()
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// watchOwnLink re-announces the VIP when the VRRP interface comes back up
// while we hold it: a burst sent while the link was down went nowhere, and
// neighbours may have flushed their entries.
func (d *Daemon) watchOwnLink(ctx context.Context) error {
	wasUp := true
	err := d.os.WatchLink(ctx, d.ifname, func(up bool) {
		if up && !wasUp && d.vipWanted.Load() {
			d.log.Warn().Str("interface", d.ifname).Msg("interface is up again while MASTER: re-announcing the VIP")
			(*effects)(d).Announce()
		}
		if !up && wasUp {
			d.log.Warn().Str("interface", d.ifname).Msg("VRRP interface is down: FAULT until it is back")
		}
		wasUp = up
		d.setTracker(ctx, ownLinkTracker(d.ifname), up, fmt.Sprintf("link %s %s", d.ifname, map[bool]string{true: "up", false: "down"}[up]))
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		d.log.Warn().Err(err).Msg("cannot watch the VRRP interface's link")
	}
	return nil
}

func (d *Daemon) stopAnnounce() {
	d.announceMu.Lock()
	defer d.announceMu.Unlock()
	if d.announceCancel != nil {
		d.announceCancel()
		d.announceCancel = nil
	}
}
