package bgp

import (
	"net/netip"
	"slices"
	"time"
)

// Session states (RFC 4271 section 8.2.2), as Status reports them.
const (
	StateIdle        = "idle"
	StateConnect     = "connect"
	StateActive      = "active"
	StateOpenSent    = "opensent"
	StateOpenConfirm = "openconfirm"
	StateEstablished = "established"
)

// Prefix states, as Status reports them.
const (
	// Announced: sent to every established peer with the node's attributes.
	Announced = "announced"
	// Draining: still announced, with GRACEFUL_SHUTDOWN and DrainMED, so
	// routers prefer the other nodes (planned withdrawal, first step).
	Draining = "draining"
	// Withdrawn: not announced; Reason says why.
	Withdrawn = "withdrawn"
)

// Status is a snapshot of a Speaker.
type Status struct {
	ASN      uint32         `json:"asn"`
	RouterID string         `json:"router_id"`
	Running  bool           `json:"running"`
	Peers    []PeerStatus   `json:"peers"`
	Prefixes []PrefixStatus `json:"prefixes"`
}

// PeerStatus is one BGP session.
type PeerStatus struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	// State is one of the State* constants.
	State string `json:"state"`
	// Since is when State was entered (zero before the first change).
	Since time.Time `json:"since,omitzero"`
	// Uptime is how long the session has been established; 0 when it is
	// not.
	Uptime time.Duration `json:"uptime_ns"`
	// HoldTime is the negotiated hold time while established, else the
	// configured one.
	HoldTime time.Duration `json:"hold_time_ns"`
	// PrefixesSent and PrefixesReceived count prefixes on the session
	// (advertised to, and accepted from, the peer).
	PrefixesSent     uint64 `json:"prefixes_sent"`
	PrefixesReceived uint64 `json:"prefixes_received"`
	// Flaps counts how often the session left established.
	Flaps uint32 `json:"flaps"`
	// LastError is why the session last went down, or why it cannot come
	// up; empty when it never failed.
	LastError string `json:"last_error,omitempty"`
	// BFD is "up", "init", "down" or "admin-down" when BFD is on, else "".
	BFD string `json:"bfd,omitempty"`
}

// PrefixStatus is one prefix the speaker was told about.
type PrefixStatus struct {
	Prefix string `json:"prefix"`
	// State is Announced, Draining or Withdrawn.
	State string `json:"state"`
	// Reason says why a prefix is withdrawn or draining, or why an
	// announced prefix reaches no router ("no established session").
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// Peers is the number of established sessions the prefix is sent on.
	Peers int `json:"peers"`
	// MED and Communities are what the routers see.
	MED         *uint32  `json:"med,omitempty"`
	Communities []string `json:"communities,omitempty"`
}

// NoSession is the reason an announced prefix reaches no router.
const NoSession = "no established session"

// prefixState is the speaker's record of one prefix.
type prefixState struct {
	attrs  Attrs // as given to Announce
	state  string
	reason string
	since  time.Time
}

// sent reports whether the routers should currently have the prefix.
func (p *prefixState) sent() bool { return p.state == Announced || p.state == Draining }

// wire is the attribute set the routers see.
func (p *prefixState) wire() Attrs {
	if p.state == Draining {
		return p.attrs.draining()
	}
	return p.attrs
}

// prefixStatus reports prefixes sorted, with the number of established
// sessions of their address family filled in.
func prefixStatus(m map[netip.Prefix]*prefixState, established map[bool]int) []PrefixStatus {
	keys := make([]netip.Prefix, 0, len(m))
	for pfx := range m {
		keys = append(keys, pfx)
	}
	slices.SortFunc(keys, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	out := make([]PrefixStatus, 0, len(m))
	for _, pfx := range keys {
		p := m[pfx]
		ps := PrefixStatus{Prefix: pfx.String(), State: p.state, Reason: p.reason, Since: p.since}
		if p.sent() {
			w := p.wire()
			ps.MED = w.MED
			for _, c := range w.Communities {
				ps.Communities = append(ps.Communities, c.String())
			}
			ps.Peers = established[pfx.Addr().Is4()]
			if ps.Peers == 0 && ps.Reason == "" {
				ps.Reason = NoSession
			}
		}
		out = append(out, ps)
	}
	return out
}
