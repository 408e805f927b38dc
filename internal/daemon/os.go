package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/bgp"
	"github.com/vipd/vipd/internal/child"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/doctor"
	"github.com/vipd/vipd/internal/handoff"
	"github.com/vipd/vipd/internal/liveness"
	"github.com/vipd/vipd/internal/sdnotify"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/proxy"
	"github.com/vipd/vipd/vrrp"
)

// OS is the daemon's seam to the host: netlink, raw sockets, ARP and the
// proxy's sockets. The zero value is filled with the real Linux
// implementations by New; unit tests pass fakes so the daemon's wiring
// runs without root, in a synctest bubble.
type OS struct {
	Addrs         netcfg.Addresses
	NewAnnouncer  func(ifname string) (netcfg.Announcer, error)
	ListenVRRP    func(cfg netcfg.VRRPConfig) (vrrp.Conn, error)
	WatchVIPs     func(ctx context.Context, ifname string, vips []netip.Prefix, removed func(netip.Prefix)) error
	WatchLink     func(ctx context.Context, ifname string, changed func(up bool)) error
	LocalAddrs    func() ([]netip.Addr, error)
	LinkLocal     func(ifname string) (netip.Addr, error)
	Burst         func(ctx context.Context, a netcfg.Announcer, vips []netip.Addr, count int, gap time.Duration) error
	SetSysctl     func(name, value string) error
	NewProxy      func(cfg proxy.Config, log zerolog.Logger) (Proxy, error)
	ListenControl func(o control.SocketOptions) (net.Listener, error)
	// Probe connects to target once, as a client would (the drill's
	// probe), bounded by 100 ms.
	Probe func(ctx context.Context, target netip.AddrPort) error
	// NeighMAC is the link-layer address the neighbour table maps an
	// address to on an interface ("" for none): which host answered a
	// drill's probe.
	NeighMAC func(ifname string, addr netip.Addr) string
	// NewLiveness builds the liveness connections to the peers
	// (liveness.New over real sockets).
	NewLiveness func(cfg liveness.Config) Liveness
	// Doctor is vipd doctor's read-only look at the host, for the live
	// findings in status (interfaces, sysctls).
	Doctor doctor.Env
	// NewSpeaker builds the node's one BGP speaker (GoBGP runs one per
	// process).
	NewSpeaker func(cfg bgp.Config, log zerolog.Logger) (Speaker, error)
	// StartSuccessor starts the binary on disk for a hitless restart and
	// waits for its hello (handoff.Start, from a thread that passes the
	// unit's capabilities on).
	StartSuccessor func(ctx context.Context, s handoff.Spawn) (Successor, error)
	// ExportVRRP duplicates a VRRP socket's descriptor for the successor;
	// AdoptVRRP takes one up in the successor.
	ExportVRRP func(c vrrp.Conn) (*os.File, error)
	AdoptVRRP  func(f *os.File, cfg netcfg.VRRPConfig) (vrrp.Conn, error)
	// NotifyMainPID tells systemd (sd_notify MAINPID=) that pid is the
	// service's main process now; socket is $NOTIFY_SOCKET as the daemon
	// found it ("" outside systemd: nothing to do).
	NotifyMainPID func(socket string, pid int) error
}

// Liveness is what the daemon needs of the liveness connections
// (*liveness.Liveness).
type Liveness interface {
	Run(ctx context.Context) error
	Bye(reason string)
	Status() []liveness.PeerStatus
}

var _ Liveness = (*liveness.Liveness)(nil)

// Speaker is what the daemon needs of the BGP speaker (*bgp.Speaker).
type Speaker interface {
	Run(ctx context.Context) error
	Announce(prefix netip.Prefix, attrs bgp.Attrs) error
	Drain(prefix netip.Prefix, reason string) error
	Withdraw(prefix netip.Prefix, reason string) error
	Status() bgp.Status
	Changed() <-chan struct{}
}

var _ Speaker = (*bgp.Speaker)(nil)

// Proxy is what the daemon needs of the proxy (*proxy.Proxy).
type Proxy interface {
	Run(ctx context.Context) error
	Listen(frontends ...string) error
	Unlisten(frontends ...string)
	CloseConns(frontends ...string)
	CheckBinds() error
	Update(cfg proxy.Config) error
	// Hitless restart (proxy/handoff.go).
	Freeze(ctx context.Context) (*proxy.Handoff, []*os.File, error)
	Resume() error
	Abandon()
	Adopt(h *proxy.Handoff, files []*os.File) error
	CloseAdopted() int
	SetHealth(backend, server string, up bool)
	SetAdmin(backend, server string, a proxy.Admin) error
	SetDrainLeft(backend, server string, left time.Duration) error
	Status() proxy.Status
	Healthy(frontend string) int
}

var _ Proxy = (*proxy.Proxy)(nil)

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
	if o.SetSysctl == nil {
		o.SetSysctl = netcfg.NewSysctls().Set
	}
	if o.Probe == nil {
		o.Probe = func(ctx context.Context, target netip.AddrPort) error {
			c, err := (&net.Dialer{Timeout: probeTimeout}).DialContext(ctx, "tcp", target.String())
			if c != nil {
				c.Close()
			}
			return err
		}
	}
	if o.NeighMAC == nil {
		o.NeighMAC = netcfg.NeighMAC
	}
	if o.NewLiveness == nil {
		o.NewLiveness = func(cfg liveness.Config) Liveness { return liveness.New(cfg) }
	}
	if o.ListenControl == nil {
		o.ListenControl = control.Listen
	}
	if o.Doctor.Links == nil {
		o.Doctor = doctor.HostEnv()
	}
	if o.NewSpeaker == nil {
		o.NewSpeaker = func(cfg bgp.Config, log zerolog.Logger) (Speaker, error) { return bgp.New(cfg, log) }
	}
	if o.StartSuccessor == nil {
		o.StartSuccessor = func(ctx context.Context, s handoff.Spawn) (Successor, error) {
			var c *handoff.Child
			err := child.Successor(func() (err error) {
				c, err = handoff.Start(ctx, s)
				return err
			})
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	if o.ExportVRRP == nil {
		o.ExportVRRP = func(c vrrp.Conn) (*os.File, error) {
			fc, ok := c.(interface{ File() (*os.File, error) })
			if !ok {
				return nil, fmt.Errorf("a VRRP socket of type %T cannot be handed over", c)
			}
			return fc.File()
		}
	}
	if o.AdoptVRRP == nil {
		o.AdoptVRRP = func(f *os.File, cfg netcfg.VRRPConfig) (vrrp.Conn, error) {
			c, err := netcfg.VRRPConnFromFile(f, cfg)
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	if o.NotifyMainPID == nil {
		o.NotifyMainPID = func(socket string, pid int) error {
			if socket == "" {
				return nil
			}
			n, err := sdnotify.New(socket)
			if err != nil {
				return err
			}
			defer n.Close()
			return n.MainPID(pid)
		}
	}
	if o.NewProxy == nil {
		o.NewProxy = func(cfg proxy.Config, log zerolog.Logger) (Proxy, error) { return proxy.New(cfg, log) }
	}
	return nil
}
