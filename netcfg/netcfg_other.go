//go:build !linux

package netcfg

// The stubs for every operating system but Linux: the module builds on a
// laptop, and every operation that needs the host's network stack fails
// with an error that says so and wraps errors.ErrUnsupported.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"
)

// errUnsupported is the cause of every stub's error: "not supported on
// darwin (vipd's host networking is Linux only)".
type errUnsupported struct{}

func (errUnsupported) Error() string {
	return "not supported on " + runtime.GOOS + " (vipd's host networking is Linux only)"
}

func (errUnsupported) Is(target error) bool { return target == errors.ErrUnsupported }

// NewAddresses is only implemented on Linux.
func NewAddresses() (Addresses, error) {
	return nil, fmt.Errorf("netcfg: addresses: %w", errUnsupported{})
}

// LinkLocal is only implemented on Linux.
func LinkLocal(ifname string) (netip.Addr, error) {
	return netip.Addr{}, fmt.Errorf("netcfg: link-local address of %s: %w", ifname, errUnsupported{})
}

// WatchVIPs is only implemented on Linux.
func WatchVIPs(ctx context.Context, ifname string, vips []netip.Prefix, removed func(netip.Prefix)) error {
	return fmt.Errorf("netcfg: watch addresses on %s: %w", ifname, errUnsupported{})
}

// WatchLink is only implemented on Linux.
func WatchLink(ctx context.Context, ifname string, changed func(up bool)) error {
	return fmt.Errorf("netcfg: watch link %s: %w", ifname, errUnsupported{})
}

// NewAnnouncer is only implemented on Linux; NewAnnouncerConn works
// everywhere.
func NewAnnouncer(ifname string) (Announcer, error) {
	return nil, fmt.Errorf("netcfg: announcer on %s: %w", ifname, errUnsupported{})
}

// NewSysctls returns Sysctls that fail: there is no /proc/sys.
func NewSysctls() Sysctls { return noSysctls{} }

type noSysctls struct{}

func (noSysctls) Get(name string) (string, error) {
	return "", fmt.Errorf("netcfg: sysctl get %s: %w", name, errUnsupported{})
}

func (noSysctls) Set(name, value string) error {
	return fmt.Errorf("netcfg: sysctl set %s=%s: %w", name, value, errUnsupported{})
}

// ListenVRRP is only implemented on Linux.
func ListenVRRP(cfg VRRPConfig) (*VRRPConn, error) {
	return nil, fmt.Errorf("netcfg: listen vrrp on %s: %w", cfg.Interface, errUnsupported{})
}

// VRRPConn is the VRRP socket; ListenVRRP never returns one off Linux, and
// every method of the zero value fails.
type VRRPConn struct{}

// ReadFrom is only implemented on Linux.
func (*VRRPConn) ReadFrom(b []byte) (n int, src, dst netip.Addr, ttl int, err error) {
	return 0, netip.Addr{}, netip.Addr{}, -1, fmt.Errorf("netcfg: vrrp read: %w", errUnsupported{})
}

// Send is only implemented on Linux.
func (*VRRPConn) Send(payload []byte) error {
	return fmt.Errorf("netcfg: vrrp send: %w", errUnsupported{})
}

// WriteTo is only implemented on Linux.
func (*VRRPConn) WriteTo(payload []byte, dst netip.Addr) error {
	return fmt.Errorf("netcfg: vrrp send to %s: %w", dst, errUnsupported{})
}

// SetReadDeadline is only implemented on Linux.
func (*VRRPConn) SetReadDeadline(t time.Time) error {
	return fmt.Errorf("netcfg: vrrp set deadline: %w", errUnsupported{})
}

// Close does nothing: there is no socket.
func (*VRRPConn) Close() error { return nil }

// NeighMAC is only implemented on Linux; elsewhere it knows no neighbour.
func NeighMAC(ifname string, addr netip.Addr) string { return "" }

// Probe is only implemented on Linux.
func Probe(ctx context.Context, cfg ProbeConfig) ([]Claim, error) {
	return nil, fmt.Errorf("netcfg: probe on %s: %w", cfg.Interface, errUnsupported{})
}

// File is only implemented on Linux.
func (*VRRPConn) File() (*os.File, error) {
	return nil, fmt.Errorf("netcfg: vrrp socket: %w", errUnsupported{})
}

// VRRPConnFromFile is only implemented on Linux.
func VRRPConnFromFile(f *os.File, cfg VRRPConfig) (*VRRPConn, error) {
	return nil, fmt.Errorf("netcfg: vrrp socket on %s: %w", cfg.Interface, errUnsupported{})
}
