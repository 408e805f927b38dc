package liveness

import (
	"net"

	"golang.org/x/sys/unix"
)

// setUserTimeout makes the kernel end a connection whose data stays
// unacknowledged for userTimeout (a dead host): an ETIMEDOUT, never taken
// for a crash.
func setUserTimeout(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout.Milliseconds()))
	})
}
