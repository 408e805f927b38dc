package control

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerOf reads the peer's credentials and supplementary groups as the
// kernel recorded them when the peer connected (SO_PEERCRED,
// SO_PEERGROUPS): nothing is read from /proc after the fact, so the answer
// cannot race with the peer exiting, and ProtectProc=invisible is fine.
func peerOf(c *net.UnixConn) (peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var p peer
	var serr error
	if err := rc.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr != nil {
			return
		}
		p.cred = &peerCred{Pid: cred.Pid, Uid: cred.Uid, Gid: cred.Gid}
		p.groups, serr = peerGroups(int(fd))
	}); err != nil {
		return peer{}, err
	}
	return p, serr
}

// peerGroups reads SO_PEERGROUPS: an array of gid_t, grown when the
// kernel answers ERANGE with the size it needs.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 32)
	for range 4 {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch e {
		case 0:
			return buf[:n/4], nil
		case unix.ERANGE:
			buf = make([]uint32, n/4+1)
			continue
		}
		return nil, e
	}
	return nil, unix.ERANGE
}
