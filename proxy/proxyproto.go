//go:build linux

package proxy

import (
	"encoding/binary"
	"net/netip"
)

// proxySig is the PROXY protocol v2 signature.
var proxySig = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// appendProxyHeaderV2 appends a PROXY protocol v2 header (command PROXY,
// transport STREAM) for a connection from src to dst. Both addresses IPv4
// gives family INET; otherwise both are written as IPv6 (IPv4 mapped).
func appendProxyHeaderV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, proxySig[:]...)
	b = append(b, 0x21) // version 2, command PROXY
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if sa.Is4() && da.Is4() {
		b = append(b, 0x11, 0, 12) // AF_INET, STREAM; 12 address bytes
		s4, d4 := sa.As4(), da.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x21, 0, 36) // AF_INET6, STREAM; 36 address bytes
		s16, d16 := sa.As16(), da.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
