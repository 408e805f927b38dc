//go:build !linux

package daemon

import "syscall"

func freebind(network, address string, c syscall.RawConn) error { return nil }
