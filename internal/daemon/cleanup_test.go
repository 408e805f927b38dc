package daemon

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// cleanupOS is lb1's host after its vipd died: its interface (addrs) and
// the segment (the bus), nothing else.
func cleanupOS(b *bus, addrs *fakeAddrs) OS {
	return OS{
		Addrs:      addrs,
		ListenVRRP: func(cfg netcfg.VRRPConfig) (vrrp.Conn, error) { return b.listen(cfg.Source), nil },
		LocalAddrs: func() ([]netip.Addr, error) { return nil, nil },
		LinkLocal:  func(string) (netip.Addr, error) { return netip.Addr{}, errors.New("no IPv6 here") },
		SetSysctl:  func(string, string) error { return nil },
	}
}

func noVipd(context.Context, string) (control.Status, error) {
	return control.Status{}, errors.New("dial unix: connection refused")
}

// A crashed master's VIP stays on its interface. Cleanup sends the
// priority-0 advert it could not send, so the backup takes over after
// Skew_Time instead of Master_Down_Interval, and removes the VIP only
// once it hears the new master: make before break.
func TestCleanupHandsOverThenRemoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		cfg := baseConfig("")
		n1 := startNode(t, b, "lb1", cfg)
		settle(time.Second)
		n2 := startNode(t, b, "lb2", cfg)
		settle(time.Second)
		n1.mustState("MASTER")
		n2.mustState("BACKUP")
		// lb1's process dies; its kernel keeps the VIP.
		n1.cancel()
		synctest.Wait()
		dead := newFakeAddrs(netip.MustParsePrefix(vip))
		var out bytes.Buffer
		start := time.Now()
		removedAt := make(chan time.Duration, 1)
		go func() {
			err := Cleanup(context.Background(), CleanupOptions{ConfigPath: n1.path, NodeName: "lb1", OS: cleanupOS(b, dead), Out: &out, status: noVipd})
			if err != nil {
				t.Errorf("cleanup: %v", err)
			}
			removedAt <- time.Since(start)
		}()
		synctest.Wait()
		if !dead.has(vip) {
			t.Fatalf("the VIP was removed before another router took over")
		}
		took := <-removedAt
		n2.mustState("MASTER")
		if dead.has(vip) {
			t.Errorf("cleanup left the VIP")
		}
		skew := vrrp.SkewTime(3, 100, 100*time.Millisecond)
		if took != skew {
			t.Errorf("removed after %v, want when lb2 took over: Skew_Time %v", took, skew)
		}
		if r := n2.d.Status().Instances[0].LastReason; !strings.Contains(r, "priority 0") {
			t.Errorf("lb2 took over because %q, want the priority-0 advert", r)
		}
		for _, want := range []string{"vrid-51: 10.99.0.12 is master", "vrid-51: removed " + vip + " from eth0"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})
}

// A live vipd answers on the control socket: cleanup touches nothing. No
// VIP on the interface: nothing to do. Nobody takes over: the VIP goes
// anyway after the slowest backup's Master_Down_Interval.
func TestCleanupLeavesAliveAndAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		path := writeFile(t, baseConfig(""))
		addrs := newFakeAddrs(netip.MustParsePrefix(vip))
		var out bytes.Buffer
		alive := func(context.Context, string) (control.Status, error) { return control.Status{Node: "lb1"}, nil }
		if err := Cleanup(context.Background(), CleanupOptions{ConfigPath: path, NodeName: "lb1", OS: cleanupOS(b, addrs), Out: &out, status: alive}); err != nil {
			t.Fatal(err)
		}
		if !addrs.has(vip) || !strings.Contains(out.String(), "a live vipd (node lb1) answers") {
			t.Errorf("with a live vipd: VIP kept %v, output %q", addrs.has(vip), out.String())
		}

		out.Reset()
		empty := newFakeAddrs()
		if err := Cleanup(context.Background(), CleanupOptions{ConfigPath: path, NodeName: "lb1", OS: cleanupOS(b, empty), Out: &out, status: noVipd}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "no VIP of this node on eth0: nothing to do") {
			t.Errorf("output %q", out.String())
		}

		out.Reset()
		start := time.Now()
		if err := Cleanup(context.Background(), CleanupOptions{ConfigPath: path, NodeName: "lb1", OS: cleanupOS(b, addrs), Out: &out, status: noVipd}); err != nil {
			t.Fatal(err)
		}
		if took, want := time.Since(start), vrrp.DownInterval(3, 1, 100*time.Millisecond)+100*time.Millisecond; took != want || addrs.has(vip) {
			t.Errorf("alone: removed=%v after %v, want after %v\n%s", !addrs.has(vip), took, want, out.String())
		}
	})
}
