package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/rs/zerolog"
)

// ErrNotAnnounced is returned by Drain for a prefix that is not announced.
var ErrNotAnnounced = errors.New("bgp: prefix is not announced")

// ErrRunning is returned by a second call to Run.
var ErrRunning = errors.New("bgp: speaker already ran")

// Speaker is one in-process BGP speaker (a GoBGP server) that announces the
// prefixes it is told to. The zero value is not usable; call New. Its
// methods may be called from any goroutine, before, during and after Run:
// prefixes announced before Run are sent once the sessions come up.
type Speaker struct {
	cfg Config
	log zerolog.Logger
	now func() time.Time

	// opMu orders the changes sent to GoBGP (held across GoBGP calls);
	// mu guards the fields below it and is never held across one.
	opMu    sync.Mutex
	srv     *server.BgpServer // set while Run's server accepts changes
	started bool

	mu       sync.Mutex
	running  bool
	prefixes map[netip.Prefix]*prefixState
	peers    map[netip.Addr]*peerRecord
	changed  chan struct{} // closed when a session changes state
}

// peerRecord is what the watcher learned about one session.
type peerRecord struct {
	state     string
	since     time.Time
	flaps     uint32
	lastError string
}

// New validates cfg, fills in defaults and returns a Speaker that has not
// started yet. log receives the speaker's and GoBGP's lines.
func New(cfg Config, log zerolog.Logger) (*Speaker, error) {
	c, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Speaker{
		cfg: c, log: log, now: time.Now,
		prefixes: map[netip.Prefix]*prefixState{},
		peers:    map[netip.Addr]*peerRecord{},
		changed:  make(chan struct{}),
	}
	for _, p := range c.Peers {
		s.peers[p.Address] = &peerRecord{state: StateIdle}
	}
	return s, nil
}

// Run starts the BGP server and the sessions and serves until ctx ends.
// Then it sends every peer a CEASE notification (RFC 4486 "peer
// de-configured"), so that routers withdraw this node's prefixes at once,
// and returns. It returns an error when the server cannot start (a port
// in use, a peer GoBGP refuses).
func (s *Speaker) Run(ctx context.Context) error {
	s.opMu.Lock()
	if s.started {
		s.opMu.Unlock()
		return ErrRunning
	}
	s.started = true
	s.opMu.Unlock()

	lvl := new(slog.LevelVar)
	lvl.Set(slogLevel(s.log))
	srv := server.NewBgpServer(server.LoggerOption(slog.New(newSlogHandler(s.log)), lvl))
	go srv.Serve()
	// Stop sends CEASE to every peer, closes the sessions and waits for
	// GoBGP's goroutines.
	stop := srv.Stop
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: globalAPI(s.cfg)}); err != nil {
		stop()
		return fmt.Errorf("bgp: start: %w", err)
	}
	watchCtx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	err := srv.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.onPeer}, server.WatchPeer())
	if err != nil {
		stop()
		return fmt.Errorf("bgp: watch: %w", err)
	}
	for _, p := range s.cfg.Peers {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peerAPI(s.cfg, p)}); err != nil {
			stop()
			return fmt.Errorf("bgp: peer %v: %w", p.Address, err)
		}
	}

	s.opMu.Lock()
	s.srv = srv
	s.mu.Lock()
	s.running = true
	var paths []*apiutil.Path
	for pfx, p := range s.prefixes {
		if p.sent() {
			if path, err := pathFor(pfx, p.wire(), false); err == nil {
				paths = append(paths, path)
			}
		}
	}
	s.mu.Unlock()
	var addErr error
	if len(paths) > 0 {
		_, addErr = srv.AddPath(apiutil.AddPathRequest{Paths: paths})
	}
	s.opMu.Unlock()
	if addErr != nil {
		s.log.Error().Err(addErr).Msg("bgp: announce the prefixes given before start")
	}
	s.log.Info().Uint32("asn", s.cfg.ASN).Stringer("router_id", s.cfg.RouterID).Int("peers", len(s.cfg.Peers)).Msg("BGP speaker started")

	<-ctx.Done()

	s.opMu.Lock()
	s.srv = nil
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	stop()
	s.opMu.Unlock()
	s.log.Info().Msg("BGP speaker stopped; sessions closed with CEASE")
	return nil
}

// onPeer records a session state change and logs it with its reason.
func (s *Speaker) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.State.NeighborAddress
	state := fsmState(ev.Peer.State.SessionState)
	reason := disconnectReason(ev.Peer.State.DisconnectReason, ev.Peer.State.DisconnectMessage)
	s.mu.Lock()
	r, ok := s.peers[addr]
	if !ok || r.state == state {
		s.mu.Unlock()
		return
	}
	prev := r.state
	r.state, r.since = state, at
	// GoBGP reports the last disconnect reason with every event; it is
	// news only when the session falls back to idle.
	if state != StateIdle {
		reason = ""
	} else if reason == "" && prev == StateEstablished {
		reason = "session closed"
	}
	if prev == StateEstablished {
		r.flaps++
	}
	if reason != "" {
		r.lastError = reason
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	e := s.log.Info()
	if prev == StateEstablished {
		e = s.log.Warn()
	}
	e = e.Stringer("peer", addr).Str("from", prev).Str("to", state)
	if reason != "" {
		e = e.Str("reason", reason)
	}
	e.Msg("BGP session " + state)
}

// Changed returns a channel that is closed the next time a session
// changes state (established, down, ...); take a fresh one after each
// wakeup. The daemon counts the established sessions then.
func (s *Speaker) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Announce sends prefix to the routers with attrs, or updates the
// attributes of a prefix already sent (also one that is draining). It
// returns an error only when GoBGP refuses the path; before Run and after
// it the prefix is only recorded.
func (s *Speaker) Announce(prefix netip.Prefix, attrs Attrs) error {
	return s.change(prefix, Announced, "", attrs, true)
}

// Drain starts a planned withdrawal of an announced prefix: it is
// re-announced with the GRACEFUL_SHUTDOWN community (RFC 8326) and
// DrainMED, so that routers which honour either send new flows to the
// other nodes while this one keeps serving. reason is shown in Status.
// Call Withdraw when the drain time is over.
func (s *Speaker) Drain(prefix netip.Prefix, reason string) error {
	s.mu.Lock()
	p, ok := s.prefixes[prefix]
	var attrs Attrs
	if ok && p.sent() {
		attrs = p.attrs
	}
	s.mu.Unlock()
	if !ok || !p.sent() {
		return fmt.Errorf("%w: %v", ErrNotAnnounced, prefix)
	}
	return s.change(prefix, Draining, reason, attrs, true)
}

// Withdraw stops announcing prefix; reason is shown in Status ("backends:
// 0 of 3 healthy", "drain self"). Withdrawing a prefix that was never
// announced records the reason, so Status can say why it is not.
func (s *Speaker) Withdraw(prefix netip.Prefix, reason string) error {
	return s.change(prefix, Withdrawn, reason, Attrs{}, false)
}

func (s *Speaker) change(prefix netip.Prefix, state, reason string, attrs Attrs, send bool) error {
	if !prefix.IsValid() || prefix != prefix.Masked() {
		return fmt.Errorf("bgp: %v: not a prefix with its host bits zero", prefix)
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()

	s.mu.Lock()
	p, ok := s.prefixes[prefix]
	if !ok {
		p = &prefixState{state: Withdrawn}
		s.prefixes[prefix] = p
	}
	wasSent := p.sent()
	prev := *p
	if p.state != state {
		p.since = s.now()
	}
	p.state, p.reason = state, reason
	if send {
		p.attrs = attrs
	}
	wire := p.wire()
	s.mu.Unlock()

	if s.srv == nil || (!send && !wasSent) {
		return nil
	}
	var err error
	if send {
		var path *apiutil.Path
		if path, err = pathFor(prefix, wire, false); err == nil {
			_, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		}
	} else {
		var path *apiutil.Path
		if path, err = pathFor(prefix, prev.wire(), true); err == nil {
			err = s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
		}
	}
	if err != nil {
		s.mu.Lock()
		*p = prev
		s.mu.Unlock()
		return fmt.Errorf("bgp: %s %v: %w", state, prefix, err)
	}
	e := s.log.Info().Stringer("prefix", prefix).Str("state", state)
	if reason != "" {
		e = e.Str("reason", reason)
	}
	e.Msg("BGP prefix " + state)
	return nil
}

// Status reports the sessions and prefixes. While Run serves it asks GoBGP
// for the counters; it does not block on the network.
func (s *Speaker) Status() Status {
	s.opMu.Lock()
	srv := s.srv
	s.opMu.Unlock()

	live := map[string]*api.Peer{}
	bfd := map[string]string{}
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
			if p.GetConf() != nil {
				live[p.Conf.NeighborAddress] = p
			}
		})
		cancel()
		srv.ListBfdPeer(context.Background(), func(addr string, st *api.BfdPeerState) {
			bfd[addr] = bfdState(st.GetSessionState())
		})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st := Status{ASN: s.cfg.ASN, RouterID: s.cfg.RouterID.String(), Running: s.running}
	established := map[bool]int{}
	for _, c := range s.cfg.Peers {
		r := s.peers[c.Address]
		ps := PeerStatus{
			Address: c.Address.String(), ASN: c.ASN, State: r.state, Since: r.since,
			HoldTime: c.HoldTime, Flaps: r.flaps, LastError: r.lastError,
		}
		if p, ok := live[ps.Address]; ok {
			fillLive(&ps, p, now)
		}
		if c.BFD != nil {
			ps.BFD = "down"
			if b, ok := bfd[ps.Address]; ok {
				ps.BFD = b
			}
		}
		if ps.State == StateEstablished {
			established[c.Address.Is4()]++
		}
		st.Peers = append(st.Peers, ps)
	}
	st.Prefixes = prefixStatus(s.prefixes, established)
	return st
}

// fillLive copies GoBGP's view of a session into ps.
func fillLive(ps *PeerStatus, p *api.Peer, now time.Time) {
	if p.State != nil {
		ps.State = sessionState(p.State.SessionState)
		if ps.State != StateEstablished && ps.LastError == "" {
			ps.LastError = disconnectReason(p.State.DisconnectReason, p.State.DisconnectMessage)
		}
	}
	if t := p.GetTimers().GetState(); t != nil && ps.State == StateEstablished {
		if t.NegotiatedHoldTime > 0 {
			ps.HoldTime = time.Duration(t.NegotiatedHoldTime) * time.Second
		}
		if up := t.GetUptime(); up != nil && up.Seconds > 0 {
			ps.Uptime = now.Sub(up.AsTime()).Truncate(time.Second)
		}
	}
	for _, af := range p.AfiSafis {
		if af.State != nil {
			ps.PrefixesSent += af.State.Advertised
			ps.PrefixesReceived += af.State.Accepted
		}
	}
}
