package sdnotify

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// open makes an unbound, unconnected datagram socket: every message names
// its destination, so the socket survives systemd re-creating the path
// (daemon-reexec) and needs no reconnect.
func open() (*net.UnixConn, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "sd-notify")
	defer f.Close() // FilePacketConn holds a dup
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := pc.(*net.UnixConn)
	if !ok {
		pc.Close()
		return nil, errors.New("not a unix socket")
	}
	return uc, nil
}
