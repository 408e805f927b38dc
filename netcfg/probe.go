package netcfg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// Claim is a host that answered for a probed address: it holds it.
type Claim struct {
	// Addr is the address probed.
	Addr netip.Addr
	// MAC is the hardware address the answer names for Addr; nil when a
	// neighbour advertisement carried none.
	MAC net.HardwareAddr
	// From is the answer's source: Addr for ARP, the sender's own address
	// (often link-local) for a neighbour advertisement.
	From netip.Addr
}

func (c Claim) String() string {
	mac := "no MAC given"
	if c.MAC != nil {
		mac = c.MAC.String()
	}
	if c.From.IsValid() && c.From != c.Addr {
		return fmt.Sprintf("%s at %s (from %s)", c.Addr, mac, c.From)
	}
	return fmt.Sprintf("%s at %s", c.Addr, mac)
}

// ProbeConfig says what Probe asks and for how long it listens.
type ProbeConfig struct {
	Interface string
	// Targets are the addresses to ask for: IPv4 ones with ARP, IPv6
	// ones with neighbour solicitations.
	Targets []netip.Addr
	// Rounds probes are sent for every target, Gap apart (RFC 5227 sends
	// three, one to two seconds apart). Probe listens until its context
	// ends, however many rounds were sent.
	Rounds int
	Gap    time.Duration
}

// arpProbeFrame is the ARP probe of RFC 5227 section 2.1.1 for target:
// an ARP request from mac with sender IP 0.0.0.0 and the target hardware
// address zero, broadcast. A zero sender IP is what makes it a probe: no
// host on the segment learns or changes a neighbour entry from it, where
// a gratuitous ARP would move clients' traffic for target to mac.
func arpProbeFrame(mac net.HardwareAddr, target netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, netip.IPv4Unspecified(), make(net.HardwareAddr, 6), target)
	if err != nil {
		return nil, err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return fb[:ethHeaderLen+len(pb)], nil
}

// arpClaim reports the claim a received frame makes: RFC 5227 section
// 2.1.1 counts any ARP packet, request or reply, whose sender IP is the
// probed address as that address in use, unless it is our own.
func arpClaim(frame []byte, own net.HardwareAddr, targets []netip.Addr) (Claim, bool) {
	var f ethernet.Frame
	var p arp.Packet
	if f.UnmarshalBinary(frame) != nil || f.EtherType != ethernet.EtherTypeARP || p.UnmarshalBinary(f.Payload) != nil {
		return Claim{}, false
	}
	if bytes.Equal(p.SenderHardwareAddr, own) || !slices.Contains(targets, p.SenderIP) {
		return Claim{}, false
	}
	return Claim{Addr: p.SenderIP, MAC: p.SenderHardwareAddr, From: p.SenderIP}, true
}

// claims collects distinct claims from a reader goroutine.
type claims struct {
	mu   sync.Mutex
	list []Claim
}

func (c *claims) add(cl Claim) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.list {
		if o.Addr == cl.Addr && bytes.Equal(o.MAC, cl.MAC) && o.From == cl.From {
			return
		}
	}
	c.list = append(c.list, cl)
}

func (c *claims) get() []Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.list)
}

// probeRounds calls send rounds times, gap apart, and then waits for ctx
// to end; reads run until then. It returns the first send error.
func probeRounds(ctx context.Context, rounds int, gap time.Duration, send func() error) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; i < max(rounds, 1); i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := send(); err != nil {
			return err
		}
		t.Reset(gap)
	}
	<-ctx.Done()
	return nil
}

// probeARP sends RFC 5227 probes for the IPv4 targets on pc, an AF_PACKET
// socket for ARP bound to ifi (a fake in tests), and returns the claims
// heard until ctx ends. It never sends anything but probes.
func probeARP(ctx context.Context, ifi *net.Interface, pc net.PacketConn, cfg ProbeConfig) ([]Claim, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%w: %s has no 6-byte MAC", ErrInvalidConfig, ifi.Name)
	}
	var frames [][]byte
	for _, t := range cfg.Targets {
		f, err := arpProbeFrame(ifi.HardwareAddr, t)
		if err != nil {
			return nil, err
		}
		frames = append(frames, f)
	}
	var got claims
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if c, ok := arpClaim(buf[:n], ifi.HardwareAddr, cfg.Targets); ok {
				got.add(c)
			}
		}
	}()
	err := probeRounds(ctx, cfg.Rounds, cfg.Gap, func() error {
		for _, f := range frames {
			if _, err := pc.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
				return err
			}
		}
		return nil
	})
	// A read deadline in the past unblocks the reader; closing is the
	// caller's.
	pc.SetReadDeadline(time.Unix(1, 0))
	<-done
	if err != nil && !errors.Is(err, context.Canceled) {
		return got.get(), fmt.Errorf("netcfg: ARP probe on %s: %w", ifi.Name, err)
	}
	return got.get(), nil
}
