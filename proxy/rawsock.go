//go:build linux

package proxy

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw accept4 and connect: x/sys/unix's wrappers allocate a Sockaddr per
// call and Accept4 adds a getsockopt(SO_PROTOCOL) to build it; the proxy
// only needs the peer's address, and a server's sockaddr never changes.
// Both are made with RawSyscall on non-blocking sockets (see sys.go).

// rawSockaddr is a prebuilt sockaddr_in or sockaddr_in6.
type rawSockaddr struct {
	buf    unix.RawSockaddrInet6 // large enough for both
	len    uint32
	family int
}

func newRawSockaddr(ap netip.AddrPort) rawSockaddr {
	var r rawSockaddr
	a := ap.Addr().Unmap()
	if a.Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.buf))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = a.As4()
		r.len, r.family = unix.SizeofSockaddrInet4, unix.AF_INET
		return r
	}
	r.buf.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&r.buf.Port))[:], ap.Port())
	r.buf.Addr = a.As16()
	r.len, r.family = unix.SizeofSockaddrInet6, unix.AF_INET6
	return r
}

// connectRaw starts a connect of fd to sa.
func connectRaw(fd int, sa *rawSockaddr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.buf)), uintptr(sa.len))
	if e != 0 {
		return e
	}
	return nil
}

// accept4 accepts a non-blocking, close-on-exec connection from the
// listening fd and returns it with the peer's address.
func accept4(fd int) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	l := uint32(unix.SizeofSockaddrAny)
	nfd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&l)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(nfd), rawToAddrPort(&rsa), nil
}

func rawToAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}
