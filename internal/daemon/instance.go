package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// instance is one VRRP instance of this node (or the solo instance of a
// single LB): its runner, its effects and the watchers that turn host
// events into runner events. Its election settings are fixed for the life
// of the process (a reload that changes them is refused; a restart applies
// them).
type instance struct {
	name   string
	cfg    config.Instance
	solo   bool
	ifname string
	src    netip.Addr // the primary address: advert source and tie-break
	peers  []netip.Addr
	log    zerolog.Logger

	fx     *vipEffects
	runner *vrrp.Runner
	conn   vrrp.Conn
	ann    netcfg.Announcer
	// plan is what a restart hands over besides the runner's state; a
	// leaving instance is one the new config of a restart no longer has
	// (it runs until it has handed over, out of status).
	plan    savedPlan
	leaving bool
}

// frontendsOf names the frontends that follow instance in (for the solo
// instance, every frontend that does not follow a [bgp] VIP).
func frontendsOf(cfg *config.Config, in *config.Instance) []string {
	var out []string
	for _, f := range cfg.Frontends {
		_, bgp := cfg.BGPVIPOf(f)
		if in == nil && !bgp || in != nil && cfg.InstanceOf(f) == in {
			out = append(out, f.Name)
		}
	}
	return out
}

func garpOf(in *config.Instance) garpSettings {
	if in == nil {
		return garpSettings{}
	}
	return garpSettings{repeat: in.GARPRepeat, interval: in.GARPInterval, refresh: in.GARPRefresh}
}

// instancePlan is what an instance's config means on this node: its
// interface, advert source, peers, the VIPs it adds and removes, and its
// runner's config. The daemon and `vipd cleanup` build it the same way.
type instancePlan struct {
	ifname  string
	src     netip.Addr
	peers   []netip.Addr
	managed []netip.Prefix // the VIPs this node adds and removes (not its own addresses)
	rc      vrrp.RunnerConfig
}

func planInstance(os *OS, cfg *config.Config, node *config.Node, in *config.Instance, log zerolog.Logger) (instancePlan, error) {
	pl := instancePlan{ifname: in.InterfaceFor(node), peers: peersOf(cfg, node)}
	for _, p := range in.VIPs {
		if !in.Owns(node, p) {
			pl.managed = append(pl.managed, p)
		}
	}
	// The VIPs pick the family. Adverts leave from the node's configured
	// address, except over IPv6 multicast: there RFC 9568 section 5.1.2.1
	// makes the source the interface's link-local address, and that is
	// the primary address the election compares and self-detection
	// matches.
	pl.src = node.Address
	if in.VIPs[0].Addr().Is6() && !in.Unicast {
		ll, err := os.LinkLocal(pl.ifname)
		if err != nil {
			return pl, err
		}
		pl.src = ll
	}
	pl.rc = runnerConfig(cfg, node, in, pl.src, log)
	return pl, nil
}

// listenVRRP opens the instance's VRRP socket.
func (pl instancePlan) listenVRRP(os *OS) (vrrp.Conn, error) {
	return os.ListenVRRP(pl.vrrpConfig())
}

func (pl instancePlan) vrrpConfig() netcfg.VRRPConfig {
	return netcfg.VRRPConfig{Interface: pl.ifname, Source: pl.src, IPv6: pl.rc.VIPs[0].Is6(), Unicast: pl.rc.Unicast, Peers: pl.peers}
}

// openInstance opens the VRRP socket and the announcer of one instance and
// builds its runner. The runner has not started: nothing is on the host yet
// (a VIP left behind by a crashed run is removed by the machine's first
// step).
//
// With a, the instance takes up the state the old process of a restart
// handed over for it, on its socket when the socket is still right.
func (d *Daemon) openInstance(ctx context.Context, cfg *config.Config, node *config.Node, in *config.Instance, a *adoption) (*instance, error) {
	ifname := in.InterfaceFor(node)
	log := d.log.With().Str("component", "vrrp").Str("instance", in.Name).Int("vrid", int(in.VRID)).Logger()
	// Without promote_secondaries, deleting the node's own address would
	// take a same-subnet VIP with it.
	if err := d.os.SetSysctl(netcfg.InterfaceSysctl(ifname, "promote_secondaries"), "1"); err != nil {
		log.Warn().Err(err).Msg("could not set promote_secondaries")
	}
	// With arp_announce 0 the kernel may send an ARP request whose sender
	// address is the VIP (the FIN or RST to a client after a handover
	// leaves from it), and every neighbour that hears it points the VIP
	// back at this node. 2 makes ARP requests always name the interface's
	// own address.
	if in.VIPs[0].Addr().Is4() {
		if err := d.os.SetSysctl(netcfg.InterfaceSysctl(ifname, "arp_announce"), "2"); err != nil {
			log.Warn().Err(err).Msg("could not set arp_announce = 2: an ARP request sent from the VIP after a handover may point clients back at this node")
		}
	}
	pl, err := planInstance(&d.os, cfg, node, in, log)
	if err != nil {
		return nil, err
	}
	inst := &instance{name: in.Name, cfg: *in, ifname: ifname, src: pl.src, peers: pl.peers, log: log}
	inst.plan = pl.saved(frontendsOf(cfg, in), in)
	saved := a.instance(in.VRID, ifname, false)
	if err := d.buildInstance(ctx, inst, pl, garpOf(in), a, saved); err != nil {
		return nil, fmt.Errorf("instance %s: %w", in.Name, err)
	}
	return inst, nil
}

// buildInstance opens (or takes over) the instance's socket and its
// announcer and builds its runner, fresh or from saved.
func (d *Daemon) buildInstance(ctx context.Context, inst *instance, pl instancePlan, garp garpSettings, a *adoption, saved *instanceState) error {
	var conn vrrp.Conn
	var err error
	if saved != nil {
		if f := a.file(saved.ConnFD); f != nil && sameSocket(saved.Plan, inst.plan) {
			conn, err = d.os.AdoptVRRP(f, pl.vrrpConfig())
			if err != nil {
				inst.log.Warn().Err(err).Msg("restart: the VRRP socket handed over cannot be used; opening one")
				conn = nil
			}
		}
	}
	if conn == nil {
		if conn, err = pl.listenVRRP(&d.os); err != nil {
			return err
		}
	}
	ann, err := d.os.NewAnnouncer(inst.ifname)
	if err != nil {
		conn.Close()
		return err
	}
	inst.conn, inst.ann = conn, ann
	vips, added := pl.managed, false
	if saved != nil {
		// A VIP the old process held and the config dropped stays this
		// instance's until it leaves MASTER (then it goes with the rest);
		// one the config added is added by the MASTER at once (below).
		vips, added = mergeVIPs(saved.Plan.Managed, pl.managed)
	}
	inst.fx = &vipEffects{
		log: inst.log, os: &d.os, proxy: d.proxy, ctx: ctx, ifname: inst.ifname,
		vips: vips, announced: pl.rc.VIPs, ann: ann,
		frontends: inst.plan.Frontends, garp: garp,
	}
	inst.fx.onTransition = d.transitionFunc(inst)
	var r *vrrp.Runner
	if saved != nil {
		inst.fx.settled = make(chan struct{})
		r, err = vrrp.ResumeRunner(pl.rc, conn, inst.fx, saved.Runner)
		if err == nil {
			inst.log.Info().Str("state", saved.Runner.Machine.State).Msg("taking over the instance from the old process: no transition")
		}
	} else {
		r, err = vrrp.NewRunner(pl.rc, conn, inst.fx)
	}
	if err != nil {
		conn.Close()
		ann.Close()
		return err
	}
	if added {
		// To a MASTER a missing VIP is one to add and announce; others
		// ignore it.
		r.VIPRemoved()
	}
	inst.runner = r
	return nil
}

// mergeVIPs is old's VIPs and then new's that old lacks; added reports
// whether there were any.
func mergeVIPs(old, new []netip.Prefix) (out []netip.Prefix, added bool) {
	out = append(out, old...)
	for _, p := range new {
		if !slices.Contains(old, p) {
			out, added = append(out, p), true
		}
	}
	return out, added
}

// leavingInstance takes up an instance of the old process's config that
// the new one does not have, from what the old process planned for it.
func (d *Daemon) leavingInstance(ctx context.Context, a *adoption, is *instanceState) (*instance, error) {
	p := is.Plan
	log := d.log.With().Str("component", "vrrp").Str("instance", is.Name).Int("vrid", int(is.VRID)).Logger()
	inst := &instance{name: is.Name, ifname: is.Interface, src: p.Source, peers: p.Peers, log: log, plan: p, leaving: true}
	inst.cfg = config.Instance{Name: is.Name, VRID: is.VRID}
	mode := vrrp.ChecksumPseudoHeader
	if p.Checksum == config.ChecksumRFC9568 {
		mode = vrrp.ChecksumMessage
	}
	pl := instancePlan{ifname: is.Interface, src: p.Source, peers: p.Peers, managed: p.Managed, rc: vrrp.RunnerConfig{
		Machine: vrrp.Config{VRID: is.VRID, Priority: p.Priority, AdvertInterval: p.AdvertInterval, Preempt: true,
			Addr: p.Source, Version: p.Version},
		VIPs: p.Announced, Checksum: mode, AuthPass: p.AuthPass, Unicast: p.Unicast, Peers: p.Peers, Siblings: p.Siblings, Log: log,
	}}
	if err := d.buildInstance(ctx, inst, pl, garpSettings{}, a, is); err != nil {
		return nil, fmt.Errorf("instance %s (gone from the config): %w", is.Name, err)
	}
	return inst, nil
}

// saved is what a restart hands over of the plan.
func (pl instancePlan) saved(frontends []string, in *config.Instance) savedPlan {
	sp := savedPlan{
		Source: pl.src, Peers: pl.peers, Unicast: pl.rc.Unicast, Managed: pl.managed, Announced: pl.rc.VIPs,
		Frontends: frontends, Version: pl.rc.Machine.Version, Priority: pl.rc.Machine.Priority,
		AdvertInterval: pl.rc.Machine.AdvertInterval, AuthPass: pl.rc.AuthPass, Siblings: pl.rc.Siblings,
	}
	if len(pl.rc.VIPs) > 0 {
		sp.IPv6 = pl.rc.VIPs[0].Is6()
	}
	if in != nil {
		sp.Checksum = in.Checksum
	}
	return sp
}

// sameSocket reports whether a socket opened for old serves new as it is:
// the same source, family, mode and peers (the interface matched already).
func sameSocket(old, new savedPlan) bool {
	return old.Source == new.Source && old.IPv6 == new.IPv6 && old.Unicast == new.Unicast && slices.Equal(old.Peers, new.Peers)
}

// peersOf are the addresses of the other [[node]]s.
func peersOf(cfg *config.Config, node *config.Node) []netip.Addr {
	var out []netip.Addr
	for _, n := range cfg.Nodes {
		if n.Name != node.Name {
			out = append(out, n.Address)
		}
	}
	return out
}

// runnerConfig is what an instance's runner runs with; src is the advert
// source and the address the election knows this node by. vipd doctor
// judges what it hears with the same (DoctorPlan).
func runnerConfig(cfg *config.Config, node *config.Node, in *config.Instance, src netip.Addr, log zerolog.Logger) vrrp.RunnerConfig {
	mode := vrrp.ChecksumPseudoHeader
	if in.Checksum == config.ChecksumRFC9568 {
		mode = vrrp.ChecksumMessage
	}
	var addrs []netip.Addr
	for _, p := range in.VIPs {
		addrs = append(addrs, p.Addr())
	}
	return vrrp.RunnerConfig{
		Machine: vrrp.Config{
			VRID:            in.VRID,
			Priority:        in.PriorityOf(node),
			AdvertInterval:  in.AdvertInterval,
			Preempt:         in.Preempt,
			PreemptDelay:    in.PreemptDelay,
			Addr:            src,
			HoldUntilReady:  in.StartupHold && hasChecks(cfg),
			StartupInterval: in.StartupInterval,
			Version:         uint8(in.Version),
			LowerPrioRounds: in.GARPLowerPrioRepeat,
			LowerPrioEvery:  in.GARPLowerPrioDelay,
		},
		VIPs:     addrs,
		Checksum: mode,
		AuthPass: in.AuthPass,
		Unicast:  in.Unicast,
		Peers:    peersOf(cfg, node),
		Siblings: siblings(cfg, node, in),
		Log:      log,
	}
}

// soloInstance is single-LB mode: no VRRP, every frontend always listens.
// It runs the same runner and effects as a VRRP instance, with no socket.
// After a restart (saved) it takes up the old one's state: MASTER, on the
// listeners handed over.
func (d *Daemon) soloInstance(ctx context.Context, cfg *config.Config, saved *instanceState) (*instance, error) {
	inst := &instance{name: "single", solo: true, log: d.log.With().Str("component", "single").Logger()}
	inst.cfg.VRID = 1
	inst.fx = &vipEffects{log: inst.log, os: &d.os, proxy: d.proxy, ctx: ctx, frontends: frontendsOf(cfg, nil)}
	inst.fx.onTransition = d.transitionFunc(inst)
	rc := vrrp.RunnerConfig{
		Machine: vrrp.Config{VRID: 1, Priority: 255, AdvertInterval: time.Second, Solo: true},
		Log:     inst.log,
	}
	var r *vrrp.Runner
	var err error
	if saved != nil {
		inst.fx.settled = make(chan struct{})
		r, err = vrrp.ResumeRunner(rc, nil, inst.fx, saved.Runner)
	} else {
		r, err = vrrp.NewRunner(rc, nil, inst.fx)
	}
	if err != nil {
		return nil, err
	}
	inst.runner = r
	return inst, nil
}

// watch turns host events into runner events until ctx ends: a VIP removed
// by someone else, the interface's link going down (the weight-0 tracker
// that makes the node FAULT) and coming back (re-announce).
func (d *Daemon) watch(ctx context.Context, inst *instance) {
	if inst.solo {
		return
	}
	go func() {
		err := d.os.WatchVIPs(ctx, inst.ifname, inst.fx.vips, func(p netip.Prefix) {
			// Our own removals are seen too; only a MASTER acts on it,
			// and the runner logs when it does.
			inst.log.Debug().Str("vip", p.String()).Msg("a VIP went from the interface")
			inst.runner.VIPRemoved()
		})
		if err != nil && ctx.Err() == nil {
			inst.log.Warn().Err(err).Msg("cannot watch the VIPs; a VIP removed by something else will not be noticed")
		}
	}()
	go func() {
		wasUp := true
		err := d.os.WatchLink(ctx, inst.ifname, func(up bool) {
			if !up && wasUp {
				inst.log.Warn().Str("interface", inst.ifname).Msg("VRRP interface is down: FAULT until it is back")
			}
			d.trk.setLink(inst.ifname, up)
			if up && !wasUp {
				inst.runner.LinkUp()
			}
			wasUp = up
		})
		if err != nil && ctx.Err() == nil {
			inst.log.Warn().Err(err).Msg("cannot watch the VRRP interface's link")
		}
	}()
}

// close releases the announcer; the runner closed its socket when Run
// returned.
func (inst *instance) close() {
	if inst.ann != nil {
		inst.ann.Close()
	}
}

// siblings are the VRIDs of the node's other instances on the same link.
func siblings(cfg *config.Config, node *config.Node, in *config.Instance) []uint8 {
	var out []uint8
	for i := range cfg.Instances {
		o := &cfg.Instances[i]
		if o.Name != in.Name && o.InterfaceFor(node) == in.InterfaceFor(node) {
			out = append(out, o.VRID)
		}
	}
	return out
}

func hasChecks(cfg *config.Config) bool {
	for _, b := range cfg.Backends {
		if b.Check.Type != config.CheckNone {
			return true
		}
	}
	for _, t := range cfg.Tracks {
		if t.Type == config.TrackScript {
			return true
		}
	}
	return false
}
