package netcfg

import (
	"fmt"
	"net/netip"
	"slices"
)

// defaultTOS is the TOS byte (IPv6 traffic class) of VRRP adverts when
// VRRPConfig.TOS is 0: DSCP CS6 (network control), what keepalived sends.
const defaultTOS = 0xc0

// vrrpTTL is the TTL (hop limit) VRRP packets are sent with and, in
// multicast mode, must arrive with (RFC 9568 section 7.1).
const vrrpTTL = 255

// vrrpProto is the IP protocol number of VRRP.
const vrrpProto = 112

// The VRRP multicast groups (RFC 9568 sections 5.1.1.2 and 5.1.2.2); the
// same values are exported as vrrp.IPv4Group and vrrp.IPv6Group.
var (
	vrrpGroup4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	vrrpGroup6 = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})
)

// VRRPConfig configures a VRRP socket.
type VRRPConfig struct {
	// Interface is the interface adverts are sent and received on.
	Interface string
	// Source, when valid, is the source address of sent adverts (set per
	// packet with IP_PKTINFO or IPV6_PKTINFO). It should be the node's own
	// address so that adverts never come from the VIP. When invalid, the
	// kernel chooses, which for a /32 VIP is the interface's first (node)
	// address. An IPv6 Source selects IPv6. Over IPv6 in multicast mode it
	// must be the interface's link-local address (RFC 9568 section
	// 5.1.2.1; see LinkLocal); in unicast mode, the node's own address.
	Source netip.Addr
	// IPv6 selects VRRP over IPv6 (group ff02::12) when Source is not set;
	// an IPv6 Source implies it.
	IPv6 bool
	// Unicast sends to every address in Peers instead of the multicast
	// group, and does not join the group.
	Unicast bool
	// Peers are the unicast destinations; required when Unicast is set.
	Peers []netip.Addr
	// TOS is the IPv4 TOS byte (IPv6 traffic class) of sent adverts; 0
	// means 0xc0 (DSCP CS6, network control), what keepalived sends.
	TOS int
}

// ipv6 reports whether cfg asks for VRRP over IPv6.
func (cfg VRRPConfig) ipv6() bool { return cfg.IPv6 || cfg.Source.Is6() }

// tos is the TOS byte (traffic class) to send with.
func (cfg VRRPConfig) tos() int {
	if cfg.TOS == 0 {
		return defaultTOS
	}
	return cfg.TOS
}

// validate checks cfg and returns the destinations to send to: the group,
// or the unicast peers.
func (cfg VRRPConfig) validate() ([]netip.Addr, error) {
	if cfg.Interface == "" {
		return nil, fmt.Errorf("%w: no interface", ErrInvalidConfig)
	}
	v6 := cfg.ipv6()
	if cfg.Source.IsValid() && !v6 && !cfg.Source.Is4() {
		return nil, fmt.Errorf("%w: source %s: %w", ErrInvalidConfig, cfg.Source, ErrNotIPv4)
	}
	if v6 && cfg.Source.IsValid() && !isUnicast6(cfg.Source) {
		return nil, fmt.Errorf("%w: source %s is not an IPv6 unicast address", ErrInvalidConfig, cfg.Source)
	}
	if cfg.TOS < 0 || cfg.TOS > 0xff {
		return nil, fmt.Errorf("%w: tos %d out of range", ErrInvalidConfig, cfg.TOS)
	}
	if !cfg.Unicast {
		if v6 {
			return []netip.Addr{vrrpGroup6}, nil
		}
		return []netip.Addr{vrrpGroup4}, nil
	}
	if len(cfg.Peers) == 0 {
		return nil, fmt.Errorf("%w: unicast without peers", ErrInvalidConfig)
	}
	for _, p := range cfg.Peers {
		if v6 && !isUnicast6(p) {
			return nil, fmt.Errorf("%w: peer %s is not an IPv6 unicast address", ErrInvalidConfig, p)
		}
		if !v6 && (!p.Is4() || p.IsMulticast() || p.IsUnspecified()) {
			return nil, fmt.Errorf("%w: peer %s is not an IPv4 unicast address", ErrInvalidConfig, p)
		}
	}
	return slices.Clone(cfg.Peers), nil
}

func isUnicast6(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && !a.IsMulticast() && !a.IsUnspecified()
}
