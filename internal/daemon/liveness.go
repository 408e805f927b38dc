package daemon

import (
	"context"
	"net/netip"
	"slices"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/liveness"
)

// newLiveness builds the node's liveness connections to the other vipd
// nodes (nil when liveness_port = 0 or there is no peer). A confirmed
// crash of a peer's process becomes a vrrp.MasterGone event for every
// instance, once per advert source the peer named in its hello: the event
// goes into each runner's mailbox, and only a BACKUP following that peer
// acts on it (DESIGN.md section 2: things that happen to the host are
// events into the machine).
func (d *Daemon) newLiveness(cfg *config.Config, node *config.Node, insts []*instance) Liveness {
	if cfg.VRRP == nil || cfg.VRRP.LivenessPort == 0 {
		return nil
	}
	var peers []liveness.Node
	for _, n := range cfg.Nodes {
		if n.Name != node.Name {
			peers = append(peers, liveness.Node{Name: n.Name, Addr: n.Address})
		}
	}
	if len(peers) == 0 {
		return nil
	}
	var sources []netip.Addr
	for _, inst := range insts {
		if !inst.solo && !slices.Contains(sources, inst.src) {
			sources = append(sources, inst.src)
		}
	}
	return d.os.NewLiveness(liveness.Config{
		Self:    liveness.Node{Name: node.Name, Addr: node.Address},
		Peers:   peers,
		Port:    cfg.VRRP.LivenessPort,
		Sources: func() []netip.Addr { return sources },
		Gone: func(peer liveness.Node, srcs []netip.Addr, reason string) {
			for _, inst := range insts {
				if inst.solo {
					continue
				}
				for _, src := range srcs {
					inst.runner.MasterGone(src, reason)
				}
			}
		},
		Changed: d.changes.Notify,
		Control: freebind,
		Log:     d.log.With().Str("component", "liveness").Logger(),
	})
}

// runLiveness runs the liveness connections until ctx ends.
func (d *Daemon) runLiveness(ctx context.Context) error {
	if l := d.getLiveness(); l != nil {
		return l.Run(ctx)
	}
	return nil
}

// getLiveness returns the liveness connections (nil: none); a restart
// that rolls back replaces them.
func (d *Daemon) getLiveness() Liveness {
	d.auxMu.Lock()
	defer d.auxMu.Unlock()
	return d.liveness
}

// byeLiveness tells every peer that this node's connections close on
// purpose from now on (a stop, a hitless restart): their end is not a
// crash.
func (d *Daemon) byeLiveness(reason string) {
	if l := d.getLiveness(); l != nil {
		l.Bye(reason)
	}
}

// livenessStatus adds each peer's liveness to the peers list (a peer
// whose beacon was never heard gets an entry of its own) and names every
// liveness problem in the instances' problems.
func (d *Daemon) livenessStatus(st *control.Status) {
	l := d.getLiveness()
	if l == nil {
		return
	}
	for _, ls := range l.Status() {
		pl := &control.PeerLiveness{
			State: ls.State, Since: ls.Since, Speaks: ls.Speaks, DialError: ls.DialError,
			LastEnd: ls.LastEnd, LastEndAt: ls.LastEndAt, Problem: ls.Problem,
			Ups: ls.Ups, Goodbyes: ls.Goodbyes, Crashes: ls.Crashes, AliveAfterEnd: ls.AliveAfterEnd, Unconfirmed: ls.Unconfirmed,
		}
		found := false
		for i := range st.Peers {
			if st.Peers[i].Addr == ls.Addr {
				st.Peers[i].Liveness, found = pl, true
			}
		}
		if !found {
			st.Peers = append(st.Peers, control.Peer{Name: ls.Name, Addr: ls.Addr, Liveness: pl})
		}
		if ls.Problem != "" {
			for i := range st.Instances {
				st.Instances[i].Problems = append(st.Instances[i].Problems, "liveness: "+ls.Problem)
			}
		}
	}
}
