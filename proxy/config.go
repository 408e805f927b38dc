//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// State is a server's state as the balancer sees it.
type State uint8

// Server states. A server is UP when its checks pass and the operator has not
// drained it or put it in maintenance.
const (
	StateUp    State = iota // eligible for new connections
	StateDown               // failing health checks
	StateDrain              // no new connections; existing ones kept up to DrainTimeout
	StateMaint              // no traffic at all; existing connections closed
)

// String returns the upper-case name used in logs and status JSON.
func (s State) String() string {
	switch s {
	case StateUp:
		return "UP"
	case StateDown:
		return "DOWN"
	case StateDrain:
		return "DRAIN"
	case StateMaint:
		return "MAINT"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText makes State print as its name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Admin is the operator's wish for a server, independent of its health.
type Admin uint8

// Operator states (HAProxy's "set server state ready|drain|maint").
const (
	AdminReady Admin = iota
	AdminDrain
	AdminMaint
)

// String returns the lower-case name used on the command line.
func (a Admin) String() string {
	switch a {
	case AdminReady:
		return "ready"
	case AdminDrain:
		return "drain"
	case AdminMaint:
		return "maint"
	}
	return fmt.Sprintf("Admin(%d)", uint8(a))
}

// Balance algorithms.
const (
	BalanceLeastConn  = "leastconn"
	BalanceRoundRobin = "roundrobin"
	BalanceSource     = "source"
)

// Defaults applied when a duration is zero.
const (
	DefaultDrainTimeout   = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second
)

// ServerConfig is one backend server.
type ServerConfig struct {
	Name string
	Addr netip.AddrPort
}

// BackendConfig is a named set of servers and how to balance over them.
type BackendConfig struct {
	Name    string
	Servers []ServerConfig
	// Balance is "leastconn" (default), "roundrobin" or "source".
	Balance string
	// DrainTimeout bounds how long a DRAIN server keeps its connections
	// (default 30s).
	DrainTimeout time.Duration
	// ProxyProtocol sends a PROXY protocol v2 header to the server.
	ProxyProtocol bool
	// CloseOnDown closes a server's connections when its checks fail.
	CloseOnDown bool
}

// FrontendConfig is a set of listening addresses forwarding to one backend.
type FrontendConfig struct {
	Name string
	// Binds holds one address per VIP, or the fixed address.
	Binds   []netip.AddrPort
	Backend string
	// MaxConn limits concurrent connections (0 = unlimited). At the limit
	// new connections wait in the kernel backlog.
	MaxConn int
	// ConnectTimeout bounds a connect to a server (default 5s).
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection with no traffic either way for this
	// long (0 = never: watches and log follows must survive).
	IdleTimeout time.Duration
}

// Config is the whole proxy configuration.
type Config struct {
	Frontends []FrontendConfig
	Backends  []BackendConfig
	// MaxConn limits concurrent connections over all frontends (0 = unlimited).
	MaxConn int
	// MaxPipes bounds the splice pipes open at once, pooled ones
	// included (HAProxy's maxpipes): each holds two file descriptors, so
	// without a bound slow readers of bulk transfers could spend the
	// descriptors a connection budget leaves for the control socket and
	// checks. At the bound, bytes are copied instead. 0 means MaxConn/2,
	// and no bound when MaxConn is 0 too.
	MaxPipes int
}

// Errors.
var (
	// ErrUnknown is returned for a backend or server name the proxy does not have.
	ErrUnknown = errors.New("proxy: unknown backend or server")
	// ErrClosed is returned once Run has returned.
	ErrClosed = errors.New("proxy: closed")
)

func (c *Config) validate() error {
	var errs []error
	if c.MaxConn < 0 {
		errs = append(errs, fmt.Errorf("proxy: negative global maxconn %d", c.MaxConn))
	}
	backends := make(map[string]bool)
	for _, b := range c.Backends {
		if b.Name == "" {
			errs = append(errs, errors.New("proxy: backend with no name"))
		}
		if backends[b.Name] {
			errs = append(errs, fmt.Errorf("proxy: backend %q defined twice", b.Name))
		}
		backends[b.Name] = true
		switch b.Balance {
		case "", BalanceLeastConn, BalanceRoundRobin, BalanceSource:
		default:
			errs = append(errs, fmt.Errorf("proxy: backend %q: unknown balance %q (want leastconn, roundrobin or source)", b.Name, b.Balance))
		}
		if b.DrainTimeout < 0 {
			errs = append(errs, fmt.Errorf("proxy: backend %q: negative drain timeout", b.Name))
		}
		names := make(map[string]bool)
		for _, s := range b.Servers {
			if s.Name == "" || names[s.Name] {
				errs = append(errs, fmt.Errorf("proxy: backend %q: server name %q empty or duplicated", b.Name, s.Name))
			}
			names[s.Name] = true
			if !s.Addr.IsValid() || s.Addr.Port() == 0 {
				errs = append(errs, fmt.Errorf("proxy: backend %q: server %q: invalid address %v", b.Name, s.Name, s.Addr))
			}
		}
	}
	frontends := make(map[string]bool)
	for _, f := range c.Frontends {
		if f.Name == "" || frontends[f.Name] {
			errs = append(errs, fmt.Errorf("proxy: frontend name %q empty or duplicated", f.Name))
		}
		frontends[f.Name] = true
		if !backends[f.Backend] {
			errs = append(errs, fmt.Errorf("proxy: frontend %q: unknown backend %q", f.Name, f.Backend))
		}
		if f.MaxConn < 0 || f.ConnectTimeout < 0 || f.IdleTimeout < 0 {
			errs = append(errs, fmt.Errorf("proxy: frontend %q: negative maxconn or timeout", f.Name))
		}
		seen := make(map[netip.AddrPort]bool)
		for _, a := range f.Binds {
			if !a.IsValid() || seen[a] {
				errs = append(errs, fmt.Errorf("proxy: frontend %q: bind %v invalid or duplicated", f.Name, a))
			}
			seen[a] = true
		}
	}
	return errors.Join(errs...)
}
