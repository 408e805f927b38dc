//go:build !linux

package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// NewAddresses is only implemented on Linux.
func NewAddresses() (Addresses, error) {
	return nil, fmt.Errorf("netcfg: addresses: %w", errors.ErrUnsupported)
}

// WatchVIPs is only implemented on Linux.
func WatchVIPs(ctx context.Context, ifname string, vips []netip.Prefix, removed func(netip.Prefix)) error {
	return fmt.Errorf("netcfg: watch addresses on %s: %w", ifname, errors.ErrUnsupported)
}

// WatchLink is only implemented on Linux.
func WatchLink(ctx context.Context, ifname string, changed func(up bool)) error {
	return fmt.Errorf("netcfg: watch link %s: %w", ifname, errors.ErrUnsupported)
}

// NewAnnouncer is only implemented on Linux; NewAnnouncerConn works
// everywhere.
func NewAnnouncer(ifname string) (Announcer, error) {
	return nil, fmt.Errorf("netcfg: announcer on %s: %w", ifname, errors.ErrUnsupported)
}

// ListenVRRP is only implemented on Linux.
func ListenVRRP(cfg VRRPConfig) (*VRRPConn, error) {
	return nil, fmt.Errorf("netcfg: listen vrrp on %s: %w", cfg.Interface, errors.ErrUnsupported)
}

// LinkLocal is only implemented on Linux.
func LinkLocal(ifname string) (netip.Addr, error) {
	return netip.Addr{}, fmt.Errorf("netcfg: link-local address of %s: %w", ifname, errors.ErrUnsupported)
}
