package vrrp

import (
	"bytes"
	"net/netip"
	"testing"
)

// fuzzAddrPairs exercise every checksum path on whatever the fuzzer decodes:
// IPv4 multicast and unicast, IPv4-mapped, IPv6, mixed and missing addresses.
var fuzzAddrPairs = [][2]netip.Addr{
	{nodeA, IPv4Group},
	{nodeB, nodeA},
	{netip.AddrFrom16(nodeA.As16()), IPv4Group},
	{ipv6Src, IPv6Group},
	{nodeA, IPv6Group},
	{{}, {}},
}

// FuzzUnmarshal feeds arbitrary payloads to the decoder, as a hostile or
// broken peer on the segment could. The seed corpus in
// testdata/fuzz/FuzzUnmarshal holds the keepalived frames, the IPv6 vector
// and the error cases of TestUnmarshalErrors.
//
// Properties: nothing panics; every error maps to a known drop reason; and
// a packet that decodes re-encodes to the same bytes, except the VRRPv3
// reserved bits, which RFC 9568 section 5.2.6 says to ignore and send as
// zero. The last property means the decoder accepts nothing it could not
// have produced, so there is no second meaning hiding in a packet.
func FuzzUnmarshal(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range fuzzAddrPairs {
			mode, err := VerifyChecksum(b, p[0], p[1])
			if err == nil && mode != ChecksumPseudoHeader && mode != ChecksumMessage {
				t.Fatalf("VerifyChecksum returned mode %v and no error", mode)
			}
			_ = Checksum(b, p[0], p[1], ChecksumPseudoHeader)
			_ = Checksum(b, p[0], p[1], ChecksumMessage)
		}

		var a Advertisement
		if err := a.UnmarshalBinary(b); err != nil {
			if r := Reason(err); r == DropOther || r == "" {
				t.Fatalf("UnmarshalBinary error %v maps to drop reason %q", err, r)
			}
			return
		}
		got, err := a.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %+v but MarshalBinary failed: %v", a, err)
		}
		want := bytes.Clone(b)
		if a.Version == 3 {
			want[4] &= 0x0f // reserved bits
		}
		if !bytes.Equal(want, got) {
			t.Fatalf("re-encoding changed the packet:\n in: % x\nout: % x", want, got)
		}
		// A decoded advert re-encodes with a checksum that verifies.
		for _, p := range fuzzAddrPairs[:4] {
			enc, err := MarshalAdvertisement(&a, p[0], p[1], ChecksumPseudoHeader)
			if err != nil {
				t.Fatalf("MarshalAdvertisement: %v", err)
			}
			if _, err := VerifyChecksum(enc, p[0], p[1]); err != nil {
				t.Fatalf("MarshalAdvertisement from %v to %v does not verify: %v", p[0], p[1], err)
			}
		}
	})
}
