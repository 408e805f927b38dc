//go:build linux

package netcfg

// What VRRPConn.ReadFrom makes of the kernel's control messages and of the
// IPv4 header a raw socket delivers. No root needed.

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	lenSize := unix.SizeofCmsghdr - 8 // cmsg_len is a size_t
	if lenSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(unix.CmsgLen(len(data))))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(unix.CmsgLen(len(data))))
	}
	binary.NativeEndian.PutUint32(b[lenSize:], uint32(int32(level)))
	binary.NativeEndian.PutUint32(b[lenSize+4:], uint32(int32(typ)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func cmsgInt(level, typ int, v int32) []byte {
	return cmsg(level, typ, binary.NativeEndian.AppendUint32(nil, uint32(v)))
}

func TestParseControl(t *testing.T) {
	a := netip.MustParseAddr
	pkt4 := unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: 3, Spec_dst: [4]byte{10, 0, 0, 1}, Addr: [4]byte{224, 0, 0, 18}})
	pkt6 := unix.PktInfo6(&unix.Inet6Pktinfo{Addr: a("ff02::12").As16(), Ifindex: 3})
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	tests := []struct {
		name    string
		oob     []byte
		wantDst netip.Addr
		wantTTL int
	}{
		{"ipv4 ttl and pktinfo", cat(cmsgInt(unix.IPPROTO_IP, unix.IP_TTL, 255), pkt4), a("224.0.0.18"), 255},
		// The header's destination (ipi_addr), not the local address
		// the kernel would answer from (ipi_spec_dst).
		{"ipv4 pktinfo first, ttl 64", cat(pkt4, cmsgInt(unix.IPPROTO_IP, unix.IP_TTL, 64)), a("224.0.0.18"), 64},
		// The case ReadFrom must not report as TTL 0: the runner
		// would then drop a unicast advert for a TTL nobody measured.
		{"ipv4 no ttl", pkt4, a("224.0.0.18"), -1},
		{"ipv4 ttl 0 reported", cmsgInt(unix.IPPROTO_IP, unix.IP_TTL, 0), netip.Addr{}, 0},
		{"ipv6 hop limit and pktinfo", cat(pkt6, cmsgInt(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, 255)), a("ff02::12"), 255},
		{"ipv6 no hop limit", pkt6, a("ff02::12"), -1},
		{"no control messages", nil, netip.Addr{}, -1},
		{"out of range ttl", cmsgInt(unix.IPPROTO_IP, unix.IP_TTL, 256), netip.Addr{}, -1},
		{"negative ttl", cmsgInt(unix.IPPROTO_IP, unix.IP_TTL, -1), netip.Addr{}, -1},
		{"short ttl", cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64}), netip.Addr{}, -1},
		{"short pktinfo", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, make([]byte, 8)), netip.Addr{}, -1},
		{"other level", cmsgInt(unix.SOL_SOCKET, unix.IP_TTL, 64), netip.Addr{}, -1},
		{"truncated", cmsgInt(unix.IPPROTO_IP, unix.IP_TTL, 64)[:unix.SizeofCmsghdr+2], netip.Addr{}, -1},
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, netip.Addr{}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, ttl := parseControl(tt.oob)
			if dst != tt.wantDst || ttl != tt.wantTTL {
				t.Errorf("parseControl = %v, %d; want %v, %d", dst, ttl, tt.wantDst, tt.wantTTL)
			}
		})
	}
}

// TestParseControlKernel parses control messages the kernel built: a UDP
// datagram sent over loopback with TTL 64, received on sockets that asked
// for TTL and destination, for the destination only, and for nothing. The
// IP-level messages are the same on a UDP and a raw socket.
func TestParseControlKernel(t *testing.T) {
	tests := []struct {
		network, addr  string
		level          int
		ttlOpt, dstOpt int
		setTTL         func(fd int) error
		wantDst        netip.Addr
	}{
		{network: "udp4", addr: "127.0.0.1:0", level: unix.IPPROTO_IP, ttlOpt: unix.IP_RECVTTL, dstOpt: unix.IP_PKTINFO,
			setTTL:  func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, 64) },
			wantDst: netip.MustParseAddr("127.0.0.1")},
		{network: "udp6", addr: "[::1]:0", level: unix.IPPROTO_IPV6, ttlOpt: unix.IPV6_RECVHOPLIMIT, dstOpt: unix.IPV6_RECVPKTINFO,
			setTTL:  func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 64) },
			wantDst: netip.IPv6Loopback()},
	}
	for _, tt := range tests {
		for _, mode := range []struct {
			name           string
			recvTTL, recvD bool
			wantTTL        int
			wantDst        bool
		}{
			{"ttl and destination", true, true, 64, true},
			{"destination only", false, true, -1, true},
			{"nothing", false, false, -1, false},
		} {
			t.Run(tt.network+"/"+mode.name, func(t *testing.T) {
				rx, err := net.ListenPacket(tt.network, tt.addr)
				if err != nil {
					t.Skipf("SKIP: no %s loopback: %v", tt.network, err)
				}
				defer rx.Close()
				setOpts(t, rx.(*net.UDPConn), func(fd int) error {
					if err := unix.SetsockoptInt(fd, tt.level, tt.ttlOpt, b2i(mode.recvTTL)); err != nil {
						return err
					}
					return unix.SetsockoptInt(fd, tt.level, tt.dstOpt, b2i(mode.recvD))
				})
				tx, err := net.DialUDP(tt.network, nil, rx.LocalAddr().(*net.UDPAddr))
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Close()
				setOpts(t, tx, tt.setTTL)
				if _, err := tx.Write([]byte("x")); err != nil {
					t.Fatal(err)
				}
				if err := rx.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
					t.Fatal(err)
				}
				oob := make([]byte, oobLen)
				_, oobn, _, _, err := rx.(*net.UDPConn).ReadMsgUDP(make([]byte, 16), oob)
				if err != nil {
					t.Fatal(err)
				}
				dst, ttl := parseControl(oob[:oobn])
				want := netip.Addr{}
				if mode.wantDst {
					want = tt.wantDst
				}
				if dst != want || ttl != mode.wantTTL {
					t.Errorf("parseControl = %v, %d; want %v, %d", dst, ttl, want, mode.wantTTL)
				}
			})
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func setOpts(t *testing.T, c syscall.Conn, set func(fd int) error) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = set(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}

func TestIPv4Payload(t *testing.T) {
	hdr := func(ihl byte, payload string) []byte {
		b := make([]byte, int(ihl)*4)
		b[0] = 0x40 | ihl
		return append(b, payload...)
	}
	tests := []struct {
		name string
		pkt  []byte
		want string
	}{
		{"20-byte header", hdr(5, "vrrp"), "vrrp"},
		{"header with options", hdr(6, "vrrp"), "vrrp"},
		{"header only", hdr(5, ""), ""},
		{"short", []byte{0x45, 0}, ""},
		{"ihl below 5", append([]byte{0x44}, make([]byte, 30)...), ""},
		{"ihl beyond the packet", append([]byte{0x4f}, make([]byte, 39)...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(ipv4Payload(tt.pkt)); got != tt.want {
				t.Errorf("ipv4Payload = %q, want %q", got, tt.want)
			}
		})
	}
}
