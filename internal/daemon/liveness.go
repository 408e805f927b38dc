package daemon

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/liveness"
	"github.com/vipd/vipd/vrrp"
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
				prio := int(inst.runner.Status().EffectivePriority)
				if by, ok := outrankedBy(d.peers.list(time.Now()), inst.name, inst.cfg.VRID, prio, inst.src, peer.Addr); ok {
					d.log.Info().Str("component", "liveness").Str("instance", inst.name).Str("peer", peer.Name).
						Str("by", by.Name).Int("by_priority", by.EffectivePriority).Int("priority", prio).
						Msgf("%s's vipd is gone: %s (priority %d, a ready BACKUP) outranks this node and takes over; waiting for its advert (Master_Down_Interval if none comes)", peer.Name, by.Name, by.EffectivePriority)
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

// outrankedBy returns the fresh peer, other than the one whose vipd is
// gone, that runs the instance (by name, or by VRID for an old peer) as a
// ready BACKUP and would win the election against this node: a higher
// effective priority, or the same one and a higher address (RFC 9568
// section 6.4.3). Such a node takes over the moment it learns of the
// crash, after its own GoneSkew; this node then leaves the takeover to it
// and does not set its timer to GoneSkew. GoneSkew alone separates the
// backups by a few milliseconds only (9.8 ms between priorities 100 and
// 50 at 200 ms adverts), less than a busy 2-CPU VM's scheduling delay:
// CI once saw the priority-50 node take over too, and yield 5 ms later.
func outrankedBy(peers []control.Peer, name string, vrid uint8, prio int, self, gone netip.Addr) (control.Peer, bool) {
	var best control.Peer
	found := false
	for _, p := range peers {
		addr, err := netip.ParseAddr(p.Addr)
		if err != nil || !p.Fresh || addr == gone || addr == self {
			continue
		}
		for _, in := range p.Instances {
			if (in.Name != name && in.VRID != int(vrid)) || in.State != vrrp.StateBackup.String() || !in.Ready {
				continue
			}
			if in.EffectivePriority > prio || (in.EffectivePriority == prio && addr.Compare(self) > 0) {
				if !found || in.EffectivePriority > best.EffectivePriority {
					best, found = p, true
					best.EffectivePriority = in.EffectivePriority
				}
			}
		}
	}
	return best, found
}
