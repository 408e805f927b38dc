package bgp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// These tests run a Speaker against a second, plain GoBGP server on
// loopback (no root needed): the "router" listens on 127.0.0.1, the
// speaker dials from 127.0.0.2. The real router, FRR in network
// namespaces, is in integration/bgp_test.go.

var (
	routerAddr  = netip.MustParseAddr("127.0.0.1")
	speakerAddr = netip.MustParseAddr("127.0.0.2")
	vip         = netip.MustParsePrefix("192.0.2.10/32")
)

func freePort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// router is a plain GoBGP server standing in for a router.
type router struct {
	t   *testing.T
	srv *server.BgpServer
}

// startRouter listens on routerAddr:port for a session from speakerAddr.
// active makes the router dial the speaker (at speakerPort) instead.
func startRouter(t *testing.T, port uint16, peerASN uint32, password string, active bool, speakerPort uint16) *router {
	t.Helper()
	srv := server.NewBgpServer()
	go srv.Serve()
	listen := int32(port)
	if active {
		listen = -1
	}
	err := srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: 64500, RouterId: "10.255.0.1", ListenPort: listen, ListenAddresses: []string{routerAddr.String()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: routerPeer(peerASN, password, active, speakerPort)}); err != nil {
		t.Fatal(err)
	}
	return &router{t: t, srv: srv}
}

// routerPeer is the router's side of the session with the speaker.
func routerPeer(peerASN uint32, password string, active bool, speakerPort uint16) *api.Peer {
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: speakerAddr.String(), PeerAsn: peerASN, AuthPassword: password},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1, ConnectRetry: 1}},
		Transport: &api.Transport{PassiveMode: !active, LocalAddress: routerAddr.String()},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family(routerAddr), Enabled: true}}},
	}
	if active {
		p.Transport.RemotePort = uint32(speakerPort)
	}
	return p
}

// received is what the router has from the speaker: prefix -> attributes.
func (r *router) received() map[string]map[gbgp.BGPAttrType]gbgp.PathAttributeInterface {
	out := map[string]map[gbgp.BGPAttrType]gbgp.PathAttributeInterface{}
	err := r.srv.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: speakerAddr.String(), Family: gbgp.RF_IPv4_UC,
	}, func(prefix gbgp.NLRI, paths []*apiutil.Path) {
		for _, p := range paths {
			if !p.Withdrawal {
				out[prefix.String()] = attrTypes(p.Attrs)
			}
		}
	})
	if err != nil && !strings.Contains(err.Error(), "not established") {
		r.t.Logf("list adj-in: %v", err)
	}
	return out
}

func (r *router) sessionState() api.PeerState_SessionState {
	var st api.PeerState_SessionState
	r.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) { st = p.State.SessionState })
	return st
}

// waitFor polls f every 10 ms until it returns nil or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startSpeaker(t *testing.T, cfg Config) (*Speaker, context.CancelFunc, chan error) {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10s after cancel")
		}
	})
	return s, cancel, done
}

func loopbackConfig(port uint16) Config {
	return Config{ASN: 64512, RouterID: netip.MustParseAddr("10.255.0.2"), Peers: []Peer{{
		Address: routerAddr, ASN: 64500, Port: port, LocalAddress: speakerAddr,
		HoldTime: 3 * time.Second, ConnectRetry: time.Second,
	}}}
}

func communities(attrs map[gbgp.BGPAttrType]gbgp.PathAttributeInterface) []string {
	c, ok := attrs[gbgp.BGP_ATTR_TYPE_COMMUNITIES].(*gbgp.PathAttributeCommunities)
	if !ok {
		return nil
	}
	var out []string
	for _, v := range c.Value {
		out = append(out, Community(v).String())
	}
	sort.Strings(out)
	return out
}

func med(attrs map[gbgp.BGPAttrType]gbgp.PathAttributeInterface) int64 {
	m, ok := attrs[gbgp.BGP_ATTR_TYPE_MULTI_EXIT_DISC].(*gbgp.PathAttributeMultiExitDisc)
	if !ok {
		return -1
	}
	return int64(m.Value)
}

// TestSpeakerAnnounceDrainWithdraw walks one prefix through its life as
// the router sees it, with the status at each step.
func TestSpeakerAnnounceDrainWithdraw(t *testing.T) {
	port := freePort(t, routerAddr)
	r := startRouter(t, port, 64512, "", false, 0)

	s, err := New(loopbackConfig(port), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	// Announced before Run: recorded, sent once the session is up.
	if err := s.Announce(vip, Attrs{MED: u32(20), Communities: []Community{64512<<16 | 100}}); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Running || st.Prefixes[0].State != Announced || st.Prefixes[0].Reason != NoSession {
		t.Fatalf("before Run: %+v", st)
	}
	changed := s.Changed()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	waitFor(t, 10*time.Second, func() error {
		got := r.received()[vip.String()]
		if got == nil {
			return fmt.Errorf("router has not got %v (session %v)", vip, r.sessionState())
		}
		if med(got) != 20 || !equal(communities(got), []string{"64512:100"}) {
			return fmt.Errorf("router got MED %d communities %v", med(got), communities(got))
		}
		return nil
	})
	waitFor(t, 5*time.Second, func() error {
		st := s.Status()
		p := st.Peers[0]
		if !st.Running || p.State != StateEstablished || p.PrefixesSent != 1 || p.HoldTime != 3*time.Second {
			return fmt.Errorf("status %+v", st)
		}
		if pf := st.Prefixes[0]; pf.State != Announced || pf.Peers != 1 || pf.Reason != "" {
			return fmt.Errorf("prefix status %+v", pf)
		}
		return nil
	})
	select {
	case <-changed:
	default:
		t.Error("Changed was not closed when the session came up")
	}

	// Drain: the same prefix, now with graceful-shutdown and the worst MED.
	if err := s.Drain(vip, "drain self"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		got := r.received()[vip.String()]
		if med(got) != DrainMED || !equal(communities(got), []string{"64512:100", "graceful-shutdown"}) {
			return fmt.Errorf("router got MED %d communities %v, want %d and graceful-shutdown (RFC 8326)", med(got), communities(got), uint32(DrainMED))
		}
		return nil
	})
	if pf := s.Status().Prefixes[0]; pf.State != Draining || pf.Reason != "drain self" {
		t.Errorf("draining status %+v", pf)
	}

	// Withdraw: gone from the router; the reason stays in the status.
	if err := s.Withdraw(vip, "backends: 0 of 3 healthy"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if got := r.received(); len(got) != 0 {
			return fmt.Errorf("router still has %v", got)
		}
		return nil
	})
	if pf := s.Status().Prefixes[0]; pf.State != Withdrawn || pf.Reason != "backends: 0 of 3 healthy" || pf.Peers != 0 {
		t.Errorf("withdrawn status %+v", pf)
	}
	if err := s.Drain(vip, "x"); !errors.Is(err, ErrNotAnnounced) {
		t.Errorf("Drain of a withdrawn prefix: %v, want ErrNotAnnounced", err)
	}

	// Announce again, then stop: the router loses the session (CEASE)
	// and the prefix at once, not after its hold time.
	if err := s.Announce(vip, Attrs{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if r.received()[vip.String()] == nil {
			return errors.New("not re-announced")
		}
		return nil
	})
	stopAt := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitFor(t, 2*time.Second, func() error {
		if st := r.sessionState(); st == api.PeerState_SESSION_STATE_ESTABLISHED {
			return errors.New("router session still established")
		}
		return nil
	})
	if el := time.Since(stopAt); el > 2*time.Second {
		t.Errorf("router noticed the stop after %v; want well under the 3s hold time", el)
	}
	done <- nil // for the deferred receive
	if st := s.Status(); st.Running {
		t.Errorf("status after Run returned: running")
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// TestSpeakerPassiveWithPassword: the router dials a passive speaker, and
// the TCP MD5 signature (RFC 2385) must match for the session to come up.
func TestSpeakerPassiveWithPassword(t *testing.T) {
	speakerPort := freePort(t, speakerAddr)
	cfg := loopbackConfig(0)
	cfg.ListenPort = speakerPort
	cfg.Peers[0].Passive = true
	cfg.Peers[0].Password = "rack-a-secret"
	// A router with the wrong password: its SYNs carry the wrong signature
	// and the kernel drops them, so no session. (Started before the
	// speaker: see the note below on two GoBGP servers in one process.)
	wrong := startRouter(t, 0, 64512, "wrong", true, speakerPort)
	s, _, _ := startSpeaker(t, cfg)
	if err := s.Announce(vip, Attrs{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if wrong.sessionState() == api.PeerState_SESSION_STATE_ESTABLISHED {
			t.Fatal("session established with the wrong MD5 password")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := s.Status().Peers[0]; p.State == StateEstablished {
		t.Fatalf("speaker says established with the wrong password: %+v", p)
	}
	// The same router with the right password. (Not a second GoBGP
	// server: GoBGP keeps route selection options in package variables,
	// so two servers starting in one process race; see doc.go.)
	ctx := context.Background()
	if err := wrong.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: speakerAddr.String()}); err != nil {
		t.Fatal(err)
	}
	if err := wrong.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: routerPeer(64512, "rack-a-secret", true, speakerPort)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if wrong.received()[vip.String()] == nil {
			return fmt.Errorf("router has not got %v (session %v)", vip, wrong.sessionState())
		}
		return nil
	})
}

// TestSpeakerStatusLastError: a session that cannot come up says why.
func TestSpeakerStatusLastError(t *testing.T) {
	port := freePort(t, routerAddr)
	r := startRouter(t, port, 64999, "", false, 0) // expects the wrong ASN
	s, _, _ := startSpeaker(t, loopbackConfig(port))
	waitFor(t, 10*time.Second, func() error {
		p := s.Status().Peers[0]
		if p.State == StateEstablished {
			return errors.New("established with a router expecting another ASN")
		}
		if p.LastError == "" {
			return fmt.Errorf("no last error yet: %+v (router %v)", p, r.sessionState())
		}
		return nil
	})
	t.Logf("last error: %s", s.Status().Peers[0].LastError)
}

func TestSpeakerRunTwice(t *testing.T) {
	port := freePort(t, routerAddr)
	s, cancel, done := startSpeaker(t, loopbackConfig(port))
	waitFor(t, 5*time.Second, func() error {
		if !s.Status().Running {
			return errors.New("not running")
		}
		return nil
	})
	if err := s.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	done <- nil
}

func TestSpeakerRejectsHostBits(t *testing.T) {
	s, err := New(loopbackConfig(179), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Announce(netip.MustParsePrefix("192.0.2.10/24"), Attrs{}); err == nil {
		t.Error("192.0.2.10/24 accepted; a BGP prefix has no host bits")
	}
	if err := s.Withdraw(netip.Prefix{}, "x"); err == nil {
		t.Error("the zero prefix accepted")
	}
}
