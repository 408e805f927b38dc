package daemon

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// freebind lets a socket bind an address that is not (yet) local.
func freebind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
