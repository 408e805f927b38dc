package netcfg

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// probeConn is a segment seen from the prober: it records what is written
// and answers each probe for an address in holders with an ARP reply, the
// way a Linux host answers a probe (RFC 5227 section 2.1.1).
type probeConn struct {
	net.PacketConn
	mu       sync.Mutex
	written  [][]byte
	holders  map[netip.Addr]net.HardwareAddr
	extra    [][]byte // delivered to the reader once, before any answer
	in       chan []byte
	deadline chan struct{}
	once     sync.Once
}

func newProbeConn(holders map[netip.Addr]net.HardwareAddr, extra ...[]byte) *probeConn {
	c := &probeConn{holders: holders, in: make(chan []byte, 64), deadline: make(chan struct{})}
	for _, e := range extra {
		c.in <- e
	}
	return c
}

func (c *probeConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.written = append(c.written, append([]byte(nil), b...))
	c.mu.Unlock()
	var f ethernet.Frame
	var p arp.Packet
	if f.UnmarshalBinary(b) != nil || p.UnmarshalBinary(f.Payload) != nil {
		return len(b), nil
	}
	if mac, ok := c.holders[p.TargetIP]; ok {
		r, _ := arp.NewPacket(arp.OperationReply, mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
		rb, _ := r.MarshalBinary()
		fb, _ := (&ethernet.Frame{Destination: p.SenderHardwareAddr, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: rb}).MarshalBinary()
		c.in <- fb
	}
	return len(b), nil
}

func (c *probeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-c.in:
		return copy(b, f), nil, nil
	case <-c.deadline:
		return 0, nil, context.DeadlineExceeded
	}
}

func (c *probeConn) SetReadDeadline(time.Time) error {
	c.once.Do(func() { close(c.deadline) })
	return nil
}

// Only probes go out: every frame is an ARP request with sender IP
// 0.0.0.0 and a zero target MAC, broadcast from our MAC (RFC 5227 section
// 2.1.1), Rounds times per target; an answer from another MAC is a claim,
// our own frames (a GARP of the running vipd on this host) are not.
// Reference: RFC 5227 section 2.1.1
func TestProbeARP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		own := net.HardwareAddr{2, 0, 0, 0, 0, 1}
		holder := net.HardwareAddr{2, 0, 0, 0, 0, 2}
		vip, free := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
		ownGARP, err := garpFrames(own, vip)
		if err != nil {
			t.Fatal(err)
		}
		pc := newProbeConn(map[netip.Addr]net.HardwareAddr{vip: holder}, ownGARP[0])
		ifi := &net.Interface{Name: "eth0", HardwareAddr: own}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		got, err := probeARP(ctx, ifi, pc, ProbeConfig{Targets: []netip.Addr{vip, free}, Rounds: 3, Gap: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("returned after %v, want when the context ended (5s)", d)
		}
		want := []Claim{{Addr: vip, MAC: holder, From: vip}}
		if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("claims (-want +got):\n%s", diff)
		}
		if len(pc.written) != 6 {
			t.Fatalf("%d frames sent, want 3 rounds x 2 targets", len(pc.written))
		}
		for i, b := range pc.written {
			var f ethernet.Frame
			var p arp.Packet
			if err := f.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if err := p.UnmarshalBinary(f.Payload); err != nil {
				t.Fatal(err)
			}
			wantTarget := []netip.Addr{vip, free}[i%2]
			if p.Operation != arp.OperationRequest || p.SenderIP != netip.IPv4Unspecified() || p.TargetIP != wantTarget ||
				p.TargetHardwareAddr.String() != "00:00:00:00:00:00" || p.SenderHardwareAddr.String() != own.String() ||
				f.Destination.String() != "ff:ff:ff:ff:ff:ff" {
				t.Errorf("frame %d: %v sender %s/%s target %s/%s to %s; want a probe for %s", i, p.Operation,
					p.SenderHardwareAddr, p.SenderIP, p.TargetHardwareAddr, p.TargetIP, f.Destination, wantTarget)
			}
		}
	})
}
