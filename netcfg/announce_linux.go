//go:build linux

package netcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// NewAnnouncer opens an AF_PACKET socket on ifname for sending gratuitous
// ARP. The socket has a drop-all BPF filter: it only sends, so it must not
// queue every ARP frame on the segment.
func NewAnnouncer(ifname string) (Announcer, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("netcfg: announcer on %s: %w: %w", ifname, ErrNoInterface, err)
	}
	dropAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, fmt.Errorf("netcfg: announcer on %s: %w", ifname, err)
	}
	pc, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, &packet.Config{Filter: dropAll})
	if err != nil {
		return nil, fmt.Errorf("netcfg: announcer on %s: %w", ifname, err)
	}
	a, err := NewAnnouncerConn(ifi, pc)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &dualAnnouncer{garp: a, ifi: ifi}, nil
}

// dualAnnouncer sends gratuitous ARP for IPv4 VIPs and unsolicited
// neighbour advertisements for IPv6 VIPs. The ICMPv6 socket is opened on
// the first IPv6 announcement, so a node with only IPv4 VIPs never needs
// IPv6 on the interface, and one whose link-local address was still
// tentative at start-up gets it on the next attempt.
type dualAnnouncer struct {
	garp Announcer
	ifi  *net.Interface
	mu   sync.Mutex
	na   *ndp.Conn
}

func (a *dualAnnouncer) Announce(vip netip.Addr) error {
	if vip.Is4() || vip.Is4In6() {
		return a.garp.Announce(vip.Unmap())
	}
	if err := a.announce6(vip); err != nil {
		return fmt.Errorf("netcfg: announce %s on %s: %w", vip, a.ifi.Name, err)
	}
	return nil
}

// announce6 sends one unsolicited neighbour advertisement (RFC 4861
// section 7.2.6) for vip to all-nodes ff02::1, from the interface's
// link-local address with hop limit 255: override set, solicited and
// router clear, target link-layer address option = the interface's MAC.
// Linux neighbours update an existing entry for vip to that MAC (STALE,
// then confirmed by the next unicast exchange).
func (a *dualAnnouncer) announce6(vip netip.Addr) error {
	if !vip.Is6() || vip.Zone() != "" {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, vip)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.na == nil {
		c, _, err := ndp.Listen(a.ifi, ndp.LinkLocal)
		if err != nil {
			return fmt.Errorf("ndp socket: %w", err)
		}
		// Send only: queue no ICMPv6 traffic on this socket.
		var f ipv6.ICMPFilter
		f.SetAll(true)
		if err := c.SetICMPFilter(&f); err != nil {
			c.Close()
			return fmt.Errorf("icmp filter: %w", err)
		}
		a.na = c
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: vip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: a.ifi.HardwareAddr}},
	}
	return a.na.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes())
}

func (a *dualAnnouncer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	if a.na != nil {
		errs = append(errs, a.na.Close())
		a.na = nil
	}
	errs = append(errs, a.garp.Close())
	return errors.Join(errs...)
}
