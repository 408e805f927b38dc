//go:build linux

package netcfg

// The VIP and link watchers against real netlink events in a namespace.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestWatchVIPs(t *testing.T) {
	l := newLab(t)
	runHelper(t, l.nsA, "WatchVIPs", l.env())
}

func TestWatchLink(t *testing.T) {
	l := newLab(t)
	runHelper(t, l.nsA, "WatchLink", l.env())
}

func TestHelperWatchVIPs(t *testing.T) {
	isHelper(t)
	ifname := env(t, "NC_IF_A")
	v1 := netip.PrefixFrom(labAddr(t, 100), 32)
	v2 := netip.PrefixFrom(labAddr(t, 101), 32)
	other := netip.PrefixFrom(labAddr(t, 150), 32)
	a, err := NewAddresses()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, p := range []netip.Prefix{v1, v2, other} {
		if err := a.AddVIP(ifname, p); err != nil {
			t.Fatal(err)
		}
	}
	// Removed before the watch starts: reported once it is subscribed.
	if out, err := runIP("addr", "del", v1.String(), "dev", ifname); err != nil {
		t.Fatalf("ip addr del: %v %s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	removed := make(chan netip.Prefix, 16)
	ret := make(chan error, 1)
	go func() {
		ret <- WatchVIPs(ctx, ifname, []netip.Prefix{v1, v2}, func(p netip.Prefix) {
			select {
			case removed <- p:
			default:
			}
		})
	}()
	if got := await(t, removed, 5*time.Second, "initial report"); got != v1 {
		t.Fatalf("first report %s, want %s (missing at start)", got, v1)
	}
	// Subscribed now. An address not watched is not reported; v2 is.
	for _, p := range []netip.Prefix{other, v2} {
		if out, err := runIP("addr", "del", p.String(), "dev", ifname); err != nil {
			t.Fatalf("ip addr del: %v %s", err, out)
		}
	}
	if got := await(t, removed, 5*time.Second, "report after ip addr del"); got != v2 {
		t.Fatalf("report %s, want %s", got, v2)
	}
	cancel()
	if err := await(t, ret, 5*time.Second, "WatchVIPs return after cancel"); err != nil {
		t.Errorf("WatchVIPs = %v, want nil after cancel", err)
	}
	if err := WatchVIPs(context.Background(), "ncnosuchif0", []netip.Prefix{v1}, func(netip.Prefix) {}); !errors.Is(err, ErrNoInterface) {
		t.Errorf("WatchVIPs(missing) = %v, want ErrNoInterface", err)
	}
}

func TestHelperWatchLink(t *testing.T) {
	isHelper(t)
	ifname, nsBr, port := env(t, "NC_IF_A"), env(t, "NC_NS_BR"), env(t, "NC_PORT_A")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan bool, 16)
	ret := make(chan error, 1)
	go func() {
		ret <- WatchLink(ctx, ifname, func(up bool) { changes <- up })
	}()
	if !await(t, changes, 5*time.Second, "initial state") {
		t.Fatal("initial state down, want up")
	}
	steps := []struct {
		args []string
		want bool
	}{
		{[]string{"link", "set", ifname, "down"}, false},
		{[]string{"link", "set", ifname, "up"}, true},
		// The peer going down takes the carrier: up but not running.
		{[]string{"-n", nsBr, "link", "set", port, "down"}, false},
		{[]string{"-n", nsBr, "link", "set", port, "up"}, true},
	}
	for _, s := range steps {
		if out, err := runIP(s.args...); err != nil {
			t.Fatalf("ip %v: %v %s", s.args, err, out)
		}
		if got := await(t, changes, 5*time.Second, fmt.Sprintf("change after ip %v", s.args)); got != s.want {
			t.Fatalf("after ip %v: up=%v, want %v", s.args, got, s.want)
		}
	}
	cancel()
	if err := await(t, ret, 5*time.Second, "WatchLink return"); err != nil {
		t.Errorf("WatchLink = %v", err)
	}

	// An interface that does not exist yet is down, and is picked up when
	// it appears; deleting it is down again. Steps that leave the state
	// unchanged must not report anything: the next report is checked.
	dummy := ifname + "d"
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	changes2 := make(chan bool, 16)
	go func() { ret <- WatchLink(ctx2, dummy, func(up bool) { changes2 <- up }) }()
	if await(t, changes2, 5*time.Second, "initial state of missing link") {
		t.Fatal("missing link reported up")
	}
	for _, args := range [][]string{
		{"link", "add", dummy, "type", "veth", "peer", "name", dummy + "p"}, // exists, down: no report
		{"link", "set", dummy + "p", "up"},                                  // still down: no report
		{"link", "set", dummy, "up"},
	} {
		if out, err := runIP(args...); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	if !await(t, changes2, 5*time.Second, "report after the new link came up") {
		t.Fatal("new link reported down, want the next report to be up")
	}
	if out, err := runIP("link", "del", dummy); err != nil {
		t.Fatalf("ip link del: %v %s", err, out)
	}
	if await(t, changes2, 5*time.Second, "report after link del") {
		t.Fatal("deleted link reported up")
	}
	cancel2()
	if err := await(t, ret, 5*time.Second, "WatchLink return"); err != nil {
		t.Errorf("WatchLink = %v", err)
	}
}
