package vrrp

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// SetReadDeadline cuts a pending ReadFrom short when t has passed, as a
// real socket's deadline does (the read returns, nothing is lost).
func (c *fakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	expired := !t.IsZero() && !t.After(time.Now())
	select {
	case <-c.kick:
		if !expired {
			c.kick = make(chan struct{})
		}
	default:
		if expired {
			close(c.kick)
		}
	}
	return nil
}

// Resumed records the state a resumed runner took up.
func (f *fakeEffects) Resumed(s State) { f.rec("resumed " + s.String()) }

// dupConn is another descriptor of the same fake socket, as the new
// process holds after SCM_RIGHTS: same queue, its own Close.
type dupConn struct {
	c      *fakeConn
	closed chan struct{}
	once   sync.Once
}

func dup(c *fakeConn) *dupConn { return &dupConn{c: c, closed: make(chan struct{})} }

func (d *dupConn) ReadFrom(b []byte) (int, netip.Addr, netip.Addr, int, error) {
	select {
	case p := <-d.c.in:
		return copy(b, p.b), p.src, p.dst, p.ttl, nil
	case <-d.closed:
		return 0, netip.Addr{}, netip.Addr{}, 0, net.ErrClosed
	}
}
func (d *dupConn) WriteTo(b []byte, dst netip.Addr) error { return d.c.WriteTo(b, dst) }
func (d *dupConn) Close() error                           { d.once.Do(func() { close(d.closed) }); return nil }
func (d *dupConn) SetReadDeadline(time.Time) error        { return nil }

// toMaster waits out Down_Interval so a fresh runner is MASTER.
func toMaster(t *testing.T, tr *testRunner) {
	t.Helper()
	time.Sleep(tr.Status().DownInterval)
	synctest.Wait()
	tr.mustState(t, StateMaster)
}

// vipd's rule (hitless restart): a frozen runner sends nothing and takes
// no action however long it stays frozen; resumed, it carries on with no
// transition, and the advert that fell due meanwhile goes out at once.
func TestRunnerFreezeAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		toMaster(t, tr)
		tr.fx.take()
		before := tr.Status()
		snap, err := tr.Freeze(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// A MASTER freezes right after its next periodic advert: the next
		// one is a whole interval away.
		if snap.Machine.State != "MASTER" || snap.Transitions != before.Transitions || snap.AdvertsSent != before.AdvertsSent+1 {
			t.Errorf("snapshot %+v, want MASTER with %d transitions and %d adverts", snap, before.Transitions, before.AdvertsSent+1)
		}
		if d := snap.Machine.AdverAt.Sub(snap.TakenAt); d != time.Second {
			t.Errorf("frozen %v before the next advert, want the whole interval (1s)", d)
		}
		sent := len(tr.conn.sent(t))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := len(tr.conn.sent(t)); n != sent {
			t.Errorf("%d adverts sent while frozen, want none", n-sent)
		}
		if calls := tr.fx.take(); len(calls) > 0 {
			t.Errorf("effects while frozen: %v", calls)
		}
		if err := tr.Resume(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := len(tr.conn.sent(t)); n != sent+1 {
			t.Errorf("%d adverts at once after Resume, want 1 (the one due)", n-sent)
		}
		if st := tr.Status(); st.State != StateMaster || st.Transitions != before.Transitions {
			t.Errorf("after Resume: %v with %d transitions, want MASTER with %d", st.State, st.Transitions, before.Transitions)
		}
		if calls := tr.fx.take(); len(calls) > 0 {
			t.Errorf("effects on Resume: %v", calls)
		}
		if err := tr.Resume(); !errors.Is(err, ErrNotFrozen) {
			t.Errorf("second Resume: %v, want ErrNotFrozen", err)
		}
	})
}

// A MASTER handed to a new runner (the new process) on the same socket:
// the new one sends its first advert at once and then every interval,
// with no transition and no effect but Resumed and Listen (on the listeners
// handed over); status carries on; the old
// one returns ErrHandedOver having taken no action.
func TestRunnerHandOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		toMaster(t, tr)
		time.Sleep(300 * time.Millisecond) // between two adverts
		tr.fx.take()
		snap, err := tr.Freeze(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(snap)
		var got Snapshot
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		fx2 := &fakeEffects{}
		r2, err := ResumeRunner(runnerConfig(100), dup(tr.conn), fx2, got)
		if err != nil {
			t.Fatal(err)
		}
		sent := len(tr.conn.sent(t))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- r2.Run(ctx) }()
		synctest.Wait()
		if err := tr.Abandon(); err != nil {
			t.Fatal(err)
		}
		mustReturn(t, tr, ErrHandedOver)
		if calls := tr.fx.take(); len(calls) > 0 {
			t.Errorf("old runner's effects on the way out: %v", calls)
		}
		if calls := fx2.take(); !slices.Equal(calls, []string{"resumed MASTER", "listen"}) {
			t.Errorf("new runner's effects at start: %v, want resumed MASTER, listen", calls)
		}
		// The first advert goes out at once (no later than the handover
		// took), the next one interval on.
		if n := len(tr.conn.sent(t)); n != sent+1 {
			t.Fatalf("%d adverts when the new runner started, want 1", n-sent)
		}
		time.Sleep(time.Second - time.Millisecond)
		synctest.Wait()
		if n := len(tr.conn.sent(t)); n != sent+1 {
			t.Fatalf("%d adverts within the interval, want only the first", n-sent)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := len(tr.conn.sent(t)); n != sent+2 {
			t.Fatalf("%d adverts one interval on, want 2", n-sent)
		}
		st := r2.Status()
		if st.State != StateMaster || st.Transitions != snap.Transitions || st.AdvertsSent != snap.AdvertsSent+2 {
			t.Errorf("new runner: %v, %d transitions, %d sent; want MASTER, %d, %d", st.State, st.Transitions, st.AdvertsSent, snap.Transitions, snap.AdvertsSent+2)
		}
		if calls := fx2.take(); len(calls) > 0 {
			t.Errorf("new runner's effects: %v", calls)
		}
	})
}

// A frozen runner reads nothing: an advert arriving meanwhile stays on
// the socket for whoever reads next (the new process, or this one after
// Resume).
func TestRunnerFrozenLeavesPacketsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		if _, err := tr.Freeze(context.Background()); err != nil {
			t.Fatal(err)
		}
		tr.inject(t, Advertisement{Priority: 150}, peerAddr, 255)
		if n := len(tr.conn.in); n != 1 {
			t.Fatalf("%d packets queued while frozen, want 1", n)
		}
		if err := tr.Resume(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st := tr.Status(); st.MasterAddr != peerAddr || st.State != StateBackup {
			t.Errorf("after Resume: %v following %v, want BACKUP following %v", st.State, st.MasterAddr, peerAddr)
		}
	})
}

// No freeze in the middle of a handover, nor once stopped; the runner
// carries on as if nothing was asked.
func TestRunnerFreezeRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		toMaster(t, tr)
		if err := tr.Leave(context.Background(), time.Second, false); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Freeze(context.Background()); !errors.Is(err, ErrNoSnapshot) {
			t.Errorf("Freeze while leaving: %v, want ErrNoSnapshot", err)
		}
		time.Sleep(tr.Status().DownInterval)
		synctest.Wait()
		tr.mustState(t, StateMaster) // nobody took over: the drill resumed
		tr.Stop()
		time.Sleep(4 * time.Second)
		mustReturn(t, tr, nil)
		if _, err := tr.Freeze(context.Background()); !errors.Is(err, ErrStopped) {
			t.Errorf("Freeze after stop: %v, want ErrStopped", err)
		}
	})
}

// An instance the new config no longer has is taken up and stopped at
// once: it leaves the planned way (priority 0, then the VIP goes), never
// by dropping the VIP unannounced.
func TestRunnerResumedThenStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		toMaster(t, tr)
		snap, err := tr.Freeze(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		fx2 := &fakeEffects{}
		r2, err := ResumeRunner(runnerConfig(100), dup(tr.conn), fx2, snap)
		if err != nil {
			t.Fatal(err)
		}
		tr.Abandon()
		sent := len(tr.conn.sent(t))
		r2.Stop()
		done := make(chan error, 1)
		go func() { done <- r2.Run(context.Background()) }()
		synctest.Wait()
		adv := tr.conn.sent(t)[sent:]
		if len(adv) != 2 || adv[0].Priority != 100 || adv[1].Priority != 0 {
			t.Fatalf("sent %+v, want the takeover's advert, then priority 0", adv)
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		want := []string{"resumed MASTER", "listen", "MASTER->INIT 100", "stopannounce", "removevip", "unlisten", "closeconns"}
		if calls := fx2.take(); !slices.Equal(calls, want) {
			t.Errorf("effects: %v, want %v", calls, want)
		}
	})
}

// A BACKUP frozen past its Master_Down_Timer, resumed, reads the advert
// that waited on the socket before its timer can fire: it never takes
// over from a master that kept advertising.
func TestRunnerResumedBackupReadsQueuedFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		tr.inject(t, Advertisement{Priority: 150}, peerAddr, 255)
		if _, err := tr.Freeze(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		tr.inject(t, Advertisement{Priority: 150}, peerAddr, 255)
		if err := tr.Resume(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		tr.mustState(t, StateBackup)
		if n := tr.Status().Transitions; n != 1 {
			t.Errorf("%d transitions, want 1 (INIT to BACKUP)", n)
		}
	})
}

// A Freeze given up (its context ended) while the MASTER waits for its
// advert leaves the runner running: it freezes, and resumes at once.
func TestRunnerFreezeCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := startRunner(t, runnerConfig(100))
		toMaster(t, tr)
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := tr.Freeze(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Freeze: %v, want the deadline", err)
		}
		sent := len(tr.conn.sent(t))
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := len(tr.conn.sent(t)) - sent; n < 3 {
			t.Errorf("%d adverts in 3 s after a cancelled freeze, want 3", n)
		}
		if err := tr.Resume(); !errors.Is(err, ErrNotFrozen) {
			t.Errorf("Resume: %v, want ErrNotFrozen", err)
		}
	})
}
