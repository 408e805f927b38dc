package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/doctor"
	"github.com/vipd/vipd/internal/verify"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/proxy"
	"github.com/vipd/vipd/vrrp"
)

// DoctorPlan builds what `vipd doctor` checks on this node from the config
// file, with the mappings the daemon runs with: each instance's runner
// configuration (runnerConfig), the health probes (plan), the proxy's
// frontends (proxyConfig) and the beacon format. nodeName selects the
// [[node]] as `vipd run --node` does.
func DoctorPlan(path, nodeName string) (doctor.Plan, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return doctor.Plan{}, err
	}
	hostname, _ := os.Hostname()
	local, _ := netcfg.LocalAddrs()
	node, err := cfg.SelectNode(nodeName, hostname, local)
	if err != nil {
		return doctor.Plan{}, err
	}
	p := doctorPlan(cfg, node, netcfg.LinkLocal)
	p.Warnings = cfg.Warnings()
	p.Beacon = decodeBeacon
	checks, err := plan(cfg)
	if err != nil {
		return doctor.Plan{}, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	for _, b := range cfg.Backends {
		for _, s := range b.Servers {
			pc, ok := checks[checkKey{kind: checkServer, backend: b.Name, server: s.Name}.String()]
			if !ok {
				continue // check = "none"
			}
			addr, _ := netip.ParseAddrPort(verify.CheckSpec(b, s).Addr)
			p.Servers = append(p.Servers, doctor.Server{Backend: b.Name, Name: s.Name, Addr: addr,
				Check: b.Check.Type, Timeout: pc.checker.Timeout, Probe: pc.checker.Probe})
		}
	}
	pcfg := proxyConfig(cfg)
	for _, f := range pcfg.Frontends {
		p.Frontends = append(p.Frontends, doctor.Frontend{Name: f.Name, Binds: f.Binds})
	}
	p.CheckBinds = func() error {
		px, err := proxy.New(pcfg, zerolog.Nop())
		if err != nil {
			return err
		}
		defer func() {
			// A proxy is released by running it to its end.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			px.Run(ctx)
		}()
		return px.CheckBinds()
	}
	if cfg.HTTP != nil && slices.ContainsFunc(cfg.HTTP.Users, func(u config.User) bool { return u.PasswordHash != "" }) {
		p.Secrets = append(p.Secrets, "[[http.user]] password hashes")
	}
	if slices.ContainsFunc(cfg.Instances, func(in config.Instance) bool { return in.AuthPass != "" }) {
		p.Secrets = append(p.Secrets, "auth_pass")
	}
	if cfg.BGP != nil && slices.ContainsFunc(cfg.BGP.Peers, func(bp config.BGPPeer) bool { return bp.Password != "" }) {
		p.Secrets = append(p.Secrets, "[[bgp.peer]] password")
	}
	return p, nil
}

// doctorPlan is the part of the plan status's live checks need too.
func doctorPlan(cfg *config.Config, node *config.Node, linkLocal func(string) (netip.Addr, error)) doctor.Plan {
	p := doctor.Plan{ConfigPath: cfg.Path, Node: doctor.Node{Name: node.Name, Addr: node.Address},
		Socket: cfg.Control.Socket, SocketGroup: cfg.Control.Group}
	if cfg.VRRP != nil {
		p.StatusPort = cfg.VRRP.StatusPort
	}
	for _, n := range cfg.Nodes {
		p.Nodes = append(p.Nodes, doctor.Node{Name: n.Name, Addr: n.Address})
	}
	for i := range cfg.Instances {
		in := &cfg.Instances[i]
		ifname := in.InterfaceFor(node)
		// The source the runner would use (openInstance): over IPv6
		// multicast the link-local address, if there is one yet.
		src := node.Address
		if len(in.VIPs) > 0 && in.VIPs[0].Addr().Is6() && !in.Unicast {
			if ll, err := linkLocal(ifname); err == nil {
				src = ll
			}
		}
		p.Instances = append(p.Instances, doctor.Instance{Name: in.Name, VRID: in.VRID, Interface: ifname, VIPs: in.VIPs,
			Receive: runnerConfig(cfg, node, in, src, zerolog.Nop())})
	}
	return p
}

// decodeBeacon reads a status beacon for vipd doctor.
func decodeBeacon(b []byte) (doctor.Beacon, bool) {
	var bc beacon
	if json.Unmarshal(b, &bc) != nil || bc.V != 1 || bc.Node == "" {
		return doctor.Beacon{}, false
	}
	out := doctor.Beacon{Node: bc.Node}
	for _, in := range bc.instances() {
		if in.State == vrrp.StateMaster.String() && in.VRID > 0 && in.VRID < 256 {
			out.Masters = append(out.Masters, uint8(in.VRID))
		}
	}
	return out, true
}

// liveEvery is how often status's live findings are refreshed.
const liveEvery = 30 * time.Second

// liveFindings holds the latest live findings.
type liveFindings struct {
	mu   sync.Mutex
	list []control.Finding
}

func (l *liveFindings) get() []control.Finding {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

// runLive runs doctor's live subset (interfaces and sysctls) now and every
// liveEvery until ctx ends, for status.
func (d *Daemon) runLive(ctx context.Context) {
	t := time.NewTicker(liveEvery)
	defer t.Stop()
	for {
		cfg, node := d.config()
		fs := doctor.Live(doctorPlan(cfg, node, d.os.LinkLocal), d.os.Doctor)
		d.live.mu.Lock()
		d.live.list = fs
		d.live.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
