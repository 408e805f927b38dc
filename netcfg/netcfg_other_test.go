//go:build !linux

package netcfg

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

// TestUnsupported: off Linux every operation on the host network stack
// fails saying so, and callers can tell with errors.ErrUnsupported.
func TestUnsupported(t *testing.T) {
	ctx := context.Background()
	var c VRRPConn
	calls := map[string]func() error{
		"NewAddresses": func() error { _, err := NewAddresses(); return err },
		"LinkLocal":    func() error { _, err := LinkLocal("eth0"); return err },
		"WatchVIPs":    func() error { return WatchVIPs(ctx, "eth0", nil, func(netip.Prefix) {}) },
		"WatchLink":    func() error { return WatchLink(ctx, "eth0", func(bool) {}) },
		"NewAnnouncer": func() error { _, err := NewAnnouncer("eth0"); return err },
		"ListenVRRP":   func() error { _, err := ListenVRRP(VRRPConfig{Interface: "eth0"}); return err },
		"Sysctls.Get":  func() error { _, err := NewSysctls().Get("net.ipv4.ip_forward"); return err },
		"Sysctls.Set":  func() error { return NewSysctls().Set("net.ipv4.ip_forward", "1") },
		"ReadFrom":     func() error { _, _, _, _, err := c.ReadFrom(nil); return err },
		"Send":         func() error { return c.Send(nil) },
		"WriteTo":      func() error { return c.WriteTo(nil, netip.MustParseAddr("10.0.0.1")) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "not supported on "+runtime.GOOS) {
			t.Errorf("%s = %v, want an error saying not supported on %s and wrapping errors.ErrUnsupported", name, err, runtime.GOOS)
		}
	}
}
