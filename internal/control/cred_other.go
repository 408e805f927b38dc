//go:build !linux

package control

import (
	"errors"
	"net"
	"syscall"
)

func peerCred(c *net.UnixConn) (*syscall.Ucred, error) {
	return nil, errors.New("control: peer credentials are only available on Linux")
}
