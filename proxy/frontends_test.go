//go:build linux

package proxy

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Each VRRP instance listens, unlistens and closes the connections of its
// own frontends only; the other instance's stay as they are.
func TestListenPerFrontend(t *testing.T) {
	a := newTestServer(t, "a", nil)
	bind1 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))
	bind2 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))
	cfg := Config{
		Frontends: []FrontendConfig{
			{Name: "f1", Binds: []netip.AddrPort{bind1}, Backend: "b"},
			{Name: "f2", Binds: []netip.AddrPort{bind2}, Backend: "b"},
		},
		Backends: []BackendConfig{{Name: "b", Servers: []ServerConfig{a.config()}}},
	}
	p := startProxy(t, cfg, zerolog.Nop())
	if err := p.Listen("f1"); err != nil {
		t.Fatal(err)
	}
	if !listening(p, "f1") || listening(p, "f2") || listening(p) {
		t.Fatalf("listening: f1 %v f2 %v all %v; want only f1", listening(p, "f1"), listening(p, "f2"), listening(p))
	}
	if c, err := net.DialTimeout("tcp", bind2.String(), time.Second); err == nil {
		c.Close()
		t.Fatal("f2 accepts before Listen named it")
	}
	c1 := dial(t, bind1.String())
	c1.greeting(t)
	if err := p.Listen("f2"); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, bind2.String())
	c2.greeting(t)

	p.CloseConns("f1")
	c1.closedWithin(t, time.Second)
	c2.echo(t, "f2's connection stays when f1's are closed")

	p.Unlisten("f2")
	if c, err := net.DialTimeout("tcp", bind2.String(), time.Second); err == nil {
		c.Close()
		t.Error("f2 still accepts after Unlisten(f2)")
	}
	c3 := dial(t, bind1.String())
	c3.greeting(t)
	c2.echo(t, "established connections stay when the frontend stops listening")
}

// CheckBinds finds the co-location trap without binding anything: a
// wildcard listener on the port, or a listener on the exact address.
func TestCheckBinds(t *testing.T) {
	exact, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer exact.Close()
	exactAP := netip.MustParseAddrPort(exact.Addr().String())
	wild, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	wildPort := netip.MustParseAddrPort(wild.Addr().String()).Port()
	free := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))

	for _, tt := range []struct {
		name     string
		bind     netip.AddrPort
		wantErr  bool
		wildcard bool
	}{
		{"free", free, false, false},
		{"exact address in use", exactAP, true, false},
		{"wildcard on the port", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), wildPort), true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, Config{
				Frontends: []FrontendConfig{{Name: "fe", Binds: []netip.AddrPort{tt.bind}, Backend: "b"}},
				Backends:  []BackendConfig{{Name: "b"}},
			}, zerolog.Nop())
			err := p.CheckBinds()
			var be *BindError
			switch {
			case !tt.wantErr && err != nil:
				t.Fatalf("CheckBinds: %v", err)
			case tt.wantErr && !errors.As(err, &be):
				t.Fatalf("CheckBinds = %v, want a *BindError", err)
			case tt.wantErr && be.Wildcard != tt.wildcard:
				t.Errorf("Wildcard = %v, want %v (%v)", be.Wildcard, tt.wildcard, err)
			}
			if listening(p) {
				t.Error("CheckBinds left something listening")
			}
		})
	}
}
