package vrrp

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpAddr lets cmp compare netip.Addr, whose fields are unexported.
var cmpAddr = cmpopts.EquateComparable(netip.Addr{})

// Addresses of the keepalived captures (testdata/README.md).
var (
	nodeA = netip.MustParseAddr("10.77.0.11") // priority 100
	nodeB = netip.MustParseAddr("10.77.0.12") // priority 90
	vip   = netip.MustParseAddr("10.77.0.10")
)

// ipv6Vector is a hand-made VRRPv3 advert over IPv6 from fe80::1 to
// ff02::12: VRID 51, priority 100, 200 ms, addresses fe80::10 (RFC 9568
// section 5.2.9: the first IPv6 address is link-local) and 2001:db8::10.
// Its checksum 0x402d was computed independently (Python, RFC 1071 sum over
// the RFC 8200 pseudo-header and the message).
var (
	ipv6Src    = netip.MustParseAddr("fe80::1")
	ipv6Vector = mustHex("31 33 64 02 00 14 40 2d" +
		"fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 10" +
		"20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 10")
	ipv6Advert = Advertisement{
		Version:           3,
		Type:              TypeAdvertisement,
		VRID:              51,
		Priority:          100,
		MaxAdvertInterval: 200 * time.Millisecond,
		Checksum:          0x402d,
		Addresses:         []netip.Addr{netip.MustParseAddr("fe80::10"), netip.MustParseAddr("2001:db8::10")},
	}
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// v3 returns a keepalived-like VRRPv3 advert for VIP 10.77.0.10.
func v3(prio uint8, interval time.Duration, sum uint16) Advertisement {
	return Advertisement{
		Version: 3, Type: TypeAdvertisement, VRID: 51, Priority: prio,
		MaxAdvertInterval: interval, Checksum: sum, Addresses: []netip.Addr{vip},
	}
}

// v2 returns a keepalived-like VRRPv2 advert (auth type 0, empty auth data).
func v2(prio uint8, sum uint16) Advertisement {
	a := v3(prio, time.Second, sum)
	a.Version = 2
	return a
}

// pcapPacket is one IP packet found in a capture.
type pcapPacket struct {
	frame    int // 1-based, as tshark and Wireshark number frames
	src, dst netip.Addr
	ttl      uint8
	proto    uint8
	payload  []byte // exactly the IP payload, link-layer padding removed
}

// readPcap returns the IPv4 and IPv6 packets of a classic pcap file with
// Ethernet link type, and the number of frames in it. It is just enough of
// a reader for the keepalived captures, to avoid a dependency.
func readPcap(t *testing.T, path string) (pkts []pcapPacket, frames int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 {
		t.Fatalf("%s: short pcap header", path)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4, 0xa1b23c4d: // microsecond, nanosecond timestamps
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("%s: not a classic pcap file", path)
	}
	if lt := bo.Uint32(data[20:24]); lt != 1 {
		t.Fatalf("%s: link type %d, want 1 (Ethernet)", path, lt)
	}
	for rest := data[24:]; len(rest) > 0; {
		if len(rest) < 16 {
			t.Fatalf("%s: truncated record header after frame %d", path, frames)
		}
		n := int(bo.Uint32(rest[8:12]))
		if len(rest) < 16+n {
			t.Fatalf("%s: truncated frame %d", path, frames+1)
		}
		frame := rest[16 : 16+n]
		rest = rest[16+n:]
		frames++
		if p, ok := parseEthernetIP(frame); ok {
			p.frame = frames
			pkts = append(pkts, p)
		}
	}
	return pkts, frames
}

// parseEthernetIP extracts the IP packet of an Ethernet frame, if any.
func parseEthernetIP(f []byte) (pcapPacket, bool) {
	if len(f) < 14 {
		return pcapPacket{}, false
	}
	etype, ip := binary.BigEndian.Uint16(f[12:14]), f[14:]
	if etype == 0x8100 && len(f) >= 18 { // one 802.1Q tag
		etype, ip = binary.BigEndian.Uint16(f[16:18]), f[18:]
	}
	switch etype {
	case 0x0800:
		if len(ip) < 20 {
			return pcapPacket{}, false
		}
		ihl, total := int(ip[0]&0x0f)*4, int(binary.BigEndian.Uint16(ip[2:4]))
		if ihl < 20 || total < ihl || total > len(ip) {
			return pcapPacket{}, false
		}
		return pcapPacket{
			src: netip.AddrFrom4([4]byte(ip[12:16])), dst: netip.AddrFrom4([4]byte(ip[16:20])),
			ttl: ip[8], proto: ip[9], payload: ip[ihl:total],
		}, true
	case 0x86dd: // no extension headers: VRRP sends none
		if len(ip) < 40 {
			return pcapPacket{}, false
		}
		n := int(binary.BigEndian.Uint16(ip[4:6]))
		if 40+n > len(ip) {
			return pcapPacket{}, false
		}
		return pcapPacket{
			src: netip.AddrFrom16([16]byte(ip[8:24])), dst: netip.AddrFrom16([16]byte(ip[24:40])),
			ttl: ip[7], proto: ip[6], payload: ip[40 : 40+n],
		}, true
	}
	return pcapPacket{}, false
}

// TestGoldenKeepalivedCaptures decodes every VRRP frame of the three
// keepalived 2.2.7 captures, checks the checksum form each carries, and
// re-encodes each byte for byte.
func TestGoldenKeepalivedCaptures(t *testing.T) {
	tests := []struct {
		file            string
		frames, adverts int
		version         uint8
		mode            ChecksumMode
		intervals       []time.Duration
	}{
		// keepalived's default: VRRPv3 with the IPv4 pseudo-header.
		{"keepalived-vrrp3-adv1.pcap", 41, 16, 3, ChecksumPseudoHeader, []time.Duration{time.Second}},
		{"keepalived-vrrp3-adv0.1.pcap", 131, 111, 3, ChecksumPseudoHeader, []time.Duration{100 * time.Millisecond}},
		// RFC 3768 section 5.3.8: VRRPv2 covers the message only.
		{"keepalived-vrrp2-adv1.pcap", 41, 16, 2, ChecksumMessage, []time.Duration{time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pkts, frames := readPcap(t, filepath.Join("testdata", tt.file))
			if frames != tt.frames {
				t.Errorf("read %d frames, want %d (testdata/README.md)", frames, tt.frames)
			}
			adverts := 0
			for _, p := range pkts {
				if p.proto != ProtocolNumber {
					continue
				}
				adverts++
				name := fmt.Sprintf("frame %d", p.frame)
				if p.ttl != 255 || p.dst != IPv4Group {
					t.Errorf("%s: TTL %d to %v, want 255 to %v (RFC 9568 section 5.1.1)", name, p.ttl, p.dst, IPv4Group)
				}
				var a Advertisement
				if err := a.UnmarshalBinary(p.payload); err != nil {
					t.Errorf("%s: UnmarshalBinary: %v", name, err)
					continue
				}
				if a.Version != tt.version || a.VRID != 51 || len(a.Addresses) != 1 || a.Addresses[0] != vip {
					t.Errorf("%s: decoded %+v, want version %d, VRID 51, address %v", name, a, tt.version, vip)
				}
				if !containsDuration(tt.intervals, a.MaxAdvertInterval) {
					t.Errorf("%s: interval %v, want one of %v", name, a.MaxAdvertInterval, tt.intervals)
				}
				mode, err := VerifyChecksum(p.payload, p.src, p.dst)
				if err != nil || mode != tt.mode {
					t.Errorf("%s: VerifyChecksum = %v, %v; want %v", name, mode, err, tt.mode)
				}
				// keepalived's default form: vipd must send what it sends.
				got, err := MarshalAdvertisement(&a, p.src, p.dst, ChecksumPseudoHeader)
				if err != nil {
					t.Fatalf("%s: MarshalAdvertisement: %v", name, err)
				}
				if diff := cmp.Diff(p.payload, got); diff != "" {
					t.Errorf("%s: MarshalAdvertisement mismatch (-want +got):\n%s", name, diff)
				}
				if got, _ := a.MarshalBinary(); !cmp.Equal(p.payload, got) {
					t.Errorf("%s: MarshalBinary = % x, want % x", name, got, p.payload)
				}
			}
			if adverts != tt.adverts {
				t.Errorf("found %d VRRP frames, want %d", adverts, tt.adverts)
			}
		})
	}
}

func containsDuration(ds []time.Duration, d time.Duration) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// TestGoldenFrames checks the frames testdata/README.md names, field by field.
func TestGoldenFrames(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		frame int
		src   netip.Addr
		vrrp  []byte
		want  Advertisement
		mode  ChecksumMode
	}{
		{"V3-1 master 1s", "keepalived-vrrp3-adv1.pcap", 1, nodeA,
			mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a"), v3(100, time.Second, 0x7529), ChecksumPseudoHeader},
		{"V3-2 priority 0 on SIGTERM", "keepalived-vrrp3-adv1.pcap", 3, nodeA,
			mustHex("31 33 00 01 00 64 d9 29 0a 4d 00 0a"), v3(0, time.Second, 0xd929), ChecksumPseudoHeader},
		{"V3-3 master 0.1s", "keepalived-vrrp3-adv0.1.pcap", 1, nodeA,
			mustHex("31 33 64 01 00 0a 75 83 0a 4d 00 0a"), v3(100, 100*time.Millisecond, 0x7583), ChecksumPseudoHeader},
		{"V3-4 backup takeover 0.1s", "keepalived-vrrp3-adv0.1.pcap", 27, nodeB,
			mustHex("31 33 5a 01 00 0a 7f 82 0a 4d 00 0a"), v3(90, 100*time.Millisecond, 0x7f82), ChecksumPseudoHeader},
		{"V2-1 master 1s", "keepalived-vrrp2-adv1.pcap", 1, nodeA,
			mustHex("21 33 64 01 00 01 70 73 0a 4d 00 0a 00 00 00 00 00 00 00 00"), v2(100, 0x7073), ChecksumMessage},
		{"V2-2 priority 0", "keepalived-vrrp2-adv1.pcap", 3, nodeA,
			mustHex("21 33 00 01 00 01 d4 73 0a 4d 00 0a 00 00 00 00 00 00 00 00"), v2(0, 0xd473), ChecksumMessage},
		{"V2-3 backup takeover", "keepalived-vrrp2-adv1.pcap", 4, nodeB,
			mustHex("21 33 5a 01 00 01 7a 73 0a 4d 00 0a 00 00 00 00 00 00 00 00"), v2(90, 0x7a73), ChecksumMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts, _ := readPcap(t, filepath.Join("testdata", tt.file))
			var p pcapPacket
			for _, q := range pkts {
				if q.frame == tt.frame {
					p = q
				}
			}
			if diff := cmp.Diff(tt.vrrp, p.payload); diff != "" {
				t.Fatalf("frame %d VRRP bytes differ from README (-want +got):\n%s", tt.frame, diff)
			}
			if p.src != tt.src || p.dst != IPv4Group {
				t.Errorf("frame %d: %v -> %v, want %v -> %v", tt.frame, p.src, p.dst, tt.src, IPv4Group)
			}

			var got Advertisement
			if err := got.UnmarshalBinary(p.payload); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("UnmarshalBinary mismatch (-want +got):\n%s", diff)
			}
			mode, err := VerifyChecksum(p.payload, p.src, p.dst)
			if err != nil || mode != tt.mode {
				t.Errorf("VerifyChecksum = %v, %v; want %v, nil", mode, err, tt.mode)
			}
			if tt.want.Version == 3 {
				if c := Checksum(p.payload, p.src, p.dst, ChecksumPseudoHeader); c != tt.want.Checksum {
					t.Errorf("Checksum = %#04x, want %#04x", c, tt.want.Checksum)
				}
			}
			b, err := MarshalAdvertisement(&tt.want, p.src, p.dst, ChecksumPseudoHeader)
			if err != nil {
				t.Fatalf("MarshalAdvertisement: %v", err)
			}
			if diff := cmp.Diff(tt.vrrp, b); diff != "" {
				t.Errorf("MarshalAdvertisement mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMarshalUnmarshalRoundTrip encodes adverts to known bytes and decodes
// them back.
func TestMarshalUnmarshalRoundTrip(t *testing.T) {
	v2auth := v2(200, 0xbeef)
	v2auth.AuthType = 1 // RFC 2338 simple text password, as keepalived's auth_type PASS
	v2auth.AuthData = [8]byte{'s', 'e', 'c', 'r', 'e', 't'}
	maxInterval := v3(1, 40950*time.Millisecond, 0)
	maxInterval.VRID = 255
	multi := v3(255, 20*time.Millisecond, 0x1234)
	multi.Addresses = []netip.Addr{vip, netip.MustParseAddr("10.77.0.20"), netip.MustParseAddr("192.0.2.1")}

	tests := []struct {
		name string
		a    Advertisement
		b    []byte
	}{
		{"IPv4 one address", v3(100, time.Second, 0x7529), mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a")},
		{"IPv4 owner three addresses 20ms", multi,
			mustHex("31 33 ff 03 00 02 12 34 0a 4d 00 0a 0a 4d 00 14 c0 00 02 01")},
		{"12-bit interval maximum 40.95s", maxInterval, mustHex("31 ff 01 01 0f ff 00 00 0a 4d 00 0a")},
		{"IPv6 two addresses", ipv6Advert, ipv6Vector},
		{"VRRPv2 with auth data", v2auth,
			mustHex("21 33 c8 01 01 01 be ef 0a 4d 00 0a 73 65 63 72 65 74 00 00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.a.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			if diff := cmp.Diff(tt.b, b); diff != "" {
				t.Errorf("MarshalBinary mismatch (-want +got):\n%s", diff)
			}
			prefix := []byte{0xaa}
			b, err = tt.a.AppendBinary(prefix)
			if err != nil {
				t.Fatalf("AppendBinary: %v", err)
			}
			if diff := cmp.Diff(append([]byte{0xaa}, tt.b...), b); diff != "" {
				t.Errorf("AppendBinary mismatch (-want +got):\n%s", diff)
			}
			var got Advertisement
			if err := got.UnmarshalBinary(tt.b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(tt.a, got, cmpAddr); diff != "" {
				t.Errorf("UnmarshalBinary mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUnmarshalReservedBits: RFC 9568 section 5.2.6 says the 4 reserved
// bits before the interval are ignored on receipt, and sent as zero.
func TestUnmarshalReservedBits(t *testing.T) {
	var a Advertisement
	if err := a.UnmarshalBinary(mustHex("31 33 64 01 f0 64 75 29 0a 4d 00 0a")); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if diff := cmp.Diff(v3(100, time.Second, 0x7529), a, cmpAddr); diff != "" {
		t.Errorf("UnmarshalBinary mismatch (-want +got):\n%s", diff)
	}
	b, _ := a.MarshalBinary()
	if diff := cmp.Diff(mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a"), b); diff != "" {
		t.Errorf("MarshalBinary mismatch (-want +got):\n%s", diff)
	}
}

// unmarshalErrorTests are the malformed packets RFC 9568 section 7.1 (and
// DESIGN.md section 3) requires receivers to drop. They seed the fuzzer too.
var unmarshalErrorTests = []struct {
	name   string
	b      []byte
	err    error
	reason DropReason
}{
	{"empty", nil, io.ErrUnexpectedEOF, DropShort},
	{"header cut", mustHex("31 33 64 01 00 64 75"), io.ErrUnexpectedEOF, DropShort},
	{"address cut", mustHex("31 33 64 01 00 64 75 29 0a 4d 00"), io.ErrUnexpectedEOF, DropShort},
	{"second address missing", mustHex("31 33 64 02 00 64 75 29 0a 4d 00 0a"), io.ErrUnexpectedEOF, DropShort},
	{"version 0", mustHex("01 33 64 01 00 64 75 29 0a 4d 00 0a"), ErrVersion, DropVersion},
	{"version 1", mustHex("11 33 64 01 00 64 75 29 0a 4d 00 0a"), ErrVersion, DropVersion},
	{"version 4", mustHex("41 33 64 01 00 64 75 29 0a 4d 00 0a"), ErrVersion, DropVersion},
	{"version 15", mustHex("f1 33 64 01 00 64 75 29 0a 4d 00 0a"), ErrVersion, DropVersion},
	{"type 0", mustHex("30 33 64 01 00 64 75 29 0a 4d 00 0a"), ErrType, DropType},
	{"type 2", mustHex("32 33 64 01 00 64 75 29 0a 4d 00 0a"), ErrType, DropType},
	{"VRRPv2 type 2", mustHex("22 33 64 01 00 01 70 73 0a 4d 00 0a 00 00 00 00 00 00 00 00"), ErrType, DropType},
	{"count 0", mustHex("31 33 64 00 00 64 75 29"), ErrNoAddresses, DropCount},
	{"count 0 with an address", mustHex("31 33 64 00 00 64 75 29 0a 4d 00 0a"), ErrNoAddresses, DropCount},
	{"interval 0", mustHex("31 33 64 01 00 00 75 29 0a 4d 00 0a"), ErrZeroInterval, DropInterval},
	{"interval 0 reserved bits set", mustHex("31 33 64 01 f0 00 75 29 0a 4d 00 0a"), ErrZeroInterval, DropInterval},
	{"VRRPv2 interval 0", mustHex("21 33 64 01 00 00 70 73 0a 4d 00 0a 00 00 00 00 00 00 00 00"), ErrZeroInterval, DropInterval},
	{"trailing byte", mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a 00"), ErrLength, DropLength},
	{"neither family", mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a 00 00 00 00"), ErrLength, DropLength},
	{"IPv6 count 1 with 2 addresses", append(mustHex("31 33 64 01 00 14 40 2d"), ipv6Vector[8:]...), ErrLength, DropLength},
	// A VRRPv3 frame relabelled version 2 lacks the auth data.
	{"VRRPv2 without auth data", mustHex("21 33 64 01 00 01 70 73 0a 4d 00 0a"), io.ErrUnexpectedEOF, DropShort},
	{"VRRPv2 with IPv6 address", mustHex("21 33 64 01 00 01 70 73" +
		"20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 10"), ErrLength, DropLength},
	{"VRRPv2 trailing byte", mustHex("21 33 64 01 00 01 70 73 0a 4d 00 0a 00 00 00 00 00 00 00 00 00"), ErrLength, DropLength},
}

func TestUnmarshalErrors(t *testing.T) {
	for _, tt := range unmarshalErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			var a Advertisement
			err := a.UnmarshalBinary(tt.b)
			if !errors.Is(err, tt.err) {
				t.Fatalf("UnmarshalBinary = %v, want %v", err, tt.err)
			}
			if r := Reason(err); r != tt.reason {
				t.Errorf("Reason(%v) = %q, want %q", err, r, tt.reason)
			}
			if diff := cmp.Diff(Advertisement{}, a, cmpAddr); diff != "" {
				t.Errorf("failed decode modified the advert (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUnmarshalTruncated cuts valid adverts at every length. Each prefix must
// fail as short or as a length mismatch, except that an IPv6 advert cut to
// exactly count*4 address bytes is structurally a valid IPv4 advert: the
// family is not on the wire, and it is the checksum (whose IPv6
// pseudo-header covers the length) and the receiver's family check that
// reject it.
func TestUnmarshalTruncated(t *testing.T) {
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		minLen   int // shorter than this is io.ErrUnexpectedEOF
		asIPv4   int // this length decodes as IPv4 (0: none)
	}{
		{"V3-1", mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a"), nodeA, IPv4Group, 12, 0},
		{"V2-1", mustHex("21 33 64 01 00 01 70 73 0a 4d 00 0a 00 00 00 00 00 00 00 00"), nodeA, IPv4Group, 20, 0},
		{"IPv6", ipv6Vector, ipv6Src, IPv6Group, 16, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for n := range len(tt.b) {
				var a Advertisement
				err := a.UnmarshalBinary(tt.b[:n])
				switch {
				case n < tt.minLen:
					if err != io.ErrUnexpectedEOF {
						t.Errorf("length %d: err = %v, want io.ErrUnexpectedEOF", n, err)
					}
				case n == tt.asIPv4:
					if err != nil || !a.Addresses[0].Is4() {
						t.Errorf("length %d: err = %v, addresses %v; want an IPv4 decode", n, err, a.Addresses)
					}
					if _, err := VerifyChecksum(tt.b[:n], tt.src, tt.dst); !errors.Is(err, ErrChecksum) {
						t.Errorf("length %d: VerifyChecksum = %v, want ErrChecksum", n, err)
					}
				default:
					if !errors.Is(err, ErrLength) {
						t.Errorf("length %d: err = %v, want ErrLength", n, err)
					}
				}
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	with := func(f func(*Advertisement)) Advertisement {
		a := v3(100, time.Second, 0)
		f(&a)
		return a
	}
	tests := []struct {
		name string
		a    Advertisement
		err  error
	}{
		{"version 0", with(func(a *Advertisement) { a.Version = 0 }), ErrVersion},
		{"version 4", with(func(a *Advertisement) { a.Version = 4 }), ErrVersion},
		{"type 0", with(func(a *Advertisement) { a.Type = 0 }), ErrType},
		{"type 2", with(func(a *Advertisement) { a.Type = 2 }), ErrType},
		{"no addresses", with(func(a *Advertisement) { a.Addresses = nil }), ErrNoAddresses},
		{"256 addresses", with(func(a *Advertisement) { a.Addresses = many }), ErrLength},
		{"mixed families", with(func(a *Advertisement) { a.Addresses = append(a.Addresses, ipv6Src) }), ErrLength},
		{"IPv4-mapped beside IPv4", with(func(a *Advertisement) {
			a.Addresses = append(a.Addresses, netip.MustParseAddr("::ffff:10.77.0.20"))
		}), ErrLength},
		{"invalid address", with(func(a *Advertisement) { a.Addresses = []netip.Addr{{}} }), ErrLength},
		{"interval 0", with(func(a *Advertisement) { a.MaxAdvertInterval = 0 }), ErrZeroInterval},
		{"interval negative", with(func(a *Advertisement) { a.MaxAdvertInterval = -time.Second }), ErrLength},
		{"interval 5ms", with(func(a *Advertisement) { a.MaxAdvertInterval = 5 * time.Millisecond }), ErrLength},
		{"interval 1.234s", with(func(a *Advertisement) { a.MaxAdvertInterval = 1234 * time.Millisecond }), ErrLength},
		{"interval over 12 bits", with(func(a *Advertisement) { a.MaxAdvertInterval = 40960 * time.Millisecond }), ErrLength},
		{"VRRPv2 interval 1.5s", with(func(a *Advertisement) { a.Version = 2; a.MaxAdvertInterval = 1500 * time.Millisecond }), ErrLength},
		{"VRRPv2 interval 256s", with(func(a *Advertisement) { a.Version = 2; a.MaxAdvertInterval = 256 * time.Second }), ErrLength},
		{"VRRPv2 IPv6", with(func(a *Advertisement) { a.Version = 2; a.Addresses = []netip.Addr{ipv6Src} }), ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := tt.a.MarshalBinary(); !errors.Is(err, tt.err) {
				t.Errorf("MarshalBinary = % x, %v; want %v", b, err, tt.err)
			}
			if _, err := tt.a.AppendBinary(nil); !errors.Is(err, tt.err) {
				t.Errorf("AppendBinary: %v, want %v", err, tt.err)
			}
			if _, err := MarshalAdvertisement(&tt.a, nodeA, IPv4Group, ChecksumPseudoHeader); !errors.Is(err, tt.err) {
				t.Errorf("MarshalAdvertisement: %v, want %v", err, tt.err)
			}
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want DropReason
	}{
		{nil, ""},
		{io.ErrUnexpectedEOF, DropShort},
		{fmt.Errorf("vrrp: x: %w", ErrVersion), DropVersion},
		{ErrType, DropType},
		{ErrNoAddresses, DropCount},
		{ErrZeroInterval, DropInterval},
		{ErrLength, DropLength},
		{ErrChecksum, DropChecksum},
		{errors.New("something else"), DropOther},
	}
	for _, tt := range tests {
		if got := Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestTypeString(t *testing.T) {
	if got := TypeAdvertisement.String(); got != "advertisement" {
		t.Errorf("TypeAdvertisement.String() = %q", got)
	}
	if got := Type(2).String(); got != "type(2)" {
		t.Errorf("Type(2).String() = %q", got)
	}
}

// TestPacketAllocs pins the allocation budget: decoding allocates only the
// Addresses slice; appending to a large enough buffer and the checksums
// allocate nothing.
func TestPacketAllocs(t *testing.T) {
	b := mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a")
	a := v3(100, time.Second, 0x7529)
	buf := make([]byte, 0, 64)
	tests := []struct {
		name string
		want float64
		f    func()
	}{
		{"UnmarshalBinary", 1, func() { _ = new(Advertisement).UnmarshalBinary(b) }},
		{"AppendBinary", 0, func() { _, _ = a.AppendBinary(buf[:0]) }},
		{"Checksum", 0, func() { _ = Checksum(b, nodeA, IPv4Group, ChecksumPseudoHeader) }},
		{"VerifyChecksum", 0, func() { _, _ = VerifyChecksum(b, nodeA, IPv4Group) }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.f); got != tt.want {
			t.Errorf("%s: %v allocs, want %v", tt.name, got, tt.want)
		}
	}
}

func BenchmarkMarshalAdvertisement(b *testing.B) {
	a := v3(100, time.Second, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalAdvertisement(&a, nodeA, IPv4Group, ChecksumPseudoHeader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	p := mustHex("31 33 64 01 00 64 75 29 0a 4d 00 0a")
	var a Advertisement
	b.ReportAllocs()
	for b.Loop() {
		if err := a.UnmarshalBinary(p); err != nil {
			b.Fatal(err)
		}
		if _, err := VerifyChecksum(p, nodeA, IPv4Group); err != nil {
			b.Fatal(err)
		}
	}
}
