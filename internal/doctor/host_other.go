//go:build !linux

package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"

	"github.com/vipd/vipd/netcfg"
)

// HostEnv fails every look at the host: vipd's host networking is Linux
// only.
func HostEnv() Env {
	err := fmt.Errorf("not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
	return Env{
		Links:       func() ([]Link, error) { return nil, err },
		RouteIf:     func(netip.Addr) (string, error) { return "", err },
		Sysctl:      func(string) (string, error) { return "", err },
		Command:     func(context.Context, string, ...string) ([]byte, error) { return nil, err },
		Stat:        func(string) (FileInfo, error) { return FileInfo{}, err },
		LookupGroup: func(string) (int, error) { return 0, err },
		LookupUser:  func(string) (int, []int, error) { return 0, nil, err },
		ListenVRRP:  func(string, bool) (PacketSource, error) { return nil, err },
		ListenUDP:   func(uint16, bool) (PacketSource, error) { return nil, err },
		Probe:       netcfg.Probe,
	}
}
