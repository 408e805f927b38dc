package config

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is a parsed, defaulted and validated vipd configuration file.
//
// A Config built by Parse also remembers file positions for its warnings;
// compare Configs with cmpopts.IgnoreUnexported(Config{}).
type Config struct {
	// Path is the file the configuration was read from, as given to Parse.
	Path string
	// VRRP is what the VRRP instances share; nil means single-LB mode (no
	// election): every frontend then needs an address and always listens.
	VRRP *VRRP
	// Instances are the VRRP virtual routers: one from a [vrrp] table with a
	// vrid, or one per [[instance]]. Empty exactly when VRRP is nil.
	Instances []Instance
	Nodes     []Node
	Tracks    []Track
	Frontends []Frontend
	Backends  []Backend
	Control   Control
	// HTTP is the status page and metrics listener; nil when there is no
	// [http] table.
	HTTP *HTTP
	// Notify runs a command on each VRRP transition; nil when there is no
	// [notify] table.
	Notify *Notify
	Log    Log
	Global Global
	// BGP announces VIPs to routers; nil when there is no [bgp] table.
	BGP *BGP

	// warnings found while parsing, already prefixed with file:line.
	warnings []string
	// multi is set when the instances come from [[instance]] tables.
	multi bool
}

// VRRP holds what every VRRP instance of the node shares.
type VRRP struct {
	// StatusPort is the UDP port of the status beacons vipd nodes send each
	// other (status page, drill safety); 0 turns them off. They never
	// influence the election.
	StatusPort uint16
	// LivenessPort is the port (TCP, and UDP for the confirmation) of the
	// liveness connections between vipd nodes, which let a backup take
	// over within milliseconds when the master's vipd process dies while
	// its host lives (internal/liveness); 0 turns them off.
	LivenessPort uint16
}

// VRRP versions.
const (
	VRRPv2 = 2 // RFC 3768: IPv4, whole-second intervals, optional PASS auth
	VRRPv3 = 3 // RFC 9568 (the default)
)

// Instance is one VRRP virtual router: the [vrrp] table when it has a vrid,
// or one [[instance]] table (which takes its defaults from [vrrp]).
type Instance struct {
	// Name names the instance in status, logs and notify hooks; "vrid-51"
	// for a [vrrp] table without a name.
	Name string
	// VRID is the virtual router ID, 1..255, unique per L2 segment and family.
	VRID uint8
	// Version is VRRPv3 (default) or VRRPv2 (for a rolling migration from a
	// keepalived running vrrp_version 2).
	Version int
	// AuthPass is VRRPv2's simple text password (keepalived's auth_type
	// PASS), 1..8 bytes; empty means no authentication. It is not security
	// (RFC 3768 section 10): it keeps a misconfigured router out, nothing more.
	AuthPass string
	// Interface carries the adverts and the VIPs; see InterfaceFor.
	Interface string
	// PinnedInterface is set when the [[instance]] names its own interface:
	// a [[node]] interface then does not override it.
	PinnedInterface bool
	// VIPs are the virtual addresses; a bare address means a /32 (/128).
	// The address bits are kept as written ("192.168.30.30/24" stays so).
	VIPs []netip.Prefix
	// AdvertInterval is 10ms..40.95s in steps of 10ms (VRRPv3: the packet
	// carries 12-bit centiseconds) or 1s..255s in whole seconds (VRRPv2).
	// Default 200ms; 1s with Preset "keepalived" or Version 2.
	AdvertInterval time.Duration
	// Preempt lets a higher priority node take the VIP back. Default true.
	Preempt bool
	// PreemptDelay holds back preemption after start-up. Default 0.
	PreemptDelay time.Duration
	// Checksum is the VRRPv3 IPv4 transmit form: "pseudo-header" (default,
	// keepalived-compatible) or "rfc9568" (message only).
	Checksum string
	// Unicast sends adverts to the other nodes' addresses instead of the
	// multicast group, and accepts adverts only from them.
	Unicast bool
	// GARPRepeat is the number of rounds in the burst on becoming MASTER.
	// Default 5.
	GARPRepeat int
	// GARPInterval is the gap between rounds of the burst. Default 100ms.
	GARPInterval time.Duration
	// GARPRefresh is the period of the refresh while MASTER; 0 turns it off.
	// Default 60s.
	GARPRefresh time.Duration
	// GARPLowerPrioRepeat and GARPLowerPrioDelay rate-limit the GARP burst a
	// MASTER sends when it hears a lower priority advert (keepalived's
	// vrrp_garp_lower_prio_repeat and _delay): at most one burst of
	// GARPLowerPrioRepeat rounds per GARPLowerPrioDelay. Defaults 1 and 1s:
	// a peer that cannot hear us gets at most one gratuitous ARP round a
	// second (instead of a burst per advert), which still corrects its
	// takeover burst within a second.
	GARPLowerPrioRepeat int
	GARPLowerPrioDelay  time.Duration
	// StartupHold keeps a starting node from preempting until its health
	// checks completed one round. Default true.
	StartupHold bool
	// StartupInterval is the advert interval a starting node assumes
	// until it hears an advert (default 1s, keepalived's): a 200 ms node
	// beside a 1 s peer must not time out before the peer's first advert.
	// 0 means AdvertInterval.
	StartupInterval time.Duration
	// Preset is "" or "keepalived" (advert_interval 1s unless set).
	Preset string
	// Priorities are per-node priorities by node name (the priority table);
	// a node without an entry uses its [[node]] priority.
	Priorities map[string]uint8
}

// PriorityOf is n's priority in this instance.
func (in *Instance) PriorityOf(n *Node) uint8 {
	if p, ok := in.Priorities[n.Name]; ok {
		return p
	}
	return n.Priority
}

// InterfaceFor is the link this instance uses on node n: the instance's own
// interface when the [[instance]] names one, else the node's interface,
// else the [vrrp] one.
func (in *Instance) InterfaceFor(n *Node) string {
	if n != nil && n.Interface != "" && !in.PinnedInterface {
		return n.Interface
	}
	return in.Interface
}

// Owns reports whether the VIP p is node n's own address in this instance:
// the address owner (priority 255) whose real address is the VIP. vipd
// never adds or removes such an address.
func (in *Instance) Owns(n *Node, p netip.Prefix) bool {
	return in.PriorityOf(n) == 255 && n.Address.IsValid() && p.Addr() == n.Address
}

// Instance returns the instance named name, or nil.
func (c *Config) Instance(name string) *Instance {
	for i := range c.Instances {
		if c.Instances[i].Name == name {
			return &c.Instances[i]
		}
	}
	return nil
}

// InstanceOf returns the instance whose VIPs frontend f binds, or nil for a
// frontend with a fixed address, a frontend that follows a [bgp] VIP
// (BGPVIPOf), or without VRRP.
func (c *Config) InstanceOf(f Frontend) *Instance {
	if f.Address.IsValid() {
		return nil
	}
	if f.VIP.IsValid() {
		for i := range c.Instances {
			for _, p := range c.Instances[i].VIPs {
				if p.Addr() == f.VIP {
					return &c.Instances[i]
				}
			}
		}
		return nil
	}
	if len(c.Instances) == 1 {
		return &c.Instances[0]
	}
	return nil
}

// BGPVIPOf returns the [bgp] VIP frontend f binds (its vip), and whether
// it has one. Such a frontend follows BGP: it listens exactly while that
// VIP is announced.
func (c *Config) BGPVIPOf(f Frontend) (netip.Addr, bool) {
	if c.BGP == nil || !f.VIP.IsValid() || f.Address.IsValid() || !c.BGP.Has(f.VIP) {
		return netip.Addr{}, false
	}
	return f.VIP, true
}

// Binds are the addresses frontend f listens on: its fixed address, its
// vip (of a VRRP instance or of [bgp]), or every VIP of its instance.
func (c *Config) Binds(f Frontend) []netip.AddrPort {
	switch {
	case f.Address.IsValid():
		return []netip.AddrPort{netip.AddrPortFrom(f.Address, f.Port)}
	case f.VIP.IsValid():
		return []netip.AddrPort{netip.AddrPortFrom(f.VIP, f.Port)}
	}
	in := c.InstanceOf(f)
	if in == nil {
		return nil
	}
	out := make([]netip.AddrPort, 0, len(in.VIPs))
	for _, p := range in.VIPs {
		out = append(out, netip.AddrPortFrom(p.Addr(), f.Port))
	}
	return out
}

// Node is one [[node]]: a host taking part in the election.
type Node struct {
	Name    string
	Address netip.Addr
	// Priority is 1..255; 255 is the address owner. Default 100.
	Priority uint8
	// Interface overrides [vrrp] interface on this node when not empty (and
	// the interface of every [[instance]] that does not name its own).
	Interface string
}

// Track types.
const (
	TrackScript    = "script"
	TrackInterface = "interface"
	TrackBackends  = "backends"
)

// Track is one [[track]]: something that adjusts the priority with
// keepalived weight semantics.
type Track struct {
	Name string
	// Type is TrackScript, TrackInterface or TrackBackends.
	Type string
	// Weight is -254..254; 0 (the default) puts the instance in FAULT when
	// the tracker fails.
	Weight int

	// Command is the argv of a script tracker (no shell).
	Command []string
	// Interval, Timeout, Rise and Fall drive a script tracker; defaults
	// 2s, 1s, 2, 2.
	Interval, Timeout time.Duration
	Rise, Fall        int

	// Interface is the link an interface tracker watches.
	Interface string

	// Frontend names the frontend a backends tracker watches: the tracker
	// fails when fewer than MinHealthy (default 1) of its backend's servers
	// are healthy.
	Frontend   string
	MinHealthy int

	// Instances names the VRRP instances whose priority the tracker moves;
	// empty means every instance.
	Instances []string
}

// Applies reports whether the tracker moves the priority of instance name.
func (t *Track) Applies(name string) bool {
	return len(t.Instances) == 0 || slices.Contains(t.Instances, name)
}

// Balance algorithms.
const (
	BalanceLeastConn  = "leastconn"
	BalanceRoundRobin = "roundrobin"
	BalanceSource     = "source"
)

// Frontend is one [[frontend]]: a TCP listener.
type Frontend struct {
	Name    string
	Port    uint16
	Backend string
	// Balance is BalanceLeastConn (default), BalanceRoundRobin or
	// BalanceSource.
	Balance string
	// Address, when valid, is bound instead of the VIPs. Required without
	// [vrrp].
	Address netip.Addr
	// VIP, when valid, is the one VIP the frontend binds; it selects the
	// instance the frontend follows. Required with several instances.
	VIP netip.Addr
	// MaxConn limits concurrent connections; 0 is unlimited.
	MaxConn int
	// ConnectTimeout bounds the dial to a server. Default 5s.
	ConnectTimeout time.Duration
	// IdleTimeout closes a tunnel idle that long; 0 (default) never does.
	IdleTimeout time.Duration
}

// Backend is one [[backend]]: a pool of servers with one health check.
type Backend struct {
	Name    string
	Servers []Server
	Check   Check
	// DrainTimeout is how long a draining server keeps its connections
	// (deregistration delay). Key drain_timeout, default 30s.
	DrainTimeout time.Duration
	// ProxyProtocol sends a PROXY protocol v2 header. Default false.
	ProxyProtocol bool
	// CloseOnDown closes a server's connections when it goes DOWN.
	CloseOnDown bool
}

// Server is one backend server. Name defaults to the host part of Addr.
type Server struct {
	Name string
	Addr netip.AddrPort
}

// Check types.
const (
	CheckTCP   = "tcp"
	CheckTLS   = "tls"
	CheckHTTP  = "http"
	CheckHTTPS = "https"
	CheckNone  = "none"
)

// Check is a backend's active health check.
type Check struct {
	// Type is CheckTCP (default), CheckTLS, CheckHTTP, CheckHTTPS or
	// CheckNone.
	Type string
	// Port, when not 0, is checked instead of each server's port.
	Port uint16
	// Method, Path and ExpectStatus apply to http and https; defaults GET,
	// "/", 200.
	Method       string
	Path         string
	ExpectStatus int
	// Interval, Timeout, Rise and Fall default to 2s, 1s, 2, 3 (HAProxy's).
	Interval, Timeout time.Duration
	Rise, Fall        int
	// TLS settings for tls and https.
	CA, SNI, ClientCert, ClientKey string
	InsecureSkipVerify             bool
}

// Control is the [control] table: the daemon's unix socket.
type Control struct {
	// Socket defaults to /run/vipd/vipd.sock.
	Socket string
	// Group, when set, owns the socket.
	Group string
	// Mode defaults to 0660.
	Mode os.FileMode
}

// HTTP is the [http] table: the status page, /metrics and the JSON API.
type HTTP struct {
	// Listen defaults to 127.0.0.1:9600.
	Listen string
	// Users enables basic auth when not empty.
	Users []User
	// Allow lists the client networks; default loopback only
	// (127.0.0.0/8 and ::1/128).
	Allow []netip.Prefix
}

// User is one [[http.user]].
type User struct {
	Name string
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$).
	PasswordHash string
}

// Notify is the [notify] table: Command is run on each transition with the
// instance, the state and the priority appended, killed after Timeout
// (default 5s).
type Notify struct {
	Command []string
	Timeout time.Duration
}

// Log is the [log] table.
type Log struct {
	// Level is trace, debug, info (default), warn or error.
	Level string
	// Format is json, console or auto (default: console on a terminal, json
	// otherwise).
	Format string
}

// Global is the [global] table.
type Global struct {
	// MaxConn limits connections over all frontends. 0 (unset) means the
	// daemon derives it from RLIMIT_NOFILE, keeping descriptors for
	// itself: (RLIMIT_NOFILE - reserved) / 3, see internal/fdlimit.
	MaxConn int
}

// Error is one problem in a configuration file. Msg says what is wrong and
// how to fix it.
type Error struct {
	File string
	// Line is 1-based; 0 when the problem has no single line (then Error
	// prints "file: msg").
	Line int
	Msg  string
}

// Error implements error as "file:line: msg".
func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// MaxFileSize bounds a configuration file. A real one is a few KB; the
// bound keeps a wrong or hostile file (a reload of /dev/zero, a generated
// monster) from costing the running daemon its memory.
const MaxFileSize = 1 << 20

// Load reads the file at path and parses it with Parse. A file larger than
// MaxFileSize is refused without reading past the limit.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil {
		c.warnings = append(c.warnings, fileWarnings(c, fi.Mode())...)
	}
	return c, nil
}

// Parse decodes data strictly, applies defaults and validates the result.
// path is used in messages only. On failure the error is an errors.Join of
// every *Error found, sorted by line, so that they can all be fixed at once;
// use errors.As or the Unwrap() []error method to get at them.
func Parse(path string, data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("larger than %d bytes (1 MiB); a vipd config is a few KB: is this the right file?", MaxFileSize)}
	}
	// The position scan runs first: it refuses shapes that would cost
	// toml time and memory out of proportion to the file's size.
	pos, shape := scanPositions(string(data))
	if shape != nil {
		return nil, &Error{File: path, Line: shape.line, Msg: shape.msg}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, syntaxError(path, err)
	}
	d := &decoder{file: path, pos: pos}
	c := d.config(raw)
	d.validate(c)
	d.httpWarnings(c.HTTP)
	if len(d.errs) > 0 {
		return nil, joinErrors(d.errs)
	}
	c.Path = path
	c.warnings = d.warnings()
	return c, nil
}

func joinErrors(es []*Error) error {
	// Stable: on one line, the order found (which follows the file) stays.
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	errs := make([]error, 0, len(es))
	seen := map[Error]bool{}
	for _, e := range es {
		if seen[*e] {
			continue // the same problem found by two checks
		}
		seen[*e] = true
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// syntaxError turns a toml error into a *Error with its line.
func syntaxError(path string, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: path, Msg: fmt.Sprintf("TOML: %v", err)}
	}
	msg := pe.Message
	lower := strings.ToLower(msg)
	hint := "see https://toml.io/en/v1.0.0 for the syntax"
	switch {
	case strings.Contains(lower, "already been defined"):
		hint = "each key and [table] may appear once; for a list of tables write [[name]] for every entry"
	case strings.Contains(lower, "expected value but found"),
		strings.Contains(lower, "invalid integer"),
		strings.Contains(lower, "invalid float"):
		hint = `strings need quotes (interface = "eth0", advert_interval = "200ms"); integers have no leading zeros (write mode = "0660")`
	case strings.Contains(lower, "newline"):
		hint = "a string or key/value pair cannot span lines here; close the quote on the same line"
	case strings.Contains(lower, "end of file"), strings.Contains(lower, "unexpected eof"):
		hint = "a quote, ] or } is not closed"
	}
	return &Error{File: path, Line: pe.Position.Line, Msg: fmt.Sprintf("TOML syntax: %s; %s", msg, hint)}
}
