package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// OS is the daemon's seam to the host: netlink, raw sockets, ARP. The
// zero value is filled with the real Linux implementations by New; unit
// tests pass fakes so the daemon's wiring runs without root.
type OS struct {
	Addrs        netcfg.Addresses
	NewAnnouncer func(ifname string) (netcfg.Announcer, error)
	ListenVRRP   func(cfg netcfg.VRRPConfig) (vrrp.Conn, error)
	WatchVIPs    func(ctx context.Context, ifname string, vips []netip.Prefix, removed func(netip.Prefix)) error
	WatchLink    func(ctx context.Context, ifname string, changed func(up bool)) error
	LocalAddrs   func() ([]netip.Addr, error)
	LinkLocal    func(ifname string) (netip.Addr, error)
	Burst        func(ctx context.Context, a netcfg.Announcer, vips []netip.Addr, count int, gap time.Duration) error
}

func (o *OS) fill() error {
	if o.Addrs == nil {
		a, err := netcfg.NewAddresses()
		if err != nil {
			return err
		}
		o.Addrs = a
	}
	if o.NewAnnouncer == nil {
		o.NewAnnouncer = netcfg.NewAnnouncer
	}
	if o.ListenVRRP == nil {
		o.ListenVRRP = func(cfg netcfg.VRRPConfig) (vrrp.Conn, error) {
			c, err := netcfg.ListenVRRP(cfg)
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	if o.WatchVIPs == nil {
		o.WatchVIPs = netcfg.WatchVIPs
	}
	if o.WatchLink == nil {
		o.WatchLink = netcfg.WatchLink
	}
	if o.LocalAddrs == nil {
		o.LocalAddrs = netcfg.LocalAddrs
	}
	if o.LinkLocal == nil {
		o.LinkLocal = netcfg.LinkLocal
	}
	if o.Burst == nil {
		o.Burst = netcfg.Burst
	}
	return nil
}
