//go:build linux

package proxy

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// server is one backend server. Counters are atomics read by Status; up,
// admin and drain are guarded by Proxy.mu.
type server struct {
	id   uint32 // unique in the process: a connection's tried list holds ids
	name string
	addr netip.AddrPort
	seed uint64      // hash of the name, for rendezvous (source) hashing
	raw  rawSockaddr // addr for connect, read-only

	active atomic.Int64
	total  atomic.Int64
	failed atomic.Int64

	up        bool
	admin     Admin
	drainStop func() bool // stops the drain timeout's timer
	drainGen  uint64
	drainEnds time.Time // when a DRAIN closes what is left; zero otherwise
}

func newServer(sc ServerConfig) *server {
	h := fnv.New64a()
	h.Write([]byte(sc.Name))
	return &server{id: serverIDs.Add(1), name: sc.Name, addr: sc.Addr, seed: h.Sum64(), raw: newRawSockaddr(sc.Addr), up: true}
}

var serverIDs atomic.Uint32

func (s *server) state() State {
	switch {
	case s.admin == AdminMaint:
		return StateMaint
	case !s.up:
		return StateDown
	case s.admin == AdminDrain:
		return StateDrain
	}
	return StateUp
}

// snapshot is what a new connection sees of its backend: the eligible
// servers and how to choose among them. It is immutable; state changes
// publish a new one.
type snapshot struct {
	servers    []*server
	picker     picker
	failOpen   bool
	proxyProto bool
}

// picker chooses a server for a new connection from a non-empty snapshot of
// eligible servers. Implementations are safe for concurrent use.
type picker interface {
	pick(client netip.Addr, servers []*server) *server
}

func newPicker(balance string) picker {
	switch balance {
	case BalanceRoundRobin:
		return &roundRobin{}
	case BalanceSource:
		return sourceHash{}
	}
	return &leastConn{}
}

// leastConn picks the server with the fewest active connections; ties go
// round robin so equal servers share new connections.
type leastConn struct{ next atomic.Uint32 }

func (p *leastConn) pick(_ netip.Addr, servers []*server) *server {
	n := uint32(len(servers))
	start := p.next.Add(1)
	var best *server
	var bestN int64
	for i := range n {
		s := servers[(start+i)%n]
		if a := s.active.Load(); best == nil || a < bestN {
			best, bestN = s, a
		}
	}
	return best
}

// roundRobin cycles through the servers.
type roundRobin struct{ next atomic.Uint32 }

func (p *roundRobin) pick(_ netip.Addr, servers []*server) *server {
	return servers[(p.next.Add(1)-1)%uint32(len(servers))]
}

// sourceHash sends a client IP to the same server for as long as that
// server is eligible. Rendezvous hashing: when a server leaves, only its
// clients move.
type sourceHash struct{}

func (sourceHash) pick(client netip.Addr, servers []*server) *server {
	a := client.Unmap().As16()
	h := binary.BigEndian.Uint64(a[:8])*0x9e3779b97f4a7c15 ^ binary.BigEndian.Uint64(a[8:])
	var best *server
	var bestScore uint64
	for _, s := range servers {
		if sc := mix64(h ^ s.seed); best == nil || sc > bestScore {
			best, bestScore = s, sc
		}
	}
	return best
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// backend is a named set of servers. Everything but snap is guarded by
// Proxy.mu.
type backend struct {
	name     string
	cfg      BackendConfig
	servers  []*server
	picker   picker
	failOpen bool
	snap     atomic.Pointer[snapshot]
}

func (b *backend) server(name string) *server {
	for _, s := range b.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (b *backend) drainTimeout() time.Duration {
	if b.cfg.DrainTimeout > 0 {
		return b.cfg.DrainTimeout
	}
	return DefaultDrainTimeout
}

// rebuild publishes a new snapshot after any state or config change. When
// no server is UP and at least one is DOWN it fails open: every non-MAINT
// server is eligible, and that is logged once per episode.
func (b *backend) rebuild(p *Proxy) {
	var up, nonMaint []*server
	anyDown := false
	for _, s := range b.servers {
		switch s.state() {
		case StateUp:
			up = append(up, s)
		case StateDown:
			anyDown = true
		}
		if s.admin != AdminMaint {
			nonMaint = append(nonMaint, s)
		}
	}
	snap := &snapshot{servers: up, picker: b.picker, proxyProto: b.cfg.ProxyProtocol}
	if len(up) == 0 && anyDown {
		snap.servers, snap.failOpen = nonMaint, true
	}
	if snap.failOpen && !b.failOpen {
		p.log.Warn().Bool("fail_open", true).Str("backend", b.name).Int("servers", len(nonMaint)).
			Msg("every server is DOWN: failing open, forwarding to all servers not in maintenance")
	} else if !snap.failOpen && b.failOpen {
		p.log.Info().Bool("fail_open", false).Str("backend", b.name).Int("up", len(up)).Msg("fail-open episode over")
	}
	b.failOpen = snap.failOpen
	b.snap.Store(snap)
}

func sockaddrToAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
