package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// Announcer tells the L2 segment where a VIP lives now.
type Announcer interface {
	// Announce tells the segment that vip is at the interface's MAC: for
	// an IPv4 vip one gratuitous ARP request and one gratuitous ARP reply,
	// broadcast; for an IPv6 vip (NewAnnouncer's announcer only) one
	// unsolicited neighbour advertisement to all nodes.
	Announce(vip netip.Addr) error
	// Close releases the socket.
	Close() error
}

// Burst announces every address in vips count times, gap apart (the daemon
// uses 5 rounds 100 ms apart), so that a lost frame or a neighbour that was
// busy does not keep clients on the old master. It stops early, returning
// ctx.Err(), when ctx is done. A failed round does not end the burst: the
// interface may be coming back up (a link flap is when clients most need
// the announcement), so every round is tried and the first error of each
// failed round is returned, joined.
func Burst(ctx context.Context, a Announcer, vips []netip.Addr, count int, gap time.Duration) error {
	var t *time.Timer
	var failed []error
	for i := range count {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i > 0 {
			if t == nil {
				t = time.NewTimer(gap)
				defer t.Stop()
			} else {
				t.Reset(gap)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
		for _, vip := range vips {
			if err := a.Announce(vip); err != nil {
				failed = append(failed, fmt.Errorf("round %d: %w", i+1, err))
				break
			}
		}
	}
	return errors.Join(failed...)
}

// NewAnnouncerConn returns an Announcer that writes Ethernet frames to pc
// with ifi's hardware address as the sender. pc is normally an AF_PACKET
// socket (github.com/mdlayher/packet) bound to ifi; tests pass a fake. The
// frames are built with github.com/mdlayher/arp's codec rather than an
// arp.Client because arp.New refuses an interface without an IPv4 address
// of its own, and a VIP may well live on one.
func NewAnnouncerConn(ifi *net.Interface, pc net.PacketConn) (Announcer, error) {
	if ifi == nil || len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("netcfg: announcer: %w: interface needs a 6-byte MAC", ErrInvalidConfig)
	}
	return &announcer{ifi: ifi, pc: pc}, nil
}

type announcer struct {
	ifi *net.Interface
	pc  net.PacketConn
}

func (a *announcer) Announce(vip netip.Addr) error {
	frames, err := garpFrames(a.ifi.HardwareAddr, vip)
	if err != nil {
		return fmt.Errorf("netcfg: announce %s on %s: %w", vip, a.ifi.Name, err)
	}
	dst := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	for _, f := range frames {
		if _, err := a.pc.WriteTo(f, dst); err != nil {
			return fmt.Errorf("netcfg: announce %s on %s: %w", vip, a.ifi.Name, err)
		}
	}
	return nil
}

func (a *announcer) Close() error { return a.pc.Close() }

// ethHeaderLen is the length of an Ethernet II header without VLAN tag.
const ethHeaderLen = 14

// garpFrames builds the two gratuitous ARP frames for vip: a request exactly
// like keepalived's (sender IP = target IP = vip, target MAC broadcast) and a
// reply of the same shape, both to the Ethernet broadcast address. Linux
// treats both as gratuitous (arp_is_garp) and overrides an existing
// neighbour entry with them.
func garpFrames(mac net.HardwareAddr, vip netip.Addr) ([][]byte, error) {
	if !vip.Is4() {
		return nil, ErrNotIPv4
	}
	var frames [][]byte
	for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		p, err := arp.NewPacket(op, mac, vip, ethernet.Broadcast, vip)
		if err != nil {
			return nil, err
		}
		pb, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		f := &ethernet.Frame{
			Destination: ethernet.Broadcast,
			Source:      mac,
			EtherType:   ethernet.EtherTypeARP,
			Payload:     pb,
		}
		fb, err := f.MarshalBinary()
		if err != nil {
			return nil, err
		}
		// ethernet pads to the 60-byte minimum; send the 42 bytes
		// keepalived sends and let the driver pad on the wire.
		frames = append(frames, fb[:ethHeaderLen+len(pb)])
	}
	return frames, nil
}
