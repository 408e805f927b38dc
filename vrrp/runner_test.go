package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

// fakeConn is an in-memory VRRP socket: tests inject packets and read what
// the runner sent. Under synctest a ReadFrom waiting on the channel is
// durably blocked, so fake time advances.
type fakeConn struct {
	in     chan fakePkt
	mu     sync.Mutex
	out    []fakePkt
	closed chan struct{}
	once   sync.Once
	// kick is closed by a read deadline in the past (runner_handoff_test.go).
	kick chan struct{}
}

type fakePkt struct {
	b        []byte
	src, dst netip.Addr
	ttl      int
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan fakePkt, 64), closed: make(chan struct{}), kick: make(chan struct{})}
}

func (c *fakeConn) ReadFrom(b []byte) (int, netip.Addr, netip.Addr, int, error) {
	c.mu.Lock()
	kick := c.kick
	c.mu.Unlock()
	select {
	case <-kick:
		return 0, netip.Addr{}, netip.Addr{}, 0, os.ErrDeadlineExceeded
	case p := <-c.in:
		return copy(b, p.b), p.src, p.dst, p.ttl, nil
	case <-c.closed:
		return 0, netip.Addr{}, netip.Addr{}, 0, net.ErrClosed
	}
}

func (c *fakeConn) WriteTo(b []byte, dst netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, fakePkt{b: slices.Clone(b), dst: dst})
	return nil
}

func (c *fakeConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// sent decodes what the runner sent so far.
func (c *fakeConn) sent(t *testing.T) []Advertisement {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Advertisement
	for _, p := range c.out {
		var a Advertisement
		if err := a.UnmarshalBinary(p.b); err != nil {
			t.Fatalf("runner sent an undecodable advert: %v", err)
		}
		out = append(out, a)
	}
	return out
}

// fakeEffects records the effects in order. fail makes an effect fail;
// during is called inside every effect (to look at status mid-batch).
type fakeEffects struct {
	mu     sync.Mutex
	calls  []string
	fail   map[string]error
	during func(call string)
}

func (f *fakeEffects) rec(call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	err := f.fail[call]
	during := f.during
	f.mu.Unlock()
	if during != nil {
		during(call)
	}
	return err
}

func (f *fakeEffects) Listen() error       { return f.rec("listen") }
func (f *fakeEffects) AddVIP() error       { return f.rec("addvip") }
func (f *fakeEffects) Announce(rounds int) { f.rec(fmt.Sprintf("announce %d", rounds)) }
func (f *fakeEffects) StopAnnounce()       { f.rec("stopannounce") }
func (f *fakeEffects) RemoveVIP() error    { return f.rec("removevip") }
func (f *fakeEffects) Unlisten()           { f.rec("unlisten") }
func (f *fakeEffects) CloseConns()         { f.rec("closeconns") }
func (f *fakeEffects) setFail(c string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	f.fail[c] = err
}
func (f *fakeEffects) Transition(from, to State, prio uint8, reason string) {
	f.rec(fmt.Sprintf("%v->%v %d", from, to, prio))
}
func (f *fakeEffects) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

var (
	vipA     = netip.MustParseAddr("192.0.2.10")
	selfAddr = netip.MustParseAddr("10.0.0.1")
	peerAddr = netip.MustParseAddr("10.0.0.2")
	strange  = netip.MustParseAddr("10.0.0.9")
)

func runnerConfig(prio uint8) RunnerConfig {
	return RunnerConfig{
		Machine: Config{VRID: 51, Priority: prio, AdvertInterval: time.Second, Preempt: true, Addr: selfAddr,
			LowerPrioRounds: 1, LowerPrioEvery: 5 * time.Second},
		VIPs: []netip.Addr{vipA},
		Log:  zerolog.Nop(),
	}
}

type testRunner struct {
	*Runner
	conn   *fakeConn
	fx     *fakeEffects
	cancel context.CancelFunc
	err    chan error
}

// startRunner starts a runner inside the current synctest bubble.
func startRunner(t *testing.T, cfg RunnerConfig) *testRunner {
	t.Helper()
	conn, fx := newFakeConn(), &fakeEffects{}
	r, err := NewRunner(cfg, conn, fx)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &testRunner{Runner: r, conn: conn, fx: fx, cancel: cancel, err: make(chan error, 1)}
	go func() { tr.err <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		conn.Close()
	})
	synctest.Wait()
	return tr
}

// inject delivers an advert from src as the peer would send it.
func (tr *testRunner) inject(t *testing.T, adv Advertisement, src netip.Addr, ttl int) {
	t.Helper()
	if adv.Version == 0 {
		adv.Version = 3
	}
	adv.Type = TypeAdvertisement
	if adv.VRID == 0 {
		adv.VRID = 51
	}
	if adv.MaxAdvertInterval == 0 {
		adv.MaxAdvertInterval = time.Second
	}
	if adv.Addresses == nil {
		adv.Addresses = []netip.Addr{vipA}
	}
	dst := IPv4Group
	b, err := MarshalAdvertisement(&adv, src, dst, ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	tr.conn.in <- fakePkt{b: b, src: src, dst: dst, ttl: ttl}
	synctest.Wait()
}

func (tr *testRunner) mustState(t *testing.T, want State) {
	t.Helper()
	if got := tr.Status().State; got != want {
		t.Fatalf("state %v, want %v", got, want)
	}
}

// RFC 9568 section 7.1: "A VRRP router MUST verify ... the IP TTL is 255
// ... the VRRP version ... the VRID is configured on the receiving
// interface ... the VRRP checksum", "If any one of the above checks fails,
// the receiver MUST discard the packet"; the TTL rule is kept to multicast
// (vipd's rule, as keepalived: a unicast peer may be a routed hop away);
// address lists that differ are counted, not dropped (vipd's rule, see
// NoticeAddrList).
// Reference: RFC 9568 section 7.1
func TestRunnerReceiveChecks(t *testing.T) {
	v4 := []netip.Addr{vipA}
	tests := []struct {
		name    string
		unicast bool
		node    bool  // the sender is a configured node (multicast)
		version uint8 // the instance's; 0 = 3
		pass    string
		adv     Advertisement
		src     netip.Addr
		ttl     int
		raw     []byte // sent instead of adv when set
		drop    DropReason
		notice  Notice
		problem string
	}{
		{name: "good", adv: Advertisement{Priority: 200}, src: peerAddr, ttl: 255},
		{name: "own echo", adv: Advertisement{Priority: 200}, src: selfAddr, ttl: 255, drop: DropSelf},
		{name: "multicast ttl 254", adv: Advertisement{Priority: 200}, src: peerAddr, ttl: 254, drop: DropTTL},
		{name: "multicast no ttl reported", adv: Advertisement{Priority: 200}, src: peerAddr, ttl: -1},
		{name: "unicast ttl 64 from a peer", unicast: true, adv: Advertisement{Priority: 200}, src: peerAddr, ttl: 64},
		{name: "unicast no ttl reported", unicast: true, adv: Advertisement{Priority: 200}, src: peerAddr, ttl: -1},
		{name: "unicast from a stranger", unicast: true, adv: Advertisement{Priority: 200}, src: strange, ttl: 255, drop: DropPeer},
		{name: "other vrid", adv: Advertisement{Priority: 200, VRID: 52}, src: peerAddr, ttl: 255, drop: DropVRID},
		{name: "a sibling instance's vrid", adv: Advertisement{Priority: 200, VRID: 53}, src: peerAddr, ttl: 255, drop: dropSibling},
		{name: "ipv6 addresses", adv: Advertisement{Priority: 200, Addresses: []netip.Addr{netip.MustParseAddr("fd00::1")}}, src: peerAddr, ttl: 255,
			drop: DropFamily, problem: "advertises IPv6 addresses on this IPv4 instance"},
		{name: "bad checksum", raw: corrupt(t, Advertisement{Version: 3, Type: 1, VRID: 51, Priority: 200, MaxAdvertInterval: time.Second, Addresses: v4}),
			src: peerAddr, ttl: 255, drop: DropChecksum, problem: "checksum matches no form"},
		{name: "garbage", raw: []byte{0x31, 51, 200}, src: peerAddr, ttl: 255, drop: DropShort},
		{name: "v2 advert on a v3 instance", adv: Advertisement{Version: 2, Priority: 200}, src: peerAddr, ttl: 255,
			drop: DropVersion, problem: "peer 10.0.0.2 speaks VRRPv2; set version = 2 to join it"},
		{name: "v3 advert on a v2 instance", version: 2, adv: Advertisement{Priority: 200}, src: peerAddr, ttl: 255,
			drop: DropVersion, problem: "peer 10.0.0.2 speaks VRRPv3; set version = 3 to join it"},
		{name: "v2 advert from a configured node on a v3 instance", node: true, adv: Advertisement{Version: 2, Priority: 200}, src: peerAddr, ttl: 255,
			notice: NoticeVersion, problem: "peer 10.0.0.2 speaks VRRPv2; set version = 2 to join it (meanwhile this node follows it"},
		{name: "v3 advert from a configured unicast peer on a v2 instance", unicast: true, version: 2, pass: "k8sPASS", adv: Advertisement{Priority: 200}, src: peerAddr, ttl: 255,
			notice: NoticeVersion, problem: "peer 10.0.0.2 speaks VRRPv3; set version = 3 to join it"},
		{name: "v2 advert from a configured node with a bad checksum", node: true, raw: corrupt(t, Advertisement{Version: 2, Type: 1, VRID: 51, Priority: 200, MaxAdvertInterval: time.Second, Addresses: v4}),
			src: peerAddr, ttl: 255, drop: DropChecksum, problem: "checksum matches no form"},
		{name: "v2 right password", version: 2, pass: "k8sPASS", adv: Advertisement{Version: 2, Priority: 200, AuthType: authPass, AuthData: pass8("k8sPASS")}, src: peerAddr, ttl: 255},
		{name: "v2 wrong password", version: 2, pass: "k8sPASS", adv: Advertisement{Version: 2, Priority: 200, AuthType: authPass, AuthData: pass8("guess")}, src: peerAddr, ttl: 255,
			drop: DropAuth, problem: "sends a different auth_pass"},
		{name: "v2 missing password", version: 2, pass: "k8sPASS", adv: Advertisement{Version: 2, Priority: 200}, src: peerAddr, ttl: 255,
			drop: DropAuthType, problem: "sends no password"},
		{name: "v2 password we do not expect", version: 2, adv: Advertisement{Version: 2, Priority: 200, AuthType: authPass, AuthData: pass8("x")}, src: peerAddr, ttl: 255,
			drop: DropAuthType, problem: "set auth_pass to its password"},
		{name: "v2 AH", version: 2, adv: Advertisement{Version: 2, Priority: 200, AuthType: authAH}, src: peerAddr, ttl: 255,
			drop: DropAuthType, problem: "auth_type AH, which vipd does not support"},
		{name: "v2 other interval", version: 2, adv: Advertisement{Version: 2, Priority: 200, MaxAdvertInterval: 3 * time.Second}, src: peerAddr, ttl: 255,
			notice: NoticeInterval, problem: "advertises every 3s, this node every 1s"},
		{name: "address list differs", adv: Advertisement{Priority: 200, Addresses: []netip.Addr{vipA, netip.MustParseAddr("192.0.2.11")}}, src: peerAddr, ttl: 255,
			notice: NoticeAddrList, problem: "the VIP lists differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := runnerConfig(100)
				cfg.Unicast, cfg.AuthPass = tt.unicast, tt.pass
				cfg.Siblings = []uint8{53}
				if tt.unicast || tt.node {
					cfg.Peers = []netip.Addr{peerAddr}
				}
				if tt.version != 0 {
					cfg.Machine.Version = tt.version
				}
				tr := startRunner(t, cfg)
				if tt.raw != nil {
					tr.conn.in <- fakePkt{b: tt.raw, src: tt.src, dst: IPv4Group, ttl: tt.ttl}
					synctest.Wait()
				} else {
					tr.inject(t, tt.adv, tt.src, tt.ttl)
				}
				st := tr.Status()
				accepted := st.AdvertsReceived == 1
				if tt.drop == "" && !accepted {
					t.Errorf("dropped (%v), want accepted", st.Drops)
				}
				if tt.drop == dropSibling && (accepted || len(st.Drops) != 0) {
					t.Errorf("a sibling's advert: drops %v, received %d; want ignored, not counted", st.Drops, st.AdvertsReceived)
				} else if tt.drop != "" && tt.drop != dropSibling && (accepted || st.Drops[tt.drop] != 1) {
					t.Errorf("drops %v, received %d; want one %q drop", st.Drops, st.AdvertsReceived, tt.drop)
				}
				if tt.notice != "" && st.Notices[tt.notice] != 1 {
					t.Errorf("notices %v, want one %q", st.Notices, tt.notice)
				}
				var problems []string
				for _, s := range st.Senders {
					if s.Problem != "" {
						problems = append(problems, s.Problem)
					}
				}
				switch {
				case tt.problem == "" && len(problems) > 0:
					t.Errorf("problems %q, want none", problems)
				case tt.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.problem)):
					t.Errorf("problems %q, want one containing %q", problems, tt.problem)
				}
			})
		})
	}
}

func pass8(s string) (b [8]byte) { copy(b[:], s); return b }

func corrupt(t *testing.T, a Advertisement) []byte {
	b, err := MarshalAdvertisement(&a, peerAddr, IPv4Group, ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	b[7] ^= 0xff
	return b
}

// Both IPv4 checksum forms are accepted and reported per sender
// (DESIGN.md section 3).
// Reference: RFC 9568 section 5.2.8
func TestRunnerChecksumForms(t *testing.T) {
	for _, mode := range []ChecksumMode{ChecksumPseudoHeader, ChecksumMessage} {
		synctest.Test(t, func(t *testing.T) {
			tr := startRunner(t, runnerConfig(100))
			a := Advertisement{Version: 3, Type: 1, VRID: 51, Priority: 200, MaxAdvertInterval: time.Second, Addresses: []netip.Addr{vipA}}
			b, err := MarshalAdvertisement(&a, peerAddr, IPv4Group, mode)
			if err != nil {
				t.Fatal(err)
			}
			tr.conn.in <- fakePkt{b: b, src: peerAddr, dst: IPv4Group, ttl: 255}
			synctest.Wait()
			st := tr.Status()
			if len(st.Senders) != 1 || st.Senders[0].Checksum != mode || st.Senders[0].Count != 1 {
				t.Errorf("%v: senders %+v", mode, st.Senders)
			}
		})
	}
}

// Forged sources cannot grow the sender table without bound.
func TestRunnerSenderTableBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		for i := range 3 * maxSenders {
			src := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
			tr.inject(t, Advertisement{Version: 2, Priority: 50}, src, 255)
		}
		if n := len(tr.Status().Senders); n != maxSenders {
			t.Errorf("%d senders kept, want %d", n, maxSenders)
		}
	})
}

// vipd's rule (DESIGN.md section 2): status is published after the effects
// of a step ran, so MASTER in status means the listeners and the VIP exist.
func TestRunnerPublishesAfterEffects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := runnerConfig(100)
		conn, fx := newFakeConn(), &fakeEffects{}
		r, err := NewRunner(cfg, conn, fx)
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		fx.during = func(call string) {
			seen = append(seen, call+":"+r.Status().State.String())
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		defer conn.Close()
		changed := r.Changed()
		go r.Run(ctx)
		synctest.Wait()
		<-changed // BACKUP published
		changed = r.Changed()
		time.Sleep(r.Status().DownInterval)
		synctest.Wait()
		select {
		case <-changed:
		default:
			t.Fatal("no change published after becoming MASTER")
		}
		if st := r.Status().State; st != StateMaster {
			t.Fatalf("state %v after Down_Interval, want MASTER", st)
		}
		want := []string{"INIT->BACKUP 100:INIT", "removevip:INIT", "BACKUP->MASTER 100:BACKUP", "listen:BACKUP", "addvip:BACKUP", "announce 0:BACKUP"}
		if diff := cmp.Diff(want, seen); diff != "" {
			t.Errorf("status seen inside the effects (-want +got):\n%s", diff)
		}
	})
}

// A stop is honoured at any moment: before Run (the instance never
// starts), as BACKUP (it stops at once, no effects), and as MASTER (priority
// 0, then the VIP goes when the successor is heard). Cancelling the
// context instead is a hard stop: a MASTER lets go at once without
// priority 0.
func TestRunnerStopInEveryState(t *testing.T) {
	t.Run("before Run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			conn, fx := newFakeConn(), &fakeEffects{}
			r, err := NewRunner(runnerConfig(255), conn, fx)
			if err != nil {
				t.Fatal(err)
			}
			r.Stop()
			if err := r.Run(context.Background()); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if calls := fx.take(); len(calls) != 0 {
				t.Errorf("effects %q, want none: the owner must not have taken the VIP", calls)
			}
			if n := len(conn.sent(t)); n != 0 {
				t.Errorf("%d adverts sent, want none", n)
			}
		})
	})
	t.Run("as BACKUP", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := startRunner(t, runnerConfig(100))
			tr.fx.take()
			tr.Stop()
			synctest.Wait()
			mustReturn(t, tr, nil)
			if diff := cmp.Diff([]string{"BACKUP->INIT 100"}, tr.fx.take()); diff != "" {
				t.Errorf("effects (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("as MASTER", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := startRunner(t, runnerConfig(255))
			tr.fx.take()
			tr.Stop()
			synctest.Wait()
			sent := tr.conn.sent(t)
			if last := sent[len(sent)-1]; last.Priority != 0 {
				t.Fatalf("last advert priority %d, want 0", last.Priority)
			}
			if calls := tr.fx.take(); len(calls) != 0 {
				t.Fatalf("effects %q before the successor is heard, want none", calls)
			}
			tr.inject(t, Advertisement{Priority: 100}, peerAddr, 255)
			mustReturn(t, tr, nil)
			want := []string{"MASTER->INIT 255", "stopannounce", "removevip", "unlisten", "closeconns"}
			if diff := cmp.Diff(want, tr.fx.take()); diff != "" {
				t.Errorf("effects (-want +got):\n%s", diff)
			}
		})
	})
	t.Run("cancel as MASTER", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := startRunner(t, runnerConfig(255))
			tr.fx.take()
			n := len(tr.conn.sent(t))
			tr.cancel()
			mustReturn(t, tr, context.Canceled)
			want := []string{"MASTER->INIT 255", "stopannounce", "removevip", "unlisten", "closeconns"}
			if diff := cmp.Diff(want, tr.fx.take()); diff != "" {
				t.Errorf("effects (-want +got):\n%s", diff)
			}
			if m := len(tr.conn.sent(t)); m != n {
				t.Errorf("%d adverts sent by the hard stop, want none", m-n)
			}
		})
	})
	t.Run("cancel as BACKUP", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := startRunner(t, runnerConfig(100))
			tr.fx.take()
			tr.cancel()
			mustReturn(t, tr, context.Canceled)
			if diff := cmp.Diff([]string{"BACKUP->INIT 100"}, tr.fx.take()); diff != "" {
				t.Errorf("effects (-want +got):\n%s", diff)
			}
		})
	})
}

func mustReturn(t *testing.T, tr *testRunner, want error) {
	t.Helper()
	synctest.Wait()
	select {
	case err := <-tr.err:
		if !errors.Is(err, want) && err != want {
			t.Fatalf("Run returned %v, want %v", err, want)
		}
	default:
		t.Fatal("Run has not returned")
	}
}

// vipd's rule (DESIGN.md section 2): an effect that fails is an event into
// the machine. A MASTER that cannot listen goes FAULT (handing over with
// priority 0) and retries; the rest of the failed batch is not carried out.
func TestRunnerEffectFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, fx := newFakeConn(), &fakeEffects{}
		fx.setFail("listen", errors.New("address in use"))
		r, err := NewRunner(runnerConfig(255), conn, fx)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		defer conn.Close()
		go r.Run(ctx)
		synctest.Wait()
		want := []string{"INIT->MASTER 255", "listen", "MASTER->FAULT 255", "stopannounce", "removevip", "unlisten", "closeconns"}
		if diff := cmp.Diff(want, fx.take()); diff != "" {
			t.Errorf("effects (-want +got):\n%s", diff)
		}
		st := r.Status()
		if st.State != StateFault || !strings.Contains(st.EffectFault, "listen failed: address in use") || st.EffectErrors["listen"] != 1 {
			t.Errorf("status %+v", st)
		}
		if sent := conn.sent(t); len(sent) != 1 || sent[0].Priority != 0 {
			t.Errorf("adverts %+v, want one priority-0 advert", sent)
		}
		fx.setFail("listen", nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if st := r.Status().State; st != StateMaster {
			t.Errorf("after the retry: %v, want MASTER (the owner)", st)
		}
	})
}

// A RemoveVIP that failed is retried while not MASTER.
func TestRunnerRemoveVIPRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(150))
		time.Sleep(tr.Status().DownInterval)
		synctest.Wait()
		tr.mustState(t, StateMaster)
		tr.fx.setFail("removevip", errors.New("netlink busy"))
		tr.inject(t, Advertisement{Priority: 200}, peerAddr, 255)
		tr.mustState(t, StateBackup)
		tr.fx.take()
		tr.fx.setFail("removevip", nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]string{"removevip"}, tr.fx.take()); diff != "" {
			t.Errorf("effects after 1s (-want +got):\n%s", diff)
		}
		if n := tr.Status().EffectErrors["remove VIP"]; n != 1 {
			t.Errorf("effect errors %v", tr.Status().EffectErrors)
		}
	})
}

// SetPriority is a latest-value slot: values set before the runner wakes
// collapse to the last one, so the machine never ends on a stale value.
func TestRunnerPriorityLatestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(150))
		for p := uint8(10); p <= 120; p += 10 {
			tr.SetPriority(p, false, "tracker")
		}
		synctest.Wait()
		if got := tr.Status().EffectivePriority; got != 120 {
			t.Errorf("effective priority %d, want the last one set, 120", got)
		}
	})
}

// Leave answers: not master on a BACKUP, nil on the MASTER (which sends
// priority 0), stopped once Run has returned.
func TestRunnerLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		if err := tr.Leave(context.Background(), time.Second, false); !errors.Is(err, ErrNotMaster) {
			t.Errorf("Leave on BACKUP: %v, want ErrNotMaster", err)
		}
		time.Sleep(tr.Status().DownInterval)
		synctest.Wait()
		if err := tr.Leave(context.Background(), time.Second, false); err != nil {
			t.Errorf("Leave on MASTER: %v", err)
		}
		synctest.Wait()
		sent := tr.conn.sent(t)
		if sent[len(sent)-1].Priority != 0 {
			t.Errorf("no priority-0 advert after Leave")
		}
		tr.cancel()
		mustReturn(t, tr, context.Canceled)
		if err := tr.Leave(context.Background(), time.Second, false); !errors.Is(err, ErrStopped) {
			t.Errorf("Leave after Run returned: %v, want ErrStopped", err)
		}
	})
}

// A packet and a timer due at the same instant: whichever the runner takes
// first, the machine ends where the RFC says. A backup whose down timer is
// due when the master's advert arrives either keeps following (advert
// first) or takes over and yields back at once to the higher priority
// (timer first); it never stays MASTER beside a better master.
func TestRunnerTimerAndPacketTogether(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			tr := startRunner(t, runnerConfig(100))
			tr.inject(t, Advertisement{Priority: 200}, peerAddr, 255)
			down := tr.Status().DownInterval
			time.Sleep(down - time.Nanosecond)
			b, _ := MarshalAdvertisement(&Advertisement{Version: 3, Type: 1, VRID: 51, Priority: 200, MaxAdvertInterval: time.Second, Addresses: []netip.Addr{vipA}},
				peerAddr, IPv4Group, ChecksumPseudoHeader)
			tr.conn.in <- fakePkt{b: b, src: peerAddr, dst: IPv4Group, ttl: 255}
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			tr.mustState(t, StateBackup)
			if st := tr.Status(); st.MasterAddr != peerAddr {
				t.Errorf("following %v, want %v", st.MasterAddr, peerAddr)
			}
		})
	}
}

// A VRRPv2 instance sends version 2 adverts with its password and its
// interval in whole seconds, checksummed over the message alone.
// Reference: RFC 3768 section 5.3
func TestRunnerSendsVersion2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := runnerConfig(255)
		cfg.Machine.Version = 2
		cfg.AuthPass = "k8sPASS"
		tr := startRunner(t, cfg)
		sent := tr.conn.sent(t)
		if len(sent) == 0 {
			t.Fatal("nothing sent")
		}
		a := sent[0]
		if a.Version != 2 || a.AuthType != authPass || a.AuthData != pass8("k8sPASS") || a.MaxAdvertInterval != time.Second {
			t.Errorf("sent %+v", a)
		}
		tr.conn.mu.Lock()
		raw := tr.conn.out[0].b
		tr.conn.mu.Unlock()
		if mode, err := VerifyChecksum(raw, selfAddr, IPv4Group); err != nil || mode != ChecksumMessage {
			t.Errorf("checksum: %v %v", mode, err)
		}
	})
}

// The host events reach the machine through the runner: a VIP removed
// while MASTER is put back and announced; the link back re-announces.
func TestRunnerHostEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(255))
		tr.fx.take()
		tr.VIPRemoved()
		synctest.Wait()
		if diff := cmp.Diff([]string{"addvip", "announce 0"}, tr.fx.take()); diff != "" {
			t.Errorf("VIP removed (-want +got):\n%s", diff)
		}
		tr.LinkUp()
		synctest.Wait()
		if diff := cmp.Diff([]string{"announce 0"}, tr.fx.take()); diff != "" {
			t.Errorf("link up (-want +got):\n%s", diff)
		}
	})
}

// vipd's rule (see AdvertReceived.OtherVersion): a VRRPv3 instance beside
// a configured node still on VRRPv2 follows it for as long as it is heard,
// even at a lower priority, instead of becoming a second MASTER; the same
// adverts from a router that is not a configured node are dropped, and the
// instance takes over after Master_Down_Interval.
func TestRunnerFollowsOtherVersionNode(t *testing.T) {
	for _, configured := range []bool{true, false} {
		t.Run(fmt.Sprintf("configured %v", configured), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := runnerConfig(150)
				if configured {
					cfg.Peers = []netip.Addr{peerAddr}
				}
				tr := startRunner(t, cfg)
				for i := 0; i < 10; i++ {
					tr.inject(t, Advertisement{Version: 2, Priority: 100}, peerAddr, 255)
					time.Sleep(time.Second)
					synctest.Wait()
				}
				st := tr.Status()
				switch {
				case configured && (st.State != StateBackup || st.MasterAddr != peerAddr || st.Notices[NoticeVersion] != 10):
					t.Errorf("state %v behind %v, notices %v; want BACKUP following %v, 10 version notices", st.State, st.MasterAddr, st.Notices, peerAddr)
				case !configured && (st.State != StateMaster || st.Drops[DropVersion] != 10):
					t.Errorf("state %v, drops %v; want MASTER, 10 version drops", st.State, st.Drops)
				}
			})
		})
	}
}

// MasterGone reaches the machine through the mailbox without blocking: a
// backup following the master takes over GoneSkew later, with the reason.
// Posted many times (one per liveness signal), it holds one slot per
// sender, so the mailbox stays bounded, and the first signal's deadline
// stands. More senders than maxGoneSlots in one wakeup are dropped, not
// queued.
func TestRunnerMasterGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		tr.inject(t, Advertisement{Priority: 200}, peerAddr, 255)
		start := time.Now()
		for i := range 1000 {
			tr.MasterGone(peerAddr, fmt.Sprintf("signal %d", i))
		}
		tr.MasterGone(strange, "not our master")
		synctest.Wait()
		tr.mustState(t, StateBackup)
		time.Sleep(GoneSkew(3, 100, time.Second))
		synctest.Wait()
		tr.mustState(t, StateMaster)
		st := tr.Status()
		if took := st.LastTransition.Sub(start); took != GoneSkew(3, 100, time.Second) {
			t.Errorf("took over after %v, want GoneSkew %v", took, GoneSkew(3, 100, time.Second))
		}
		if !strings.Contains(st.LastReason, "10.0.0.2's vipd is gone (signal ") {
			t.Errorf("reason %q, want the liveness signal's", st.LastReason)
		}
		tr.mu.Lock()
		slots := len(tr.box.gone)
		tr.mu.Unlock()
		if slots != 0 {
			t.Errorf("%d MasterGone slots left in the mailbox", slots)
		}
		for i := range 2 * maxGoneSlots {
			tr.MasterGone(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), "many senders")
		}
		tr.mu.Lock()
		slots = len(tr.box.gone)
		tr.mu.Unlock()
		if slots > maxGoneSlots {
			t.Errorf("%d MasterGone slots: the mailbox is not bounded", slots)
		}
	})
}
