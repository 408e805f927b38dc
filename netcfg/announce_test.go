package netcfg

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/packet"
)

// fakeConn records what an Announcer writes.
type fakeConn struct {
	net.PacketConn // nil: only WriteTo and Close are used
	frames         [][]byte
	addrs          []net.Addr
	err            error
	closed         bool
}

func (c *fakeConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.frames = append(c.frames, append([]byte(nil), b...))
	c.addrs = append(c.addrs, addr)
	return len(b), nil
}

func (c *fakeConn) Close() error {
	c.closed = true
	return nil
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAnnounceFrames checks the frames against keepalived 2.2.7's gratuitous
// ARP (vrrp/testdata/README.md, keepalived-vrrp3-adv1.pcap frame 5): the
// request must be byte for byte the same, the reply differs only in opcode.
func TestAnnounceFrames(t *testing.T) {
	mac := net.HardwareAddr{0xea, 0x37, 0x8a, 0x0f, 0x24, 0x38}
	fc := &fakeConn{}
	a, err := NewAnnouncerConn(&net.Interface{Index: 7, Name: "eth0", HardwareAddr: mac}, fc)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Announce(netip.MustParseAddr("10.77.0.10")); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{
		mustHex(t, "ffffffffffff ea378a0f2438 0806 0001 0800 06 04 0001 ea378a0f2438 0a4d000a ffffffffffff 0a4d000a"),
		mustHex(t, "ffffffffffff ea378a0f2438 0806 0001 0800 06 04 0002 ea378a0f2438 0a4d000a ffffffffffff 0a4d000a"),
	}
	if diff := cmp.Diff(want, fc.frames); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	for i, addr := range fc.addrs {
		pa, ok := addr.(*packet.Addr)
		if !ok || pa.HardwareAddr.String() != "ff:ff:ff:ff:ff:ff" {
			t.Errorf("frame %d sent to %v, want *packet.Addr ff:ff:ff:ff:ff:ff", i, addr)
		}
	}
	if err := a.Close(); err != nil || !fc.closed {
		t.Errorf("Close() = %v, conn closed %v", err, fc.closed)
	}
}

func TestAnnounceErrors(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	ifi := &net.Interface{Name: "eth0", HardwareAddr: mac}
	if _, err := NewAnnouncerConn(&net.Interface{Name: "tun0"}, &fakeConn{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewAnnouncerConn without MAC: %v, want ErrInvalidConfig", err)
	}
	a, _ := NewAnnouncerConn(ifi, &fakeConn{})
	if err := a.Announce(netip.MustParseAddr("2001:db8::1")); !errors.Is(err, ErrNotIPv4) {
		t.Errorf("Announce(IPv6) = %v, want ErrNotIPv4", err)
	}
	a, _ = NewAnnouncerConn(ifi, &fakeConn{err: os.ErrPermission})
	err := a.Announce(netip.MustParseAddr("10.0.0.1"))
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "netcfg: announce 10.0.0.1 on eth0") {
		t.Errorf("Announce with failing conn = %v, want wrapped ErrPermission naming op and interface", err)
	}
}

// countingAnnouncer records Announce calls and can fail or cancel.
type countingAnnouncer struct {
	calls    []netip.Addr
	failAt   int // 1-based call that fails; 0 never
	onCall   func(n int)
	closeErr error
}

func (a *countingAnnouncer) Announce(vip netip.Addr) error {
	a.calls = append(a.calls, vip)
	if a.onCall != nil {
		a.onCall(len(a.calls))
	}
	if a.failAt == len(a.calls) {
		return errors.New("boom")
	}
	return nil
}

func (a *countingAnnouncer) Close() error { return a.closeErr }

func TestBurst(t *testing.T) {
	v1, v2 := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")
	t.Run("all rounds", func(t *testing.T) {
		a := &countingAnnouncer{}
		if err := Burst(context.Background(), a, []netip.Addr{v1, v2}, 3, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		want := []netip.Addr{v1, v2, v1, v2, v1, v2}
		if diff := cmp.Diff(want, a.calls, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})
	t.Run("a failed round does not end the burst", func(t *testing.T) {
		// The link may be coming back: the later rounds must still go out.
		a := &countingAnnouncer{failAt: 1}
		err := Burst(context.Background(), a, []netip.Addr{v1, v2}, 5, time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "round 1") || len(a.calls) != 9 {
			t.Errorf("Burst = %v after %d calls, want the round-1 error and 9 calls (1 failed + 4 full rounds)", err, len(a.calls))
		}
	})
	t.Run("cancel stops during gap", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a := &countingAnnouncer{onCall: func(int) { cancel() }}
		start := time.Now()
		// An hour-long gap: returning at all proves the cancel was seen.
		err := Burst(ctx, a, []netip.Addr{v1}, 5, time.Hour)
		if !errors.Is(err, context.Canceled) || len(a.calls) != 1 {
			t.Errorf("Burst = %v after %d calls, want context.Canceled after 1", err, len(a.calls))
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Burst took %v after cancel", d)
		}
	})
	t.Run("zero count", func(t *testing.T) {
		a := &countingAnnouncer{}
		if err := Burst(context.Background(), a, []netip.Addr{v1}, 0, time.Hour); err != nil || len(a.calls) != 0 {
			t.Errorf("Burst(count 0) = %v, %d calls", err, len(a.calls))
		}
	})
}
