package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// authPass is VRRPv2's simple text password authentication type (RFC 2338
// section 5.3.6.1; keepalived's auth_type PASS). RFC 3768 keeps the field
// and deprecates the types: a migration aid, not security.
const (
	authNone = 0
	authPass = 1
	authAH   = 2
)

// Notice names something odd about an advert that was still accepted.
type Notice string

// Notices, counted in status and metrics beside the drops.
const (
	// NoticeAddrList: the advert's address list differs from ours. RFC
	// 9568 section 7.1 lets a receiver check it and drop a mismatching
	// advert that is not the owner's; vipd logs and counts it but keeps
	// the advert, because during a rolling config change that adds or
	// removes a VIP both nodes would otherwise become MASTER for the VIPs
	// they share.
	NoticeAddrList Notice = "addr_list"
	// NoticeInterval: a VRRPv2 peer advertises another interval; RFC 3768
	// uses its own and keeps the field for troubleshooting.
	NoticeInterval Notice = "interval"
	// NoticeVersion: a configured node speaks the other VRRP version. Its
	// advert cannot join the election, but the machine follows it (see
	// AdvertReceived.OtherVersion) instead of becoming a second MASTER.
	// From a router that is not a configured node it is a drop.
	NoticeVersion Notice = "version"
)

// dropSibling marks an advert of another instance of this node; it is
// not counted.
const dropSibling DropReason = "sibling"

// maxSenders bounds the table of routers heard: adverts with forged
// sources must not grow it without limit.
const maxSenders = 64

// Sender is a router heard on our VRID.
type Sender struct {
	Addr     netip.Addr
	Version  uint8
	Priority uint8
	Interval time.Duration
	Checksum ChecksumMode
	VIPs     []netip.Addr // the addresses it advertises
	LastSeen time.Time
	Count    uint64 // adverts accepted
	Dropped  uint64 // adverts dropped (version, authentication, checksum, family)
	// Problem says what stops this peer's adverts from counting, or what
	// is odd about them, in words an operator can act on; "" when nothing.
	Problem string
}

// Verdict is the outcome of the receive checks for one packet.
type Verdict struct {
	// Advert is the decoded advert, valid once the packet decoded.
	Advert Advertisement
	// Checksum is the form the advert's checksum was computed in (valid
	// when accepted).
	Checksum ChecksumMode
	// Reason says why the packet is dropped; "" when it is accepted.
	Reason DropReason
	// Notice names something odd about an accepted advert.
	Notice Notice
	// Problem says, in words an operator can act on, what keeps this
	// sender's adverts from counting or what is odd about them, and what
	// to do; zero when nothing.
	Problem Problem
	// Peer is set once the packet is a VRRP advert for our VRID from
	// someone else: from then on it is accounted to its sender.
	Peer bool
	// OtherVersion: an accepted advert of the other VRRP version from a
	// configured node, to be followed, never elected against
	// (AdvertReceived.OtherVersion).
	OtherVersion bool
}

// Problem is something wrong with a sender's adverts: what is seen, and
// the fix. Status shows both in one sentence (String); vipd doctor shows
// them apart.
type Problem struct {
	Seen, Fix string
}

// String is "seen; fix", or "" for no problem.
func (p Problem) String() string {
	switch {
	case p.Seen == "":
		return ""
	case p.Fix == "":
		return p.Seen
	}
	return p.Seen + "; " + p.Fix
}

// Sibling reports an advert of another instance of this node on the same
// link: neither ours nor a drop.
func (v Verdict) Sibling() bool { return v.Reason == dropSibling }

// Checker applies a Runner's receive checks to packets read elsewhere:
// `vipd doctor` listens on a socket of its own and must judge what it hears
// exactly as the running instance would, with the same words.
type Checker struct {
	cfg  RunnerConfig
	auth [v2AuthDataLen]byte
}

// NewChecker returns the checks a Runner built from cfg applies. Only the
// receive side of cfg is used: Machine.Addr (self), Machine.VRID,
// Machine.Version (0 means 3), Machine.AdvertInterval, Machine.Solo, VIPs,
// AuthPass, Unicast, Peers and Siblings.
func NewChecker(cfg RunnerConfig) *Checker {
	if cfg.Machine.Version == 0 {
		cfg.Machine.Version = 3
	}
	c := &Checker{cfg: cfg}
	copy(c.auth[:], cfg.AuthPass)
	return c
}

// readLoop validates packets and hands good adverts to Run. Drops are
// counted by reason and logged at most once a minute per reason.
func (r *Runner) readLoop(ctx context.Context) {
	buf := make([]byte, 1500)
	for {
		n, src, dst, ttl, err := r.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn().Err(err).Msg("read VRRP socket")
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		v := r.checks.Check(buf[:n], src, dst, ttl)
		now := time.Now()
		if v.Peer {
			r.account(src, v, now)
		}
		if v.Sibling() {
			continue // a sibling instance's advert: not ours, not a drop
		}
		if v.Reason != "" {
			r.drop(v.Reason, src)
			continue
		}
		if v.Notice != "" {
			r.mu.Lock()
			r.notices[v.Notice]++
			r.mu.Unlock()
		}
		r.received.Add(1)
		ev := AdvertReceived{From: src, Priority: v.Advert.Priority, Interval: v.Advert.MaxAdvertInterval, OtherVersion: v.OtherVersion}
		rec := received{ev: ev, at: now, from: src}
		select {
		case r.pkts <- rec: // taken before a stop: a freeze feeds it to the machine
		default:
			select {
			case r.pkts <- rec:
			case <-ctx.Done():
				return
			}
		}
	}
}

// Check applies the receive checks of RFC 9568 section 7.1 (RFC 3768
// section 7.1 for VRRPv2), in an order that attributes a mismatch to its
// sender as soon as the packet is known to be an advert for our VRID.
func (c *Checker) Check(b []byte, src, dst netip.Addr, ttl int) Verdict {
	var v Verdict
	switch {
	case src == c.cfg.Machine.Addr:
		v.Reason = DropSelf
		return v
	case !c.cfg.Unicast && ttl >= 0 && ttl != 255:
		// "It MUST verify that the IP TTL is 255" is there to keep
		// off-link senders out of a multicast group. A unicast peer may
		// be a routed hop away (keepalived skips the check in unicast
		// mode too), and the peer filter below does the keeping out.
		v.Reason = DropTTL
		return v
	case c.cfg.Unicast && !slices.Contains(c.cfg.Peers, src):
		v.Reason = DropPeer
		return v
	}
	if err := v.Advert.UnmarshalBinary(b); err != nil {
		v.Reason = Reason(err)
		return v
	}
	if v.Advert.VRID != c.cfg.Machine.VRID {
		v.Reason = DropVRID
		if slices.Contains(c.cfg.Siblings, v.Advert.VRID) {
			v.Reason = dropSibling
		}
		return v
	}
	v.Peer = true
	want := c.cfg.Machine.Version
	if v.Advert.Version != want {
		v.Reason = DropVersion
		v.Problem = Problem{fmt.Sprintf("peer %s speaks VRRPv%d", src, v.Advert.Version), fmt.Sprintf("set version = %d to join it", v.Advert.Version)}
		if !slices.Contains(c.cfg.Peers, src) {
			return v
		}
		// A configured node: followed, never elected against (its own
		// version's checksum and family must still hold; its password,
		// if any, cannot be checked against a VRRPv3 config).
		v.Reason, v.OtherVersion, v.Notice = "", true, NoticeVersion
		v.Problem.Fix += " (meanwhile this node follows it and never preempts it)"
	}
	mode, err := VerifyChecksum(b, src, dst)
	if err != nil {
		v.Reason = Reason(err)
		v.Problem = Problem{fmt.Sprintf("peer %s: its checksum matches no form vipd accepts (corrupted, or computed over other addresses)", src),
			"make the peer send from the address it is configured with: NAT on the path, or a source address other than the one the packet carries, changes the pseudo-header the checksum covers"}
		return v
	}
	v.Checksum = mode
	if v.OtherVersion {
		if len(c.cfg.VIPs) > 0 && v.Advert.Addresses[0].Is4() != c.cfg.VIPs[0].Is4() {
			v.Reason = DropFamily
		}
		return v
	}
	if want == 2 {
		if reason, problem := c.checkAuth(&v.Advert, src); reason != "" {
			v.Reason, v.Problem = reason, problem
			return v
		}
	}
	if len(c.cfg.VIPs) > 0 && v.Advert.Addresses[0].Is4() != c.cfg.VIPs[0].Is4() {
		v.Reason = DropFamily
		v.Problem = Problem{fmt.Sprintf("peer %s advertises %s addresses on this %s instance", src, family(v.Advert.Addresses[0]), family(c.cfg.VIPs[0])),
			"give IPv4 and IPv6 VIPs instances (vrids) of their own, one family each, the same on every node"}
		return v
	}
	if !sameSet(v.Advert.Addresses, c.cfg.VIPs) && !c.cfg.Machine.Solo {
		v.Notice = NoticeAddrList
		v.Problem = Problem{fmt.Sprintf("peer %s advertises %s, this node %s: the VIP lists differ (a config change rolling out?)",
			src, addrList(v.Advert.Addresses), addrList(c.cfg.VIPs)),
			"the election goes on, but a VIP only one side lists is served only while that side is MASTER: give every node the same vips"}
	}
	if want == 2 && v.Advert.MaxAdvertInterval != c.cfg.Machine.AdvertInterval && v.Notice == "" {
		v.Notice = NoticeInterval
		v.Problem = Problem{fmt.Sprintf("peer %s advertises every %v, this node every %v", src, v.Advert.MaxAdvertInterval, c.cfg.Machine.AdvertInterval),
			"VRRPv2 routers keep their own interval, so set the same advert_interval on both"}
	}
	return v
}

// checkAuth is RFC 2338 section 7.1 as keepalived applies it: the
// authentication type must match ours, and with PASS the 8 bytes must.
func (c *Checker) checkAuth(adv *Advertisement, src netip.Addr) (DropReason, Problem) {
	want := uint8(authNone)
	if c.cfg.AuthPass != "" {
		want = authPass
	}
	switch {
	case adv.AuthType == authAH:
		return DropAuthType, Problem{fmt.Sprintf("peer %s uses auth_type AH, which vipd does not support", src), "switch it to PASS or none"}
	case adv.AuthType != want && want == authPass:
		return DropAuthType, Problem{fmt.Sprintf("peer %s sends no password, this node has auth_pass set", src), "set the same auth_pass on both (or none)"}
	case adv.AuthType != want:
		return DropAuthType, Problem{fmt.Sprintf("peer %s uses auth_type PASS", src), "set auth_pass to its password to join it"}
	case want == authPass && adv.AuthData != c.auth:
		return DropAuth, Problem{fmt.Sprintf("peer %s sends a different auth_pass", src), "set the same one on both"}
	}
	return "", Problem{}
}

// ForeignProblem words a router heard on vrid that is none of the
// configured nodes (known is false): two virtual routers share the VRID on
// the segment, and each takes the other's adverts for its own election. It
// returns no problem for a known node, and for an IPv6 link-local source, which
// cannot be matched to a node's configured address (over IPv6 multicast
// every node, vipd included, sends from its link-local address).
func ForeignProblem(src netip.Addr, vrid uint8, known bool) Problem {
	if known || src.IsLinkLocalUnicast() {
		return Problem{}
	}
	return Problem{fmt.Sprintf("router %s on vrid %d is not one of the [[node]]s: another VRRP router shares this VRID on the segment", src, vrid),
		"give one of them another vrid"}
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func sameSet(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func addrList(as []netip.Addr) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// account records a packet in the sender table, and logs a sender's
// problem once, when it first appears or changes.
func (r *Runner) account(src netip.Addr, v Verdict, now time.Time) {
	r.mu.Lock()
	s := r.senders[src]
	if s == nil {
		if len(r.senders) >= maxSenders {
			r.evictOldest()
		}
		s = &Sender{Addr: src}
		r.senders[src] = s
	}
	s.Version, s.Priority, s.Interval, s.LastSeen = v.Advert.Version, v.Advert.Priority, v.Advert.MaxAdvertInterval, now
	s.VIPs = v.Advert.Addresses
	if v.Reason != "" {
		s.Dropped++
	} else {
		s.Count++
		s.Checksum = v.Checksum
	}
	problem := v.Problem.String()
	changed := s.Problem != problem
	s.Problem = problem
	r.mu.Unlock()
	if changed && problem != "" {
		r.log.Warn().Str("peer", src.String()).Str("reason", string(v.Reason)).Str("notice", string(v.Notice)).Msg(problem)
	}
	if changed && problem == "" {
		r.log.Info().Str("peer", src.String()).Msg("peer's adverts are in order again")
	}
}

// evictOldest drops the sender heard longest ago. r.mu is held.
func (r *Runner) evictOldest() {
	var oldest *Sender
	for _, s := range r.senders {
		if oldest == nil || s.LastSeen.Before(oldest.LastSeen) {
			oldest = s
		}
	}
	if oldest != nil {
		delete(r.senders, oldest.Addr)
	}
}

func (r *Runner) drop(reason DropReason, src netip.Addr) {
	r.mu.Lock()
	r.drops[reason]++
	now := time.Now()
	logIt := reason != DropSelf && now.Sub(r.lastLog[reason]) > time.Minute
	if logIt {
		r.lastLog[reason] = now
	}
	r.mu.Unlock()
	if logIt {
		r.log.Warn().Str("reason", string(reason)).Str("src", src.String()).Msg("dropped VRRP packet (logged once a minute per reason; see drops in status)")
	}
}
