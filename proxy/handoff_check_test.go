//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Adopt refuses a malformed Handoff whole, and closes the files it got
// either way.
func TestAdoptRefusesMalformed(t *testing.T) {
	ok := HandoffConn{State: ConnEstablished, Frontend: "fe", Backend: "be", Server: "s", ClientFD: 0, ServerFD: 1}
	for _, tc := range []struct {
		name string
		h    Handoff
		want string
	}{
		{"listener fd out of range", Handoff{Listeners: []HandoffListener{{Frontend: "fe", FD: 2}}}, "out of range"},
		{"negative fd", Handoff{Listeners: []HandoffListener{{Frontend: "fe", FD: -1}}}, "out of range"},
		{"server fd out of range", Handoff{Conns: []HandoffConn{func() HandoffConn { c := ok; c.ServerFD = 5; return c }()}}, "out of range"},
		{"unknown state", Handoff{Conns: []HandoffConn{func() HandoffConn { c := ok; c.State = "half"; return c }()}}, "unknown state"},
		{"established without a server", Handoff{Conns: []HandoffConn{func() HandoffConn { c := ok; c.Server = ""; return c }()}}, "without a server"},
		{"waiting with a server fd", Handoff{Conns: []HandoffConn{func() HandoffConn { c := ok; c.State = ConnWaiting; return c }()}}, "waiting with a server fd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(oneBackend("", ServerConfig{Name: "s", Addr: netip.MustParseAddrPort("127.0.0.1:1")}), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer p.closeLoops()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			err = p.Adopt(&tc.h, []*os.File{r, w})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Adopt: %v, want %q", err, tc.want)
			}
			if _, err := r.Stat(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("file left open: %v", err)
			}
			if st := p.Status(); st.ActiveConns != 0 {
				t.Errorf("adopted %d connections", st.ActiveConns)
			}
		})
	}
}

// Adopted connections do not move before Run (a rollback after Adopt
// must find every byte where the old process left it): they join their
// loops on its first turn.
func TestAdoptWaitsForRun(t *testing.T) {
	srv := newTestServer(t, "s1", nil)
	cfg := hoConfig(t, srv.config())
	old, _ := hoOld(t, cfg)
	c := dial(t, feAddr(cfg))
	c.greeting(t)
	h, files := freeze(t, old)
	np := adoptOnly(t, cfg, h, files)
	registered := 0
	for _, l := range np.loops {
		l.do(func(l *loop) { registered += l.nfds })
	}
	if registered != 0 {
		t.Fatalf("%d sockets registered before Run", registered)
	}
	if st := np.Status(); st.ActiveConns != 1 {
		t.Errorf("status before Run: %d active, want 1", st.ActiveConns)
	}
	runAndAbandon(t, np, old)
	c.echo(t, "after Run")
}

// A second Freeze while one is under way is refused; Resume and Abandon
// without one do nothing.
func TestFreezeTwice(t *testing.T) {
	srv := newTestServer(t, "s1", nil)
	cfg := hoConfig(t, srv.config())
	old, _ := hoOld(t, cfg)
	if err := old.Resume(); !errors.Is(err, ErrNotFrozen) {
		t.Errorf("Resume before Freeze: %v", err)
	}
	old.Abandon() // nothing
	_, files := freeze(t, old)
	closeFiles(files)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := old.Freeze(ctx); !errors.Is(err, ErrFrozen) {
		t.Errorf("second Freeze: %v, want ErrFrozen", err)
	}
	if err := old.Resume(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, feAddr(cfg))
	if got := c.greeting(t); got != "s1" {
		t.Errorf("greeting %q after Resume", got)
	}
}

// An adopted listener no frontend of the new config binds is closed by
// CloseAdopted: its address refuses connections once the old process let
// go.
func TestCloseAdoptedUnmatched(t *testing.T) {
	srv := newTestServer(t, "s1", nil)
	cfg := hoConfig(t, srv.config())
	old, _ := hoOld(t, cfg)
	h, files := freeze(t, old)
	ncfg := hoConfig(t, srv.config()) // another port
	np, err := New(ncfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer np.closeLoops()
	if err := np.Adopt(h, files); err != nil {
		t.Fatal(err)
	}
	if err := np.Listen(); err != nil {
		t.Fatal(err)
	}
	defer np.Unlisten()
	if n := np.CloseAdopted(); n != 1 {
		t.Errorf("CloseAdopted closed %d, want 1", n)
	}
	if n := np.CloseAdopted(); n != 0 {
		t.Errorf("second CloseAdopted closed %d, want 0", n)
	}
	old.Abandon()
	if c, err := net.DialTimeout("tcp4", feAddr(cfg), time.Second); err == nil {
		c.Close()
		t.Error("the old address still accepts")
	}
}

// A reload may run while a freeze is under way (Update blocks only once
// it needs a loop). The loops' export names each connection's tried
// servers without reading the backend's server list, which Update
// rewrites under p.mu (the race detector caught the read).
func TestUpdateDuringFreeze(t *testing.T) {
	s1 := newTestServer(t, "s1", nil)
	s2 := newTestServer(t, "s2", nil)
	cfg := hoConfig(t, s1.config())
	cfg2 := cfg
	cfg2.Backends = []BackendConfig{{Name: "be", Servers: []ServerConfig{s1.config(), s2.config()}}}
	old, _ := hoOld(t, cfg)
	for range 4 {
		dial(t, feAddr(cfg)).greeting(t)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := cfg
			if i%2 == 0 {
				c = cfg2
			}
			if err := old.Update(c); err != nil {
				t.Errorf("Update: %v", err)
				return
			}
		}
	}()
	h, _ := freeze(t, old)
	close(stop)
	if err := old.Resume(); err != nil {
		t.Fatal(err)
	}
	<-done
	if len(h.Conns) != 4 {
		t.Fatalf("%d connections exported, want 4", len(h.Conns))
	}
	for _, hc := range h.Conns {
		if !slices.Equal(hc.Tried, []string{"s1"}) {
			t.Errorf("connection tried %q, want [s1]", hc.Tried)
		}
	}
}

// A connection's Tried names a server that an Update added after Freeze
// read the servers' names, when the connection tried it before its loop
// parked: export finds it in the backend's snapshot. Here export runs with
// no names at all, as if every server had come after Freeze looked; the
// refused server is then named only through the snapshot.
func TestExportNamesServersAddedAfterSnapshot(t *testing.T) {
	dead := ServerConfig{Name: "dead", Addr: deadPort(t)}
	s1 := newTestServer(t, "s1", nil)
	cfg := hoConfig(t, dead, s1.config())
	cfg.Backends[0].Balance = BalanceRoundRobin
	old, _ := hoOld(t, cfg)
	for range 4 {
		dial(t, feAddr(cfg)).greeting(t)
	}
	var tried [][]string
	for _, l := range old.loops {
		l.do(func(l *loop) {
			for _, e := range l.export(nil) {
				tried = append(tried, e.h.Tried)
			}
		})
	}
	if len(tried) != 4 {
		t.Fatalf("%d connections exported, want 4", len(tried))
	}
	both := 0
	for _, tr := range tried {
		switch {
		case slices.Equal(tr, []string{"dead", "s1"}):
			both++
		case !slices.Equal(tr, []string{"s1"}):
			t.Errorf("connection tried %q, want [dead s1] or [s1]", tr)
		}
	}
	if both == 0 {
		t.Errorf("no connection names the refused server: tried %q", tried)
	}
}

// A command given between Adopt and Run that closes connections (a server
// put in maintenance, a drain carried over with no time left, the
// frontend's connections closed) closes the adopted ones too, although
// they join their loops only on Run's first turn. It ran at once and found
// none; the drain's one timer had fired, so nothing closed them later.
func TestCommandBeforeRunSeesAdopted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cmd    func(*Proxy) error
		keepS2 bool // s2's connections stay open
	}{
		{"maintenance", func(p *Proxy) error { return p.SetAdmin("be", "s1", AdminMaint) }, true},
		{"drain with no time left", func(p *Proxy) error { return p.SetDrainLeft("be", "s1", 0) }, true},
		{"close the frontend's connections", func(p *Proxy) error { p.CloseConns("fe"); return nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1 := newTestServer(t, "s1", nil)
			s2 := newTestServer(t, "s2", nil)
			cfg := hoConfig(t, s1.config(), s2.config())
			old, _ := hoOld(t, cfg)
			var on1, on2 []*client
			for len(on1) == 0 || len(on2) == 0 {
				c := dial(t, feAddr(cfg))
				if c.greeting(t) == "s1" {
					on1 = append(on1, c)
				} else {
					on2 = append(on2, c)
				}
				if len(on1)+len(on2) > 50 {
					t.Fatal("50 connections, not one to each server")
				}
			}
			h, files := freeze(t, old)
			np := adoptOnly(t, cfg, h, files)
			if err := tc.cmd(np); err != nil {
				t.Fatal(err)
			}
			closed, kept := on1, on2
			if !tc.keepS2 {
				closed, kept = append(on1, on2...), nil
			}
			// A drain's end is a timer, even with no time left: poll.
			want := int64(len(kept))
			waitFor(t, fmt.Sprintf("%d active before Run", want), func() bool { return np.Status().ActiveConns == want })
			runAndAbandon(t, np, old)
			for _, c := range closed {
				c.closedWithin(t, 5*time.Second)
			}
			for _, c := range kept {
				c.echo(t, "s2 still served")
			}
			if st := np.Status(); st.ActiveConns != want {
				t.Errorf("after Run: %d active, want %d", st.ActiveConns, want)
			}
		})
	}
}

// TestAdoptWhileRunningSeenByNextCommand: connections adopted while the
// loops run are in the loop's connections for the next command in its
// inbox (a freeze's export, a drain): they joined only after the whole
// batch, so a freeze that came in the same batch as the adoption left
// them out of the next handoff while they still counted as active.
func TestAdoptWhileRunningSeenByNextCommand(t *testing.T) {
	s1 := newTestServer(t, "s1", nil)
	cfg := hoConfig(t, s1.config())
	old, _ := hoOld(t, cfg)
	var clients []*client
	for range 4 {
		c := dial(t, feAddr(cfg))
		if g := c.greeting(t); g != "s1" {
			t.Fatalf("greeting %q", g)
		}
		clients = append(clients, c)
	}
	h, files := freeze(t, old)
	np := startProxy(t, cfg, zerolog.Nop())

	// Hold every loop inside one command, so the adoption and the probe
	// after it arrive in the same batch.
	gate := make(chan struct{})
	entered := make(chan struct{}, len(np.loops))
	for _, l := range np.loops {
		l.queue(func(*loop) { entered <- struct{}{}; <-gate })
	}
	for range np.loops {
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			close(gate)
			t.Fatal("a loop did not run its command")
		}
	}
	if err := np.Adopt(h, files); err != nil {
		close(gate)
		t.Fatalf("Adopt: %v", err)
	}
	seen := make(chan int, len(np.loops))
	for _, l := range np.loops {
		l.queue(func(l *loop) { seen <- len(l.clients()) })
	}
	close(gate)
	total := 0
	for range np.loops {
		select {
		case n := <-seen:
			total += n
		case <-time.After(5 * time.Second):
			t.Fatal("a loop did not run the probe")
		}
	}
	if total != len(h.Conns) {
		t.Errorf("the command after the adoption saw %d connections, want %d", total, len(h.Conns))
	}
	old.Abandon()
	for i, c := range clients {
		c.echo(t, fmt.Sprintf("client %d after the adoption", i))
	}
}
