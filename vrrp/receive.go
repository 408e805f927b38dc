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

// verdict is the outcome of the receive checks for one packet.
type verdict struct {
	adv     Advertisement
	mode    ChecksumMode
	reason  DropReason // "": accepted
	notice  Notice
	problem string
	// peer is set once the packet is a VRRP advert for our VRID from
	// someone else: from then on it is accounted to its sender.
	peer bool
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
		v := r.check(buf[:n], src, dst, ttl)
		now := time.Now()
		if v.peer {
			r.account(src, v, now)
		}
		if v.reason == dropSibling {
			continue // a sibling instance's advert: not ours, not a drop
		}
		if v.reason != "" {
			r.drop(v.reason, src)
			continue
		}
		if v.notice != "" {
			r.mu.Lock()
			r.notices[v.notice]++
			r.mu.Unlock()
		}
		r.received.Add(1)
		ev := AdvertReceived{From: src, Priority: v.adv.Priority, Interval: v.adv.MaxAdvertInterval}
		select {
		case r.pkts <- received{ev: ev, at: now, from: src}:
		case <-ctx.Done():
			return
		}
	}
}

// check applies the receive checks of RFC 9568 section 7.1 (RFC 3768
// section 7.1 for VRRPv2), in an order that attributes a mismatch to its
// sender as soon as the packet is known to be an advert for our VRID.
func (r *Runner) check(b []byte, src, dst netip.Addr, ttl int) verdict {
	var v verdict
	switch {
	case src == r.cfg.Machine.Addr:
		v.reason = DropSelf
		return v
	case !r.cfg.Unicast && ttl >= 0 && ttl != 255:
		// "It MUST verify that the IP TTL is 255" is there to keep
		// off-link senders out of a multicast group. A unicast peer may
		// be a routed hop away (keepalived skips the check in unicast
		// mode too), and the peer filter below does the keeping out.
		v.reason = DropTTL
		return v
	case r.cfg.Unicast && !slices.Contains(r.cfg.Peers, src):
		v.reason = DropPeer
		return v
	}
	if err := v.adv.UnmarshalBinary(b); err != nil {
		v.reason = Reason(err)
		return v
	}
	if v.adv.VRID != r.cfg.Machine.VRID {
		v.reason = DropVRID
		if slices.Contains(r.cfg.Siblings, v.adv.VRID) {
			v.reason = dropSibling
		}
		return v
	}
	v.peer = true
	want := r.cfg.Machine.Version
	if v.adv.Version != want {
		v.reason = DropVersion
		v.problem = fmt.Sprintf("peer %s speaks VRRPv%d; set version = %d to join it", src, v.adv.Version, v.adv.Version)
		return v
	}
	mode, err := VerifyChecksum(b, src, dst)
	if err != nil {
		v.reason = Reason(err)
		v.problem = fmt.Sprintf("peer %s: its checksum matches no form vipd accepts (corrupted, or computed over other addresses)", src)
		return v
	}
	v.mode = mode
	if want == 2 {
		if reason, problem := r.checkAuth(&v.adv, src); reason != "" {
			v.reason, v.problem = reason, problem
			return v
		}
	}
	if len(r.cfg.VIPs) > 0 && v.adv.Addresses[0].Is4() != r.cfg.VIPs[0].Is4() {
		v.reason = DropFamily
		v.problem = fmt.Sprintf("peer %s advertises %s addresses on this %s instance", src, family(v.adv.Addresses[0]), family(r.cfg.VIPs[0]))
		return v
	}
	if !sameSet(v.adv.Addresses, r.cfg.VIPs) && !r.cfg.Machine.Solo {
		v.notice = NoticeAddrList
		v.problem = fmt.Sprintf("peer %s advertises %s, this node %s: the VIP lists differ (a config change rolling out?); the election goes on, but a VIP only one side lists is served only while that side is MASTER",
			src, addrList(v.adv.Addresses), addrList(r.cfg.VIPs))
	}
	if want == 2 && v.adv.MaxAdvertInterval != r.cfg.Machine.AdvertInterval && v.notice == "" {
		v.notice = NoticeInterval
		v.problem = fmt.Sprintf("peer %s advertises every %v, this node every %v; VRRPv2 routers keep their own interval, so set the same advert_interval on both",
			src, v.adv.MaxAdvertInterval, r.cfg.Machine.AdvertInterval)
	}
	return v
}

// checkAuth is RFC 2338 section 7.1 as keepalived applies it: the
// authentication type must match ours, and with PASS the 8 bytes must.
func (r *Runner) checkAuth(adv *Advertisement, src netip.Addr) (DropReason, string) {
	want := uint8(authNone)
	if r.cfg.AuthPass != "" {
		want = authPass
	}
	switch {
	case adv.AuthType == authAH:
		return DropAuthType, fmt.Sprintf("peer %s uses auth_type AH, which vipd does not support; switch it to PASS or none", src)
	case adv.AuthType != want && want == authPass:
		return DropAuthType, fmt.Sprintf("peer %s sends no password, this node has auth_pass set; set the same auth_pass on both (or none)", src)
	case adv.AuthType != want:
		return DropAuthType, fmt.Sprintf("peer %s uses auth_type PASS; set auth_pass to its password to join it", src)
	case want == authPass && adv.AuthData != r.auth:
		return DropAuth, fmt.Sprintf("peer %s sends a different auth_pass; set the same one on both", src)
	}
	return "", ""
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
func (r *Runner) account(src netip.Addr, v verdict, now time.Time) {
	r.mu.Lock()
	s := r.senders[src]
	if s == nil {
		if len(r.senders) >= maxSenders {
			r.evictOldest()
		}
		s = &Sender{Addr: src}
		r.senders[src] = s
	}
	s.Version, s.Priority, s.Interval, s.LastSeen = v.adv.Version, v.adv.Priority, v.adv.MaxAdvertInterval, now
	s.VIPs = v.adv.Addresses
	if v.reason != "" {
		s.Dropped++
	} else {
		s.Count++
		s.Checksum = v.mode
	}
	changed := s.Problem != v.problem
	s.Problem = v.problem
	r.mu.Unlock()
	if changed && v.problem != "" {
		r.log.Warn().Str("peer", src.String()).Str("reason", string(v.reason)).Str("notice", string(v.notice)).Msg(v.problem)
	}
	if changed && v.problem == "" {
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
