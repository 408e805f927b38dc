package vrrp

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestChecksumModes checks both IPv4 forms of RFC 9568 section 5.2.8 on the
// V3-1 capture, whose message-only checksum 0x6010 was computed
// independently (Python, RFC 1071).
func TestChecksumModes(t *testing.T) {
	a := v3(100, time.Second, 0)
	tests := []struct {
		name     string
		mode     ChecksumMode
		src, dst netip.Addr
		want     []byte
	}{
		{"pseudo-header (keepalived)", ChecksumPseudoHeader, nodeA, IPv4Group,
			mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a")},
		{"message only (RFC 9568 wording)", ChecksumMessage, nodeA, IPv4Group,
			mustHex("31 33 64 01 00 64 60 10 0a 4d 00 0a")},
		// A dual-stack socket reports IPv4 peers as IPv4-mapped addresses.
		{"pseudo-header IPv4-mapped", ChecksumPseudoHeader,
			netip.AddrFrom16(nodeA.As16()), netip.AddrFrom16(IPv4Group.As16()),
			mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a")},
		// Unicast mode: the destination is the peer, not the group (0x4ae3
		// computed independently).
		{"pseudo-header unicast", ChecksumPseudoHeader, nodeA, nodeB,
			mustHex("31 33 64 01 00 64 4a e3 0a 4d 00 0a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := MarshalAdvertisement(&a, tt.src, tt.dst, tt.mode)
			if err != nil {
				t.Fatalf("MarshalAdvertisement: %v", err)
			}
			if diff := cmp.Diff(tt.want, b); diff != "" {
				t.Errorf("MarshalAdvertisement mismatch (-want +got):\n%s", diff)
			}
			mode, err := VerifyChecksum(b, tt.src, tt.dst)
			if err != nil || mode != tt.mode {
				t.Errorf("VerifyChecksum = %v, %v; want %v, nil", mode, err, tt.mode)
			}
		})
	}
}

// TestChecksumIgnoresField: Checksum treats the checksum field as zero, so
// it can be run over a received packet or a buffer being reused.
func TestChecksumIgnoresField(t *testing.T) {
	b := mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a")
	z := mustHex("31 33 64 01 00 64 00 00 0a 4d 00 0a")
	for _, mode := range []ChecksumMode{ChecksumPseudoHeader, ChecksumMessage} {
		if got, want := Checksum(b, nodeA, IPv4Group, mode), Checksum(z, nodeA, IPv4Group, mode); got != want {
			t.Errorf("%v: Checksum with field set = %#04x, zeroed = %#04x", mode, got, want)
		}
	}
}

// TestChecksumIPv6 uses the hand-made IPv6 vector. RFC 9568 section 5.2.8:
// over IPv6 the pseudo-header of RFC 8200 section 8.1 is always included,
// whichever IPv4 mode is configured.
func TestChecksumIPv6(t *testing.T) {
	for _, mode := range []ChecksumMode{ChecksumPseudoHeader, ChecksumMessage} {
		b, err := MarshalAdvertisement(&ipv6Advert, ipv6Src, IPv6Group, mode)
		if err != nil {
			t.Fatalf("%v: MarshalAdvertisement: %v", mode, err)
		}
		if diff := cmp.Diff(ipv6Vector, b); diff != "" {
			t.Errorf("%v: MarshalAdvertisement mismatch (-want +got):\n%s", mode, diff)
		}
	}
	if mode, err := VerifyChecksum(ipv6Vector, ipv6Src, IPv6Group); err != nil || mode != ChecksumPseudoHeader {
		t.Fatalf("VerifyChecksum = %v, %v; want pseudo-header", mode, err)
	}

	// One's complement sums catch every single-bit error. (Flipping a
	// version bit may fail as ErrVersion instead: still dropped.)
	for i := range len(ipv6Vector) * 8 {
		b := append([]byte(nil), ipv6Vector...)
		b[i/8] ^= 1 << (i % 8)
		if _, err := VerifyChecksum(b, ipv6Src, IPv6Group); !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrVersion) {
			t.Errorf("bit %d flipped: VerifyChecksum = %v, want ErrChecksum", i, err)
		}
	}
	// The pseudo-header covers the source address.
	other := netip.MustParseAddr("fe80::2")
	if _, err := VerifyChecksum(ipv6Vector, other, IPv6Group); !errors.Is(err, ErrChecksum) {
		t.Errorf("from %v: VerifyChecksum = %v, want ErrChecksum", other, err)
	}
	// A message-only checksum is not valid over IPv6.
	b := append([]byte(nil), ipv6Vector...)
	binary.BigEndian.PutUint16(b[6:8], Checksum(b, netip.Addr{}, netip.Addr{}, ChecksumMessage))
	if _, err := VerifyChecksum(b, ipv6Src, IPv6Group); !errors.Is(err, ErrChecksum) {
		t.Errorf("message-only over IPv6: VerifyChecksum = %v, want ErrChecksum", err)
	}
}

func TestVerifyChecksumErrors(t *testing.T) {
	v31 := mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a")
	v21 := mustHex("21 33 64 01 00 01 70 73 0a 4d 00 0a 00 00 00 00 00 00 00 00")
	flip := func(b []byte, i int) []byte {
		b = append([]byte(nil), b...)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		err      error
	}{
		{"short", v31[:7], nodeA, IPv4Group, io.ErrUnexpectedEOF},
		{"bad checksum", flip(v31, 7), nodeA, IPv4Group, ErrChecksum},
		{"priority changed", flip(v31, 2), nodeA, IPv4Group, ErrChecksum},
		// V3-1 claimed by node B: the pseudo-header covers the source.
		{"wrong source", v31, nodeB, IPv4Group, ErrChecksum},
		{"mixed families", v31, nodeA, IPv6Group, ErrChecksum},
		{"no addresses", v31, netip.Addr{}, netip.Addr{}, ErrChecksum},
		{"version 4", append([]byte{0x41}, v31[1:]...), nodeA, IPv4Group, ErrVersion},
		// A VRRPv3 packet relabelled version 2 is checked message-only.
		{"VRRPv3 as version 2", append([]byte{0x21}, v31[1:]...), nodeA, IPv4Group, ErrChecksum},
		{"VRRPv2 bad checksum", flip(v21, 6), nodeA, IPv4Group, ErrChecksum},
		{"VRRPv2 auth data changed", flip(v21, 19), nodeA, IPv4Group, ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode, err := VerifyChecksum(tt.b, tt.src, tt.dst)
			if !errors.Is(err, tt.err) {
				t.Errorf("VerifyChecksum = %v, %v; want %v", mode, err, tt.err)
			}
			if r, want := Reason(err), Reason(tt.err); r != want {
				t.Errorf("Reason = %q, want %q", r, want)
			}
		})
	}
}

// TestVerifyChecksumNegativeZero: RFC 1071 receivers accept 0xffff where a
// sender computed 0x0000 (both are one's complement zero). The message
// below was chosen so its pseudo-header checksum is 0x0000.
func TestVerifyChecksumNegativeZero(t *testing.T) {
	b := mustHex("31 33 64 01 00 64 00 00 0a 4d 00 0a")
	// Adjust the address so the sum is all ones: add the current checksum.
	c := Checksum(b, nodeA, IPv4Group, ChecksumPseudoHeader)
	binary.BigEndian.PutUint16(b[10:12], binary.BigEndian.Uint16(b[10:12])+c)
	if got := Checksum(b, nodeA, IPv4Group, ChecksumPseudoHeader); got != 0 {
		t.Fatalf("constructed message checksum = %#04x, want 0", got)
	}
	for _, field := range []uint16{0x0000, 0xffff} {
		binary.BigEndian.PutUint16(b[6:8], field)
		if mode, err := VerifyChecksum(b, nodeA, IPv4Group); err != nil || mode != ChecksumPseudoHeader {
			t.Errorf("field %#04x: VerifyChecksum = %v, %v; want pseudo-header", field, mode, err)
		}
	}
}

func TestChecksumModeString(t *testing.T) {
	for m, want := range map[ChecksumMode]string{
		ChecksumPseudoHeader: "pseudo-header",
		ChecksumMessage:      "rfc9568",
		0:                    "ChecksumMode(0)",
	} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint8(m), got, want)
		}
	}
}

func TestMarshalAdvertisementUnknownMode(t *testing.T) {
	a := v3(100, time.Second, 0)
	if _, err := MarshalAdvertisement(&a, nodeA, IPv4Group, 0); err == nil {
		t.Error("MarshalAdvertisement with mode 0 succeeded, want an error")
	}
}

// TestChecksumShortInput: Checksum must not panic on a message shorter than
// the header (the fuzzer feeds it anything).
func TestChecksumShortInput(t *testing.T) {
	for n := range 8 {
		_ = Checksum(make([]byte, n), nodeA, IPv4Group, ChecksumPseudoHeader)
		_ = Checksum(make([]byte, n), ipv6Src, IPv6Group, ChecksumPseudoHeader)
	}
}

// TestMarshalAdvertisementVRRPv2IgnoresAddresses is a regression case found
// by FuzzUnmarshal: a VRRPv2 advert marshalled with IPv6 source and
// destination took the IPv6 pseudo-header, which VerifyChecksum (rightly,
// RFC 3768 section 5.3.8) does not include for VRRPv2.
func TestMarshalAdvertisementVRRPv2IgnoresAddresses(t *testing.T) {
	want := mustHex("21 33 64 01 00 01 70 73 0a 4d 00 0a 00 00 00 00 00 00 00 00")
	a := v2(100, 0)
	for _, p := range [][2]netip.Addr{{nodeA, IPv4Group}, {ipv6Src, IPv6Group}, {{}, {}}} {
		b, err := MarshalAdvertisement(&a, p[0], p[1], ChecksumPseudoHeader)
		if err != nil {
			t.Fatalf("MarshalAdvertisement: %v", err)
		}
		if diff := cmp.Diff(want, b); diff != "" {
			t.Errorf("from %v to %v: MarshalAdvertisement mismatch (-want +got):\n%s", p[0], p[1], diff)
		}
		if mode, err := VerifyChecksum(b, p[0], p[1]); err != nil || mode != ChecksumMessage {
			t.Errorf("from %v to %v: VerifyChecksum = %v, %v; want rfc9568", p[0], p[1], mode, err)
		}
	}
}
