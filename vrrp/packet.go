package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// ProtocolNumber is the IP protocol number assigned to VRRP (RFC 9568
// section 5.1.1.4 and 5.1.2.4): the protocol of the raw socket and the
// next header of the IPv6 pseudo-header.
const ProtocolNumber = 112

// The multicast groups adverts are sent to (RFC 9568 sections 5.1.1.2 and
// 5.1.2.2).
var (
	IPv4Group = netip.MustParseAddr("224.0.0.18")
	IPv6Group = netip.MustParseAddr("ff02::12")
)

// Type is the VRRP packet type (RFC 9568 section 5.2.2).
type Type uint8

// TypeAdvertisement is the only packet type VRRP defines; a packet of any
// other type must be discarded (RFC 9568 section 5.2.2).
const TypeAdvertisement Type = 1

// String returns a lower-case name for logs.
func (t Type) String() string {
	if t == TypeAdvertisement {
		return "advertisement"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Sentinel errors returned (wrapped, test with errors.Is) by the codec. A
// packet shorter than its fixed header returns io.ErrUnexpectedEOF.
var (
	// ErrVersion: the version field is not 3 (or 2 on decode). RFC 9568
	// section 7.1 requires such packets to be discarded.
	ErrVersion = errors.New("unsupported VRRP version")
	// ErrType: the type field is not TypeAdvertisement (RFC 9568 section 5.2.2).
	ErrType = errors.New("unknown VRRP packet type")
	// ErrNoAddresses: the address count is zero. RFC 9568 section 5.2.5
	// requires at least one address, and the election tie-break needs a
	// primary address to compare.
	ErrNoAddresses = errors.New("VRRP advert carries no addresses")
	// ErrZeroInterval: the advertisement interval is zero, which would make
	// Master_Down_Interval equal to Skew_Time and backups fire at once.
	ErrZeroInterval = errors.New("VRRP advert interval is zero")
	// ErrLength: the message length does not match the address count for
	// either family, the addresses mix families, or a field does not fit
	// its wire width on marshal.
	ErrLength = errors.New("VRRP message length mismatch")
	// ErrChecksum: the checksum matches none of the accepted forms.
	ErrChecksum = errors.New("VRRP checksum mismatch")
)

// Wire sizes (RFC 9568 section 5.1 figure, RFC 3768 section 5.1 figure).
const (
	headerLen     = 8 // version/type, VRID, priority, count, rsvd/interval, checksum
	v2AuthDataLen = 8 // VRRPv2 trailing authentication data
	maxCentisecs  = 1<<12 - 1
)

// Advertisement is a VRRP advertisement: VRRPv3 (RFC 9568 section 5.2) for
// IPv4 or IPv6, or VRRPv2 (RFC 3768 section 5.3, IPv4 only) so that adverts
// from keepalived peers configured with vrrp_version 2 decode.
//
// The fields map one to one onto the wire, so that a decoded advert
// re-encodes to the same bytes (apart from the VRRPv3 reserved bits, which
// RFC 9568 section 5.2.6 says to ignore on receipt and send as zero).
type Advertisement struct {
	// Version is 3; 2 is accepted on decode and re-encodes as VRRPv2.
	Version uint8
	// Type is TypeAdvertisement.
	Type Type
	// VRID identifies the virtual router (RFC 9568 section 5.2.3).
	VRID uint8
	// Priority: 255 for the address owner, 1-254 for backups, 0 from a
	// master that is leaving (RFC 9568 section 5.2.4).
	Priority uint8
	// MaxAdvertInterval is the sender's advertisement interval. VRRPv3
	// carries 12 bits of centiseconds (10ms..40.95s, section 5.2.7); VRRPv2
	// carries one byte of whole seconds (RFC 3768 section 5.3.7).
	MaxAdvertInterval time.Duration
	// Checksum is the wire checksum. MarshalBinary writes it as-is; use
	// MarshalAdvertisement to compute it, VerifyChecksum to check it.
	Checksum uint16
	// Addresses are the virtual addresses, all IPv4 or all IPv6
	// (RFC 9568 section 5.2.9). The first is not necessarily the primary
	// address of the sender: that is the IP source address.
	Addresses []netip.Addr

	// AuthType and AuthData are VRRPv2 only (RFC 3768 sections 5.3.6 and
	// 5.3.10), kept so that a decoded VRRPv2 advert re-encodes identically
	// and the receiver can drop a mismatching authentication type. They are
	// ignored for version 3.
	AuthType uint8
	AuthData [v2AuthDataLen]byte
}

// MarshalBinary encodes a into its wire form, writing a.Checksum as-is. It
// rejects what UnmarshalBinary would reject, so that nothing vipd sends is
// dropped by its own decoder.
func (a *Advertisement) MarshalBinary() ([]byte, error) {
	n, err := a.wireLen()
	if err != nil {
		return nil, err
	}
	return a.append(make([]byte, 0, n))
}

// AppendBinary appends the wire form of a to b (encoding.BinaryAppender),
// letting a sender reuse one buffer per advert and allocate nothing.
func (a *Advertisement) AppendBinary(b []byte) ([]byte, error) {
	if _, err := a.wireLen(); err != nil {
		return b, err
	}
	return a.append(b)
}

// wireLen validates a and returns its encoded length.
func (a *Advertisement) wireLen() (int, error) {
	switch a.Version {
	case 2, 3:
	default:
		return 0, fmt.Errorf("vrrp: version %d: %w", a.Version, ErrVersion)
	}
	if a.Type != TypeAdvertisement {
		return 0, fmt.Errorf("vrrp: %v: %w", a.Type, ErrType)
	}
	if len(a.Addresses) == 0 {
		return 0, fmt.Errorf("vrrp: %w", ErrNoAddresses)
	}
	if len(a.Addresses) > 255 {
		return 0, fmt.Errorf("vrrp: %d addresses do not fit the 8-bit count: %w", len(a.Addresses), ErrLength)
	}
	if _, err := a.intervalField(); err != nil {
		return 0, err
	}
	is4 := a.Addresses[0].Is4()
	for _, ip := range a.Addresses {
		// An IPv4-mapped IPv6 address counts as IPv6: it would be sent
		// as 16 bytes, so it cannot sit beside 4-byte addresses.
		if !ip.IsValid() || ip.Is4() != is4 {
			return 0, fmt.Errorf("vrrp: address %v: mixed or invalid address families: %w", ip, ErrLength)
		}
	}
	if a.Version == 2 {
		if !is4 {
			return 0, fmt.Errorf("vrrp: VRRPv2 is IPv4 only (RFC 3768): %w", ErrLength)
		}
		return headerLen + 4*len(a.Addresses) + v2AuthDataLen, nil
	}
	if is4 {
		return headerLen + 4*len(a.Addresses), nil
	}
	return headerLen + 16*len(a.Addresses), nil
}

// intervalField returns the interval as the wire field: 12-bit centiseconds
// for VRRPv3, 8-bit seconds for VRRPv2. An interval the field cannot carry
// exactly is an error rather than silently rounded: peers would otherwise
// compute different timers from the ones this node runs.
func (a *Advertisement) intervalField() (uint16, error) {
	d := a.MaxAdvertInterval
	unit, limit := 10*time.Millisecond, time.Duration(maxCentisecs)
	if a.Version == 2 {
		unit, limit = time.Second, 255
	}
	if d == 0 {
		return 0, fmt.Errorf("vrrp: %w", ErrZeroInterval)
	}
	if d < 0 || d%unit != 0 || d/unit > limit {
		return 0, fmt.Errorf("vrrp: interval %v does not fit the VRRPv%d field (multiples of %v up to %v): %w",
			d, a.Version, unit, limit*unit, ErrLength)
	}
	return uint16(d / unit), nil
}

// append encodes a, already validated by wireLen, onto b.
func (a *Advertisement) append(b []byte) ([]byte, error) {
	iv, err := a.intervalField()
	if err != nil {
		return b, err
	}
	b = append(b, a.Version<<4|uint8(a.Type)&0x0f, a.VRID, a.Priority, uint8(len(a.Addresses)))
	if a.Version == 2 {
		b = append(b, a.AuthType, uint8(iv))
	} else {
		// The 4 reserved bits are zero (RFC 9568 section 5.2.6).
		b = binary.BigEndian.AppendUint16(b, iv)
	}
	b = binary.BigEndian.AppendUint16(b, a.Checksum)
	for _, ip := range a.Addresses {
		if ip.Is4() {
			v := ip.As4()
			b = append(b, v[:]...)
		} else {
			v := ip.As16()
			b = append(b, v[:]...)
		}
	}
	if a.Version == 2 {
		b = append(b, a.AuthData[:]...)
	}
	return b, nil
}

// UnmarshalBinary decodes a VRRPv3 or VRRPv2 advertisement from b, the IP
// payload. It makes the structural checks of RFC 9568 section 7.1 that need
// nothing but the bytes (version, type, count, interval, length); the
// checksum (VerifyChecksum), TTL, VRID and sender are the receiver's.
//
// The address family is not on the wire: it follows from the length, since
// count*4 and count*16 differ for any count above zero. b must be exactly the
// message: raw IP sockets hand over the IP payload as the IP length gives it,
// with no link-layer padding, so any excess is an error rather than padding.
//
// The only allocation is the Addresses slice, which is fresh each call, so
// a caller may keep it after decoding the next packet into a.
func (a *Advertisement) UnmarshalBinary(b []byte) error {
	if len(b) < headerLen {
		return io.ErrUnexpectedEOF
	}
	version, typ := b[0]>>4, Type(b[0]&0x0f)
	if version != 2 && version != 3 {
		return fmt.Errorf("vrrp: version %d: %w", version, ErrVersion)
	}
	if typ != TypeAdvertisement {
		return fmt.Errorf("vrrp: %v: %w", typ, ErrType)
	}
	count := int(b[3])
	if count == 0 {
		return fmt.Errorf("vrrp: %w", ErrNoAddresses)
	}

	var (
		interval time.Duration
		authType uint8
		addrLen  int
		rest     = b[headerLen:]
	)
	if version == 2 {
		authType = b[4]
		interval = time.Duration(b[5]) * time.Second
	} else {
		interval = time.Duration(binary.BigEndian.Uint16(b[4:6])&maxCentisecs) * 10 * time.Millisecond
	}
	if interval == 0 {
		return fmt.Errorf("vrrp: %w", ErrZeroInterval)
	}

	switch {
	case version == 2:
		// RFC 3768 section 5.1: IPv4 only, then 8 bytes of auth data.
		addrLen = 4
		if want := count*4 + v2AuthDataLen; len(rest) != want {
			if len(rest) < want {
				return io.ErrUnexpectedEOF
			}
			return fmt.Errorf("vrrp: VRRPv2 message of %d bytes for %d addresses: %w", len(b), count, ErrLength)
		}
	case len(rest) == count*4:
		addrLen = 4
	case len(rest) == count*16:
		addrLen = 16
	case len(rest) < count*4:
		// Too short for even IPv4 addresses: the packet was cut.
		return io.ErrUnexpectedEOF
	default:
		return fmt.Errorf("vrrp: message of %d bytes fits neither %d IPv4 nor %d IPv6 addresses: %w",
			len(b), count, count, ErrLength)
	}

	addrs := make([]netip.Addr, count)
	for i := range addrs {
		p := rest[i*addrLen : (i+1)*addrLen]
		if addrLen == 4 {
			addrs[i] = netip.AddrFrom4([4]byte(p))
		} else {
			addrs[i] = netip.AddrFrom16([16]byte(p))
		}
	}

	*a = Advertisement{
		Version:           version,
		Type:              typ,
		VRID:              b[1],
		Priority:          b[2],
		MaxAdvertInterval: interval,
		Checksum:          binary.BigEndian.Uint16(b[6:8]),
		Addresses:         addrs,
		AuthType:          authType,
	}
	if version == 2 {
		copy(a.AuthData[:], rest[count*4:])
	}
	return nil
}

// DropReason names why a received packet was discarded. Its values are the
// label values of the drop counter, so they are short, stable and few.
type DropReason string

// Drop reasons. The first group comes from decoding (see Reason); the second
// from the receiver's own checks, which the codec cannot make.
const (
	DropShort    DropReason = "short"    // shorter than its header or addresses
	DropVersion  DropReason = "version"  // ErrVersion, or a version other than the instance's
	DropType     DropReason = "type"     // ErrType
	DropCount    DropReason = "count"    // ErrNoAddresses
	DropInterval DropReason = "interval" // ErrZeroInterval
	DropLength   DropReason = "length"   // ErrLength
	DropChecksum DropReason = "checksum" // ErrChecksum
	DropOther    DropReason = "other"    // any other error

	DropTTL      DropReason = "ttl"       // TTL / hop limit not 255 (RFC 9568 section 7.1)
	DropVRID     DropReason = "vrid"      // not our virtual router
	DropPeer     DropReason = "peer"      // unicast mode: sender not a configured peer
	DropFamily   DropReason = "family"    // addresses of the other family than the instance
	DropSelf     DropReason = "self"      // our own advert looped back
	DropAuth     DropReason = "auth"      // VRRPv2: the password differs from auth_pass
	DropAuthType DropReason = "auth_type" // VRRPv2: authentication type differs (none vs PASS, or AH)
)

// Reason maps an error from UnmarshalBinary or VerifyChecksum to the drop
// reason it is counted under. It returns "" for nil and DropOther for errors
// it does not know.
func Reason(err error) DropReason {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return DropShort
	case errors.Is(err, ErrVersion):
		return DropVersion
	case errors.Is(err, ErrType):
		return DropType
	case errors.Is(err, ErrNoAddresses):
		return DropCount
	case errors.Is(err, ErrZeroInterval):
		return DropInterval
	case errors.Is(err, ErrLength):
		return DropLength
	case errors.Is(err, ErrChecksum):
		return DropChecksum
	}
	return DropOther
}
