package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/safetext"
	"github.com/vipd/vipd/vrrp"
)

// Status beacons: VRRP backups are silent by design, so a master cannot
// know whether a backup is alive and healthy. Every vipd node therefore
// sends a small JSON datagram to the other [[node]] addresses once a
// second. It feeds the status page ("every node this node knows") and
// lets `vipd drill` refuse when no healthy backup exists. It never
// influences the election.

const (
	beaconEvery = time.Second
	beaconPoll  = 50 * time.Millisecond
	beaconFresh = 3 * time.Second
	maxBeacon   = 1024
)

type beacon struct {
	V     int    `json:"v"`
	Node  string `json:"node"`
	VRID  int    `json:"vrid"`
	State string `json:"state"`
	Prio  int    `json:"prio"`
	Ready bool   `json:"ready"`
}

type peerTable struct {
	mu    sync.Mutex
	peers map[netip.Addr]*control.Peer
	names map[netip.Addr]string
}

func newPeerTable() *peerTable {
	return &peerTable{peers: map[netip.Addr]*control.Peer{}, names: map[netip.Addr]string{}}
}

func (t *peerTable) setNames(cfg *config.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range cfg.Nodes {
		t.names[n.Address] = n.Name
	}
}

func (t *peerTable) name(a netip.Addr) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.names[a]; ok {
		return n + " (" + a.String() + ")"
	}
	return a.String()
}

func (t *peerTable) update(from netip.Addr, b beacon, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.peers[from] = &control.Peer{Name: safetext.Clean(b.Node), Addr: from.String(), State: safetext.Clean(b.State), EffectivePriority: b.Prio, Ready: b.Ready, LastSeen: now}
}

func (t *peerTable) list() []control.Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	out := make([]control.Peer, 0, len(t.peers))
	for _, p := range t.peers {
		c := *p
		c.Fresh = now.Sub(p.LastSeen) < beaconFresh
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// bestBackup is the fresh, ready BACKUP peer with the highest priority.
func (t *peerTable) bestBackup(now time.Time) (control.Peer, bool) {
	var best control.Peer
	found := false
	for _, p := range t.list() {
		if !p.Fresh || p.State != vrrp.StateBackup.String() || !p.Ready || p.EffectivePriority <= 0 {
			continue
		}
		if !found || p.EffectivePriority > best.EffectivePriority {
			best, found = p, true
		}
	}
	return best, found
}

// runBeacon sends our beacon to every other node and records theirs.
// Datagrams from addresses that are not a configured node are ignored.
func (d *Daemon) runBeacon(ctx context.Context, cfg *config.Config) error {
	port := cfg.VRRP.StatusPort
	if port == 0 {
		return nil
	}
	d.peers.setNames(cfg)
	known := map[netip.Addr]bool{}
	var dsts []*net.UDPAddr
	for _, n := range cfg.Nodes {
		if n.Name == d.node.Name {
			continue
		}
		known[n.Address] = true
		dsts = append(dsts, net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.Address, port)))
	}
	lc := net.ListenConfig{Control: freebind}
	pc, err := lc.ListenPacket(ctx, "udp", netip.AddrPortFrom(d.node.Address, port).String())
	if err != nil {
		d.log.Warn().Err(err).Msg("status beacon disabled: cannot bind")
		return nil
	}
	conn := pc.(*net.UDPConn)
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go func() {
		buf := make([]byte, maxBeacon)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			src := from.Addr().Unmap()
			if !known[src] {
				continue
			}
			var b beacon
			if json.Unmarshal(buf[:n], &b) != nil || b.V != 1 || b.VRID != int(cfg.VRRP.VRID) {
				continue
			}
			d.peers.update(src, b, time.Now())
		}
	}()
	// Send once a second, and at once (within beaconPoll) when our state,
	// priority or readiness changes, so a peer's drill safety check never
	// acts on a state a second old.
	t := time.NewTicker(beaconPoll)
	defer t.Stop()
	var last beacon
	var sent time.Time
	for {
		st := d.runner.Status()
		b := beacon{V: 1, Node: d.node.Name, VRID: int(cfg.VRRP.VRID), State: st.State.String(), Prio: int(st.EffectivePriority), Ready: st.Ready}
		if b != last || time.Since(sent) >= beaconEvery {
			msg, _ := json.Marshal(b)
			for _, dst := range dsts {
				conn.WriteToUDP(msg, dst)
			}
			last, sent = b, time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
