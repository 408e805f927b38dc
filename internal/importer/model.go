package importer

import (
	"net/netip"
	"time"
)

// The output model: what the emitter writes as vipd TOML. Zero values mean
// "not written" (the vipd default applies) unless a field says otherwise.

type outConfig struct {
	// Shared is the [vrrp] table holding what every instance shares, when
	// there are several instances; with one instance it is nil and the
	// instance itself is written as [vrrp].
	Shared    *outShared
	Instances []*outInstance
	Nodes     []*outNode
	Tracks    []*outTrack
	Frontends []*outFrontend
	Backends  []*outBackend
	HTTP      *outHTTP
	Notify    *outNotify
	MaxConn   int
}

type outShared struct {
	Interface string
	Unicast   bool
}

type outInstance struct {
	Name      string
	VRID      int
	Interface string
	VIPs      []netip.Prefix
	bare      map[netip.Prefix]bool // written without a prefix length
	Version   int                   // 2 or 3; 3 is not written
	AuthPass  string
	Advert    time.Duration // always written: keepalived's default (1s) is not vipd's
	// Preempt is written when false.
	Preempt      bool
	PreemptDelay time.Duration
	Unicast      bool
	GARPRepeat   int
	GARPInterval time.Duration
	GARPRefresh  val[time.Duration]
	LowerRepeat  val[int]
	LowerDelay   val[time.Duration]
	// Priority lists per-node priorities that differ from the [[node]]
	// defaults, in node order.
	Priority []nodePrio
}

type nodePrio struct {
	Node     string
	Priority int
}

type outNode struct {
	Name      string
	Address   netip.Addr
	Priority  int
	Interface string
	ifacePos  Pos // where Interface came from
}

type outTrack struct {
	Name       string
	Type       string // "script", "interface", "backends"
	Weight     int
	Command    []string
	Interval   time.Duration
	Timeout    time.Duration
	Rise, Fall int
	Interface  string
	Frontend   string
	MinHealthy int
	// Instances, when set, limits the tracker to these instances.
	Instances []string
}

type outFrontend struct {
	Name           string
	Port           uint16
	Address        netip.Addr // fixed bind (single LB, or not a VIP)
	VIP            netip.Addr // the VIP it binds (several instances)
	Backend        string
	Balance        string
	MaxConn        int
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration

	// bind is the address HAProxy bound (unspecified for *).
	bind netip.Addr
	pos  Pos
}

type outBackend struct {
	Name          string
	Servers       []outServer
	Check         outCheck
	ProxyProtocol bool
	CloseOnDown   bool
	pos           Pos
}

type outServer struct {
	Name string
	Addr netip.AddrPort
}

type outCheck struct {
	Type         string
	Port         uint16
	Method       string
	Path         string
	ExpectStatus int
	Interval     time.Duration
	Timeout      time.Duration
	Rise, Fall   int
	CA, SNI      string
	ClientCert   string
	ClientKey    string
	Insecure     bool
}

type outHTTP struct {
	Listen string
	Users  []outUser
	Allow  []netip.Prefix
}

type outUser struct {
	Name string
	Hash string
}

type outNotify struct {
	Command []string
}
