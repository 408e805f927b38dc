//go:build !linux

package sdnotify

import (
	"errors"
	"net"
)

// open fails off Linux: systemd's notify protocol exists only there.
func open() (*net.UnixConn, error) {
	return nil, errors.New("systemd notify is only available on Linux")
}
