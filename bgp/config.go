package bgp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by New to zero fields.
const (
	// DefaultHoldTime is FRR's "datacenter" profile value: a dead host is
	// noticed in 9 s instead of BGP's traditional 90 s or FRR's 180 s.
	DefaultHoldTime = 9 * time.Second
	// DefaultConnectRetry is how often an active session that is down
	// redials. GoBGP's own default (120 s) would leave a VIP unannounced
	// for two minutes after a router restart.
	DefaultConnectRetry = 5 * time.Second
	// DefaultBFDInterval is the default BFD transmit and receive interval.
	DefaultBFDInterval = 300 * time.Millisecond
	// DefaultBFDMultiplier is the default BFD detection multiplier.
	DefaultBFDMultiplier = 3
	// Port is the BGP port (RFC 4271 section 8.2.1).
	Port = 179
)

// MinHoldTime is the smallest hold time RFC 4271 section 4.2 allows (0,
// "no keepalives", is refused: a dead host would never be noticed).
const MinHoldTime = 3 * time.Second

// Config is one BGP speaker: the local side and its peers.
type Config struct {
	// ASN is the local autonomous system number, 1..4294967295
	// (4-octet ASNs, RFC 6793).
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address unique among the
	// speakers a router hears (RFC 6286).
	RouterID netip.Addr
	// Peers are the routers this speaker talks to.
	Peers []Peer
	// ListenPort is the TCP port a passive peer connects to. 0 means 179
	// when some peer is passive; no port is opened when none is.
	ListenPort uint16
}

// Peer is one BGP neighbour.
type Peer struct {
	// Address is the router's address on the session.
	Address netip.Addr
	// ASN is the router's ASN; equal to Config.ASN means iBGP.
	ASN uint32
	// Port is the router's TCP port; 0 means 179.
	Port uint16
	// LocalAddress is the source address of the session; the zero value
	// lets the kernel choose by route.
	LocalAddress netip.Addr
	// Password enables the TCP MD5 signature option (RFC 2385), at most 80
	// bytes (the kernel's TCP_MD5SIG_MAXKEYLEN).
	Password string
	// HoldTime is proposed in the OPEN message; the session uses the
	// smaller of both sides'. 0 means DefaultHoldTime; otherwise at least
	// MinHoldTime, in whole seconds.
	HoldTime time.Duration
	// ConnectRetry is how often a down session redials; 0 means
	// DefaultConnectRetry.
	ConnectRetry time.Duration
	// Multihop is the TTL of an eBGP session to a router that is not
	// directly connected (RFC 4271 section 5.1.3); 0 means directly
	// connected.
	Multihop uint8
	// Passive waits for the router to connect instead of dialling.
	Passive bool
	// BFD, when not nil, runs a BFD session beside the BGP session and
	// resets the BGP session when BFD goes down.
	BFD *BFD
}

// BFD is the asynchronous-mode BFD session of a peer (RFC 5880, single hop
// RFC 5881, UDP 3784). The router detects a dead host after Multiplier x
// max(MinRx, the router's transmit interval).
type BFD struct {
	// MinRx and MinTx are the intervals this side asks for; 0 means
	// DefaultBFDInterval. Whole microseconds, at least 10ms.
	MinRx, MinTx time.Duration
	// Multiplier is the detection multiplier, 1..255; 0 means
	// DefaultBFDMultiplier.
	Multiplier uint8
}

// Community is a BGP standard community (RFC 1997): AS number in the high
// 16 bits, value in the low 16.
type Community uint32

// Well-known communities.
const (
	// GracefulShutdown asks receivers to prefer other paths (RFC 8326).
	GracefulShutdown Community = 0xFFFF0000
	// NoExport keeps a route inside the receiver's AS (RFC 1997).
	NoExport Community = 0xFFFFFF01
	// NoAdvertise keeps a route on the receiver (RFC 1997).
	NoAdvertise Community = 0xFFFFFF02
	// NoExportSubconfed is NO_EXPORT_SUBCONFED (RFC 1997).
	NoExportSubconfed Community = 0xFFFFFF03
)

var wellKnown = []struct {
	name string
	c    Community
}{
	{"graceful-shutdown", GracefulShutdown},
	{"no-export", NoExport},
	{"no-advertise", NoAdvertise},
	{"no-export-subconfed", NoExportSubconfed},
}

// String prints a community as "AS:value", or its well-known name.
func (c Community) String() string {
	for _, w := range wellKnown {
		if w.c == c {
			return w.name
		}
	}
	return fmt.Sprintf("%d:%d", uint32(c)>>16, uint32(c)&0xFFFF)
}

// ErrCommunity is wrapped by ParseCommunity's errors.
var ErrCommunity = errors.New(`a community is "ASN:value" with both 0..65535 (e.g. "64512:100"), or one of graceful-shutdown, no-export, no-advertise, no-export-subconfed`)

// ParseCommunity parses "64512:100" or a well-known name such as
// "no-export".
func ParseCommunity(s string) (Community, error) {
	for _, w := range wellKnown {
		if s == w.name {
			return w.c, nil
		}
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("%q: %w", s, ErrCommunity)
	}
	a, err1 := strconv.ParseUint(hi, 10, 16)
	v, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q: %w", s, ErrCommunity)
	}
	return Community(a<<16 | v), nil
}

// Attrs are the path attributes this node puts on a prefix.
type Attrs struct {
	// MED is the MULTI_EXIT_DISC (lower is preferred, compared between
	// paths from the same neighbouring AS); nil sends none.
	MED *uint32
	// LocalPref is LOCAL_PREF (higher is preferred), sent on iBGP sessions
	// only; nil sends the default 100 there.
	LocalPref *uint32
	// Communities are added to the path.
	Communities []Community
}

// DrainMED is the MED a draining prefix carries: the largest value that
// no implementation treats as "unreachable" (RFC 4451 section 4 notes that
// some treat 4294967295 so).
const DrainMED = math.MaxUint32 - 1

// draining returns the attributes of a prefix in planned withdrawal:
// GRACEFUL_SHUTDOWN added and the MED made the worst usable one.
func (a Attrs) draining() Attrs {
	med := uint32(DrainMED)
	out := Attrs{MED: &med, LocalPref: a.LocalPref}
	out.Communities = append(out.Communities, a.Communities...)
	if !containsCommunity(out.Communities, GracefulShutdown) {
		out.Communities = append(out.Communities, GracefulShutdown)
	}
	return out
}

func containsCommunity(list []Community, c Community) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// validate checks a Config and fills in defaults; it returns a copy.
func (c Config) validate() (Config, error) {
	var errs []error
	if c.ASN == 0 {
		errs = append(errs, errors.New("bgp: ASN 0 is reserved (RFC 7607); use a private ASN such as 64512"))
	}
	if !c.RouterID.Is4() || c.RouterID.IsUnspecified() {
		errs = append(errs, fmt.Errorf("bgp: router id %v: must be a non-zero IPv4 address (RFC 6286)", c.RouterID))
	}
	if len(c.Peers) == 0 {
		errs = append(errs, errors.New("bgp: no peers"))
	}
	out := c
	out.Peers = make([]Peer, len(c.Peers))
	seen := map[netip.Addr]bool{}
	for i, p := range c.Peers {
		p, err := p.validate()
		if err != nil {
			errs = append(errs, err)
		}
		if seen[p.Address] {
			errs = append(errs, fmt.Errorf("bgp: peer %v listed twice", p.Address))
		}
		seen[p.Address] = true
		out.Peers[i] = p
	}
	return out, errors.Join(errs...)
}

func (p Peer) validate() (Peer, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("bgp: peer %v: "+format, append([]any{p.Address}, args...)...))
	}
	if !p.Address.IsValid() || p.Address.IsUnspecified() || p.Address.IsMulticast() || p.Address.Zone() != "" {
		bad("not a unicast address without zone")
	}
	if p.ASN == 0 {
		bad("ASN 0 is reserved (RFC 7607)")
	}
	if p.Port == 0 {
		p.Port = Port
	}
	if len(p.Password) > 80 {
		bad("password longer than 80 bytes (TCP_MD5SIG_MAXKEYLEN)")
	}
	if p.HoldTime == 0 {
		p.HoldTime = DefaultHoldTime
	}
	if p.HoldTime < MinHoldTime || p.HoldTime > 65535*time.Second || p.HoldTime%time.Second != 0 {
		bad("hold time %v: must be whole seconds between 3s and 65535s (RFC 4271 section 4.2)", p.HoldTime)
	}
	if p.ConnectRetry == 0 {
		p.ConnectRetry = DefaultConnectRetry
	}
	if p.ConnectRetry < time.Second || p.ConnectRetry%time.Second != 0 {
		bad("connect retry %v: must be whole seconds, at least 1s", p.ConnectRetry)
	}
	if p.BFD != nil {
		b := *p.BFD
		if b.MinRx == 0 {
			b.MinRx = DefaultBFDInterval
		}
		if b.MinTx == 0 {
			b.MinTx = DefaultBFDInterval
		}
		if b.Multiplier == 0 {
			b.Multiplier = DefaultBFDMultiplier
		}
		for _, d := range []time.Duration{b.MinRx, b.MinTx} {
			if d < 10*time.Millisecond || d > time.Minute {
				bad("BFD interval %v: must be between 10ms and 1m", d)
			}
		}
		p.BFD = &b
	}
	return p, errors.Join(errs...)
}

// ebgp reports whether the session to p is external.
func (c Config) ebgp(p Peer) bool { return p.ASN != c.ASN }

// listenPort is the port GoBGP listens on: -1 for none.
func (c Config) listenPort() int32 {
	for _, p := range c.Peers {
		if p.Passive {
			if c.ListenPort != 0 {
				return int32(c.ListenPort)
			}
			return Port
		}
	}
	return -1
}
