//go:build !linux

package control

import (
	"errors"
	"net"
)

func peerOf(c *net.UnixConn) (peer, error) {
	return peer{}, errors.New("control: peer credentials are only available on Linux")
}
