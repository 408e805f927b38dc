package vrrp

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
)

// ChecksumMode selects what the VRRPv3 checksum covers over IPv4.
//
// RFC 9568 section 5.2.8 says the checksum is over the VRRP message and,
// for IPv6, the IPv6 pseudo-header; read literally, an IPv4 checksum covers
// the message alone. keepalived (its default) and most Linux peers include
// the IPv4 pseudo-header as well, as RFC 5798 was commonly read. The two do
// not interoperate, so vipd sends one form (configurable) and accepts both.
// Over IPv6 the pseudo-header is always included, and VRRPv2 (RFC 3768
// section 5.3.8) never includes one.
type ChecksumMode uint8

// The two IPv4 checksum forms. The zero value is not a mode.
const (
	// ChecksumPseudoHeader covers the IPv4 pseudo-header (source,
	// destination, zero, protocol 112, VRRP length) and the message:
	// keepalived's default and vipd's.
	ChecksumPseudoHeader ChecksumMode = iota + 1
	// ChecksumMessage covers the VRRP message only: the RFC 9568 wording for
	// IPv4, and the only form VRRPv2 has.
	ChecksumMessage
)

// String returns the configuration spelling of m: "pseudo-header" or
// "rfc9568".
func (m ChecksumMode) String() string {
	switch m {
	case ChecksumPseudoHeader:
		return "pseudo-header"
	case ChecksumMessage:
		return "rfc9568"
	}
	return fmt.Sprintf("ChecksumMode(%d)", uint8(m))
}

// Checksum returns the checksum of the VRRP message b sent from src to dst,
// computing as if the checksum field (bytes 6 and 7) were zero, so b may
// already hold one.
//
// If either address is IPv6 the IPv6 pseudo-header of RFC 8200 section 8.1
// is included whatever the mode (RFC 9568 section 5.2.8). Otherwise
// ChecksumMessage covers b alone and any other mode adds the IPv4
// pseudo-header (RFC 768 layout). IPv4-mapped IPv6 addresses count as IPv4,
// as a dual-stack socket may report them.
func Checksum(b []byte, src, dst netip.Addr, mode ChecksumMode) uint16 {
	s := pseudoSum(src.Unmap(), dst.Unmap(), len(b), mode)
	if len(b) >= headerLen {
		s = sum(b[:6], s)
		s = sum(b[8:], s)
	} else {
		s = sum(b, s)
	}
	return ^fold(s)
}

// VerifyChecksum reports which form of checksum the VRRP message b, received
// from src for dst, carries, or an error wrapping ErrChecksum if it matches
// none. The form is worth reporting: a peer on the other IPv4 form cannot
// hear vipd either, and the operator needs to know which to configure.
//
// VRRPv3 over IPv4 is tried with the pseudo-header first (what keepalived
// sends) and then the message alone; over IPv6 only the pseudo-header is
// valid. VRRPv2 is checked over the message alone whatever the addresses
// (RFC 3768 section 5.3.8). Input shorter than the header returns
// io.ErrUnexpectedEOF; a version other than 2 or 3, ErrVersion.
func VerifyChecksum(b []byte, src, dst netip.Addr) (ChecksumMode, error) {
	if len(b) < headerLen {
		return 0, io.ErrUnexpectedEOF
	}
	src, dst = src.Unmap(), dst.Unmap()
	switch v := b[0] >> 4; v {
	case 2:
		if valid(b, 0) {
			return ChecksumMessage, nil
		}
	case 3:
		switch {
		case src.Is6() && dst.Is6():
			if valid(b, pseudoSum(src, dst, len(b), ChecksumPseudoHeader)) {
				return ChecksumPseudoHeader, nil
			}
		case src.Is4() && dst.Is4():
			if valid(b, pseudoSum(src, dst, len(b), ChecksumPseudoHeader)) {
				return ChecksumPseudoHeader, nil
			}
			if valid(b, 0) {
				return ChecksumMessage, nil
			}
		default:
			// The pseudo-header needs both addresses of one family.
			return 0, fmt.Errorf("vrrp: checksum from %v to %v: addresses not of one family: %w", src, dst, ErrChecksum)
		}
	default:
		return 0, fmt.Errorf("vrrp: version %d: %w", v, ErrVersion)
	}
	return 0, fmt.Errorf("vrrp: checksum %#04x from %v matches no accepted form: %w",
		binary.BigEndian.Uint16(b[6:8]), src, ErrChecksum)
}

// MarshalAdvertisement encodes a with its checksum computed for a packet
// from src to dst in the given mode (ignored for IPv6, which always uses the
// pseudo-header, and for VRRPv2, which never does). a.Checksum is ignored
// and a is not modified.
func MarshalAdvertisement(a *Advertisement, src, dst netip.Addr, mode ChecksumMode) ([]byte, error) {
	if mode != ChecksumPseudoHeader && mode != ChecksumMessage {
		return nil, fmt.Errorf("vrrp: unknown checksum mode %v", mode)
	}
	if a.Version == 2 {
		// RFC 3768 section 5.3.8: the message alone, whatever the
		// addresses (VerifyChecksum checks VRRPv2 the same way).
		mode, src, dst = ChecksumMessage, netip.Addr{}, netip.Addr{}
	}
	b, err := a.MarshalBinary()
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(b[6:8], Checksum(b, src, dst, mode))
	return b, nil
}

// valid reports whether b, checksum field included, sums with the
// pseudo-header sum s to all ones. Summing rather than recomputing and
// comparing accepts both one's complement zeros (0x0000 and 0xffff), as
// RFC 1071 receivers do.
func valid(b []byte, s uint64) bool {
	return fold(sum(b, s)) == 0xffff
}

// pseudoSum returns the one's complement sum of the pseudo-header that the
// checksum of an n-byte VRRP message covers, or 0 when it covers none.
func pseudoSum(src, dst netip.Addr, n int, mode ChecksumMode) uint64 {
	if src.Is6() || dst.Is6() {
		// RFC 8200 section 8.1: source, destination, 32-bit upper-layer
		// length, three zero bytes, next header. As16 of an IPv4 or
		// invalid address does not panic, so a mixed pair still sums.
		s, d := src.As16(), dst.As16()
		var ph [40]byte
		copy(ph[0:16], s[:])
		copy(ph[16:32], d[:])
		binary.BigEndian.PutUint32(ph[32:36], uint32(n))
		ph[39] = ProtocolNumber
		return sum(ph[:], 0)
	}
	if mode == ChecksumMessage {
		return 0
	}
	// IPv4 pseudo-header: source, destination, zero, protocol, length.
	// An invalid address contributes zeros rather than panicking in As4.
	var ph [12]byte
	if src.Is4() {
		s := src.As4()
		copy(ph[0:4], s[:])
	}
	if dst.Is4() {
		d := dst.As4()
		copy(ph[4:8], d[:])
	}
	ph[9] = ProtocolNumber
	binary.BigEndian.PutUint16(ph[10:12], uint16(n))
	return sum(ph[:], 0)
}

// sum adds b as big-endian 16-bit words to s (RFC 1071 section 4.1), an odd
// last byte padded with zero. 64 bits cannot overflow for any message.
func sum(b []byte, s uint64) uint64 {
	for len(b) >= 2 {
		s += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold reduces a one's complement sum to 16 bits.
func fold(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
