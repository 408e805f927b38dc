package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/vipd/vipd/bgp"
)

// fakeSpeaker stands in for the GoBGP speaker in the daemon's unit tests:
// every session is established while Run runs, and each call is recorded
// with what the host looked like at that moment (is the frontend bound,
// is the VIP on the loopback), so tests check the order of effects.
type fakeSpeaker struct {
	cfg  bgp.Config
	node *testNode

	mu       sync.Mutex
	calls    []string
	prefixes map[netip.Prefix]*bgp.PrefixStatus
	attrs    map[netip.Prefix]bgp.Attrs
	running  bool
	changed  chan struct{}
	runErr   error  // Run returns it at once (a speaker that cannot start)
	lastErr  string // every session's last error
}

func newFakeSpeaker(cfg bgp.Config, n *testNode) *fakeSpeaker {
	return &fakeSpeaker{cfg: cfg, node: n, prefixes: map[netip.Prefix]*bgp.PrefixStatus{}, attrs: map[netip.Prefix]bgp.Attrs{}, changed: make(chan struct{})}
}

// host is what a router's client would meet on this node now.
func (s *fakeSpeaker) host(p netip.Prefix) string {
	listening := false
	s.node.px.mu.Lock()
	for _, f := range s.node.px.cfg.Frontends {
		for _, b := range f.Binds {
			if b.Addr() == p.Addr() && s.node.px.listening[f.Name] {
				listening = true
			}
		}
	}
	s.node.px.mu.Unlock()
	return fmt.Sprintf("listening=%v lo=%v", listening, s.node.addrs.has(p.String()))
}

func (s *fakeSpeaker) record(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
}

func (s *fakeSpeaker) Run(ctx context.Context) error {
	if s.runErr != nil {
		return s.runErr
	}
	s.mu.Lock()
	s.running = true
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	s.record("cease")
	return nil
}

func (s *fakeSpeaker) set(p netip.Prefix, state, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.prefixes[p]
	if ps == nil {
		ps = &bgp.PrefixStatus{Prefix: p.String()}
		s.prefixes[p] = ps
	}
	ps.State, ps.Reason = state, reason
	ps.Peers = 0
	if state != bgp.Withdrawn {
		ps.Peers = 1
	}
}

func (s *fakeSpeaker) Announce(p netip.Prefix, a bgp.Attrs) error {
	s.record(fmt.Sprintf("announce %s (%s)", p, s.host(p)))
	s.mu.Lock()
	s.attrs[p] = a
	s.mu.Unlock()
	s.set(p, bgp.Announced, "")
	return nil
}

func (s *fakeSpeaker) Drain(p netip.Prefix, reason string) error {
	s.record(fmt.Sprintf("drain %s (%s)", p, s.host(p)))
	s.set(p, bgp.Draining, reason)
	return nil
}

func (s *fakeSpeaker) Withdraw(p netip.Prefix, reason string) error {
	s.record(fmt.Sprintf("withdraw %s (%s): %s", p, s.host(p), reason))
	s.set(p, bgp.Withdrawn, reason)
	return nil
}

func (s *fakeSpeaker) Status() bgp.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := bgp.Status{ASN: s.cfg.ASN, RouterID: s.cfg.RouterID.String(), Running: s.running}
	for _, p := range s.cfg.Peers {
		ps := bgp.PeerStatus{Address: p.Address.String(), ASN: p.ASN, State: bgp.StateActive, LastError: s.lastErr}
		if s.running {
			ps.State = bgp.StateEstablished
		}
		st.Peers = append(st.Peers, ps)
	}
	for _, p := range s.prefixes {
		st.Prefixes = append(st.Prefixes, *p)
	}
	sort.Slice(st.Prefixes, func(i, j int) bool { return st.Prefixes[i].Prefix < st.Prefixes[j].Prefix })
	return st
}

func (s *fakeSpeaker) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// log returns the calls so far, and clears them.
func (s *fakeSpeaker) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.calls
	s.calls = nil
	return out
}

func (s *fakeSpeaker) attrsOf(p string) bgp.Attrs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attrs[netip.MustParsePrefix(p)]
}
