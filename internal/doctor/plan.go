package doctor

import (
	"context"
	"net/netip"
	"os"
	"time"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// Plan is what doctor checks on one node. package daemon builds it from the
// config file with the mappings the daemon runs with (daemon.DoctorPlan).
type Plan struct {
	ConfigPath string
	// Node is this node; Nodes every [[node]], this one included.
	Node  Node
	Nodes []Node
	// Instances are the VRRP instances; none in single-LB mode.
	Instances []Instance
	// StatusPort is the UDP port of the status beacons; 0 when off.
	StatusPort uint16
	// Servers are the backend servers with a configured check.
	Servers []Server
	// CheckBinds looks for what would keep the frontends from listening,
	// without binding anything (proxy.(*Proxy).CheckBinds): a
	// *proxy.BindError per frontend address, joined.
	CheckBinds func() error
	// Frontends name each frontend's addresses, for the listener check.
	Frontends []Frontend
	// Socket, SocketGroup: the [control] socket and its group.
	Socket      string
	SocketGroup string
	// Secrets names what in the config file must not be world-readable
	// ("[[http.user]] password hashes", "auth_pass").
	Secrets []string
	// Warnings are `vipd check`'s warnings for the file.
	Warnings []string
	// Beacon decodes a status beacon; ok is false for anything else.
	Beacon func(b []byte) (Beacon, bool)
	// Running is the status of the vipd running on this node, nil when
	// none answers on its control socket.
	Running *control.Status
}

// Node is a [[node]].
type Node struct {
	Name string
	Addr netip.Addr
}

// Instance is one VRRP instance as this node runs it.
type Instance struct {
	Name      string
	VRID      uint8
	Interface string
	VIPs      []netip.Prefix
	// Receive is the runner's configuration: doctor judges what it hears
	// with vrrp.NewChecker(Receive), as the running instance does.
	Receive vrrp.RunnerConfig
}

// IPv6 reports whether the instance runs over IPv6.
func (in Instance) IPv6() bool { return len(in.VIPs) > 0 && in.VIPs[0].Addr().Is6() }

// Server is one backend server and the probe the daemon would run.
type Server struct {
	Backend, Name string
	Addr          netip.AddrPort
	Check         string // tcp, tls, http, https
	Timeout       time.Duration
	Probe         health.Probe
}

// Frontend is one [[frontend]] and what it binds.
type Frontend struct {
	Name  string
	Binds []netip.AddrPort
}

// Beacon is what doctor reads from another node's status beacon.
type Beacon struct {
	Node string
	// Masters are the VRIDs the sender is MASTER of.
	Masters []uint8
}

// Env is doctor's access to the host: the real one on Linux (HostEnv), a
// fake in tests. Every field is used read-only, except that the listeners
// open sockets (receive only) and Probe sends probes.
type Env struct {
	// Links lists the host's interfaces and their addresses.
	Links func() ([]Link, error)
	// RouteIf names the interface the route to dst leaves by.
	RouteIf func(dst netip.Addr) (string, error)
	// Sysctl reads a kernel parameter ("net/ipv4/conf/eth0/rp_filter").
	Sysctl func(name string) (string, error)
	// Command runs a program (nft, iptables-save) and returns its stdout;
	// an error wrapping ErrNotInstalled when it is not installed.
	Command func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Stat describes a file; os.ErrNotExist when it is missing.
	Stat func(path string) (FileInfo, error)
	// LookupGroup and LookupUser resolve names; an error when unknown.
	LookupGroup func(name string) (gid int, err error)
	LookupUser  func(name string) (uid int, gids []int, err error)
	// ListenVRRP opens a receive-only VRRP socket on ifname that also
	// joins the group, so foreign routers heard by multicast show even in
	// unicast mode.
	ListenVRRP func(ifname string, ipv6 bool) (PacketSource, error)
	// ListenUDP opens a receive-only socket that sees copies of the UDP
	// datagrams to port on this host without binding it (a raw socket):
	// the status beacons, whether or not vipd runs here.
	ListenUDP func(port uint16, ipv6 bool) (PacketSource, error)
	// Probe asks who holds addresses (netcfg.Probe).
	Probe func(ctx context.Context, cfg netcfg.ProbeConfig) ([]netcfg.Claim, error)
}

// PacketSource is a receive-only socket; for ListenUDP the payload is the
// datagram's, and dst, ttl are not reported.
type PacketSource interface {
	ReadFrom(b []byte) (n int, src, dst netip.Addr, ttl int, err error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// Link is one interface.
type Link struct {
	Name string
	// AdminUp is IFF_UP; OperUp the operational state (carrier).
	AdminUp, OperUp bool
	Addrs           []Addr
}

// Addr is an address on a link.
type Addr struct {
	Prefix    netip.Prefix
	Tentative bool // IPv6 duplicate address detection in progress
	DADFailed bool // IPv6 duplicate address detection found another holder
}

// FileInfo is what the files check needs of a file.
type FileInfo struct {
	Mode     os.FileMode
	UID, GID int
}
