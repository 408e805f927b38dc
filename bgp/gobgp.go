package bgp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// This file turns our types into GoBGP's request structs. It is pure, so
// the mapping is unit-tested without a server.

func seconds(d time.Duration) uint64 { return uint64(d / time.Second) }

func globalAPI(c Config) *api.Global {
	return &api.Global{
		Asn:        c.ASN,
		RouterId:   c.RouterID.String(),
		ListenPort: c.listenPort(),
	}
}

func family(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// peerAPI is the GoBGP neighbour for p. The session carries the unicast
// family of the peer's address: an IPv6 VIP needs an IPv6 session (the
// next hop is the session's local address).
func peerAPI(c Config, p Peer) *api.Peer {
	hold := seconds(p.HoldTime)
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          hold,
			KeepaliveInterval: max(hold/3, 1),
			ConnectRetry:      seconds(p.ConnectRetry),
			// After a reset this side sent (BFD down, for one), GoBGP
			// idles 30 s by default before it redials; the VIP would be
			// missing from the router all that time.
			IdleHoldTimeAfterReset: seconds(p.ConnectRetry),
		}},
		Transport: &api.Transport{
			PassiveMode: p.Passive,
			RemotePort:  uint32(p.Port),
		},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family(p.Address), Enabled: true}}},
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.Multihop > 0 && c.ebgp(p) {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.Multihop)}
	}
	if p.BFD != nil {
		ap.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: uint32(p.BFD.MinTx / time.Microsecond),
			RequiredMinimumReceive:   uint32(p.BFD.MinRx / time.Microsecond),
			DetectionMultiplier:      uint32(p.BFD.Multiplier),
		}
	}
	return ap
}

// pathFor is the locally originated path announcing (or withdrawing)
// prefix with a. The next hop is left unspecified: GoBGP puts the
// session's local address there for every peer.
func pathFor(prefix netip.Prefix, a Attrs, withdraw bool) (*apiutil.Path, error) {
	nlri, err := gbgp.NewIPAddrPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("bgp: prefix %v: %w", prefix, err)
	}
	fam := gbgp.RF_IPv4_UC
	nh := netip.IPv4Unspecified()
	if prefix.Addr().Is6() {
		fam, nh = gbgp.RF_IPv6_UC, netip.IPv6Unspecified()
	}
	attrs := []gbgp.PathAttributeInterface{gbgp.NewPathAttributeOrigin(gbgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if fam == gbgp.RF_IPv4_UC {
		nhAttr, err := gbgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nhAttr)
	} else {
		mp, err := gbgp.NewPathAttributeMpReachNLRI(fam, []gbgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	if a.MED != nil {
		attrs = append(attrs, gbgp.NewPathAttributeMultiExitDisc(*a.MED))
	}
	if a.LocalPref != nil {
		attrs = append(attrs, gbgp.NewPathAttributeLocalPref(*a.LocalPref))
	}
	if len(a.Communities) > 0 {
		cs := make([]uint32, len(a.Communities))
		for i, c := range a.Communities {
			cs[i] = uint32(c)
		}
		attrs = append(attrs, gbgp.NewPathAttributeCommunities(cs))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}

// sessionState names GoBGP's FSM states as operators know them from
// routers (RFC 4271 section 8.2.2).
func sessionState(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return StateIdle
	case api.PeerState_SESSION_STATE_CONNECT:
		return StateConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return StateActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return StateOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

func fsmState(s gbgp.FSMState) string {
	switch s {
	case gbgp.BGP_FSM_CONNECT:
		return StateConnect
	case gbgp.BGP_FSM_ACTIVE:
		return StateActive
	case gbgp.BGP_FSM_OPENSENT:
		return StateOpenSent
	case gbgp.BGP_FSM_OPENCONFIRM:
		return StateOpenConfirm
	case gbgp.BGP_FSM_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

func bfdState(s api.BfdSessionState) string {
	switch s {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "up"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "admin-down"
	}
	return "down"
}

// disconnectReason is GoBGP's reason for the last session loss, in words.
func disconnectReason(r api.PeerState_DisconnectReason, msg string) string {
	var s string
	switch r {
	case api.PeerState_DISCONNECT_REASON_UNSPECIFIED:
		return msg
	case api.PeerState_DISCONNECT_REASON_ADMIN_DOWN:
		s = "administratively down"
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED:
		s = "hold timer expired"
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT:
		s = "notification sent"
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED:
		s = "notification received"
	case api.PeerState_DISCONNECT_REASON_READ_FAILED:
		s = "read failed (the router closed the connection)"
	case api.PeerState_DISCONNECT_REASON_WRITE_FAILED:
		s = "write failed"
	case api.PeerState_DISCONNECT_REASON_IDLE_TIMER_EXPIRED:
		s = "idle hold timer expired"
	case api.PeerState_DISCONNECT_REASON_RESTART_TIMER_EXPIRED:
		s = "graceful restart timer expired"
	case api.PeerState_DISCONNECT_REASON_GRACEFUL_RESTART:
		s = "graceful restart"
	case api.PeerState_DISCONNECT_REASON_INVALID_MSG:
		s = "invalid message"
	case api.PeerState_DISCONNECT_REASON_HARD_RESET:
		s = "hard reset"
	case api.PeerState_DISCONNECT_REASON_DECONFIGURED:
		s = "deconfigured"
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
		s = "bad peer AS"
	default:
		s = r.String()
	}
	// GoBGP's message is its reason as a slug ("invalid-msg"), followed
	// for notifications by the error code: keep only what it adds.
	if _, rest, ok := strings.Cut(msg, " "); ok {
		s += ": " + rest
	}
	return s
}
