package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"sort"
	"strconv"
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
// second, and at once when its state changes. It feeds the status page
// ("every node this node knows") and lets `vipd drill` refuse when no
// healthy backup exists. It never influences the election.

const (
	beaconEvery = time.Second
	beaconFresh = 3 * time.Second
	maxBeacon   = 4096
)

// beacon is the datagram. Version 1 carried one instance in the top-level
// fields; they are still filled (with the first instance) so that a vipd
// of that version keeps seeing this node during a rolling upgrade.
type beacon struct {
	V         int              `json:"v"`
	Node      string           `json:"node"`
	VRID      int              `json:"vrid"`
	State     string           `json:"state"`
	Prio      int              `json:"prio"`
	Ready     bool             `json:"ready"`
	Instances []beaconInstance `json:"instances,omitempty"`
}

type beaconInstance struct {
	Name  string `json:"name"`
	VRID  int    `json:"vrid"`
	State string `json:"state"`
	Prio  int    `json:"prio"`
	Ready bool   `json:"ready"`
	// Since is the instance's last transition on the sender's clock (a
	// drill marks the new master's own transition with it).
	Since time.Time `json:"since,omitzero"`
}

// instances returns the beacon's instances, from the version 1 fields when
// the sender is that old.
func (b beacon) instances() []beaconInstance {
	if len(b.Instances) > 0 {
		return b.Instances
	}
	return []beaconInstance{{Name: "vrid-" + strconv.Itoa(b.VRID), VRID: b.VRID, State: b.State, Prio: b.Prio, Ready: b.Ready}}
}

type peerTable struct {
	mu    sync.Mutex
	peers map[netip.Addr]*peer
	names map[netip.Addr]string
}

type peer struct {
	name      string
	lastSeen  time.Time
	instances []beaconInstance
}

func newPeerTable() *peerTable {
	return &peerTable{peers: map[netip.Addr]*peer{}, names: map[netip.Addr]string{}}
}

func (t *peerTable) setNames(cfg *config.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.names = map[netip.Addr]string{}
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

// update records a beacon and reports whether anything a subscriber cares
// about changed.
func (t *peerTable) update(from netip.Addr, b beacon, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[from]
	if p == nil {
		p = &peer{}
		t.peers[from] = p
	}
	ins := b.instances()
	for i := range ins {
		ins[i].Name, ins[i].State = safetext.Clean(ins[i].Name), safetext.Clean(ins[i].State)
	}
	name := safetext.Clean(b.Node)
	changed := p.name != name || !sameInstances(p.instances, ins) || now.Sub(p.lastSeen) >= beaconFresh
	p.name, p.instances, p.lastSeen = name, ins, now
	return changed
}

func sameInstances(a, b []beaconInstance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (t *peerTable) list(now time.Time) []control.Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]control.Peer, 0, len(t.peers))
	for addr, p := range t.peers {
		c := control.Peer{Name: p.name, Addr: addr.String(), LastSeen: p.lastSeen, Fresh: now.Sub(p.lastSeen) < beaconFresh}
		for i, in := range p.instances {
			if i == 0 {
				c.State, c.EffectivePriority, c.Ready = in.State, in.Prio, in.Ready
			}
			c.Instances = append(c.Instances, control.PeerInstance{Name: in.Name, VRID: in.VRID, State: in.State, EffectivePriority: in.Prio, Ready: in.Ready})
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// since is when the peer at addr says its instance (by name, or by VRID
// for an old peer) last changed state, on its clock; zero when unknown.
func (t *peerTable) since(addr netip.Addr, name string, vrid uint8) (time.Time, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[addr]
	if p == nil {
		return time.Time{}, ""
	}
	for _, in := range p.instances {
		if in.Name == name || in.VRID == int(vrid) {
			return in.Since, in.State
		}
	}
	return time.Time{}, ""
}

// bestBackup is the fresh peer whose copy of the instance is a ready
// BACKUP with the highest priority.
func (t *peerTable) bestBackup(name string, vrid uint8, now time.Time) (control.Peer, int, bool) {
	var best control.Peer
	bestPrio, found := 0, false
	for _, p := range t.list(now) {
		if !p.Fresh {
			continue
		}
		for _, in := range p.Instances {
			if (in.Name != name && in.VRID != int(vrid)) || in.State != vrrp.StateBackup.String() || !in.Ready || in.EffectivePriority <= 0 {
				continue
			}
			if !found || in.EffectivePriority > bestPrio {
				best, bestPrio, found = p, in.EffectivePriority, true
			}
		}
	}
	return best, bestPrio, found
}

// ourBeacon describes this node now.
func (d *Daemon) ourBeacon() beacon {
	_, node := d.config()
	b := beacon{V: 1, Node: node.Name}
	for i, inst := range d.vrrpInstances() {
		st := inst.runner.Status()
		bi := beaconInstance{Name: inst.name, VRID: int(inst.cfg.VRID), State: st.State.String(), Prio: int(st.EffectivePriority), Ready: st.Ready, Since: st.LastTransition}
		if i == 0 {
			b.VRID, b.State, b.Prio, b.Ready = bi.VRID, bi.State, bi.Prio, bi.Ready
		}
		b.Instances = append(b.Instances, bi)
	}
	return b
}

// runBeacon sends our beacon to every other node once a second and at
// once when our state changes, and records theirs. Datagrams from
// addresses that are not a configured node are ignored.
func (d *Daemon) runBeacon(ctx context.Context) error {
	cfg, node := d.config()
	port := cfg.VRRP.StatusPort
	if port == 0 {
		return nil
	}
	known := map[netip.Addr]bool{}
	var dsts []*net.UDPAddr
	for _, n := range cfg.Nodes {
		if n.Name == node.Name {
			continue
		}
		known[n.Address] = true
		dsts = append(dsts, net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.Address, port)))
	}
	lc := net.ListenConfig{Control: freebind}
	pc, err := lc.ListenPacket(ctx, "udp", netip.AddrPortFrom(node.Address, port).String())
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
			if json.Unmarshal(buf[:n], &b) != nil || b.V != 1 {
				continue
			}
			if d.peers.update(src, b, time.Now()) {
				d.changes.Notify()
			}
		}
	}()
	t := time.NewTicker(beaconEvery)
	defer t.Stop()
	var last beacon
	var sent time.Time
	for {
		changed := d.changes.Wait()
		b := d.ourBeacon()
		// The ticker wakes every beaconEvery, a little after the last
		// send: comparing with the full period would skip every other
		// tick whenever this wakeup ran sooner after its tick than the
		// last one, and beacons would go out every 2 s.
		if !sameBeacon(b, last) || time.Since(sent) >= beaconEvery*9/10 {
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
		case <-changed:
		}
	}
}

func sameBeacon(a, b beacon) bool {
	return a.Node == b.Node && sameInstances(a.Instances, b.Instances)
}
