// Package fdlimit decides how many proxied connections vipd takes by
// default, from RLIMIT_NOFILE, so that a connection flood can never take
// the descriptors that the control socket, the status page, the health
// checks, VRRP and the systemd notifier need. Shown in issue 9: with
// `prlimit --nofile=150` and no maxconn, 200 idle clients took every
// descriptor; the watchdog ping, `vipd status` and the page all failed.
//
// The proxy-wide limit ([global] maxconn) defaults to
//
//	maxconn = (RLIMIT_NOFILE - reserved) / 3
//	reserved = 48 + 3 x loops + binds + 2 x checks + 3 x scripts + control + http
//
// (a connection's two sockets, and at most half a splice pipe of two
// descriptors: proxy.Config.MaxPipes defaults to maxconn/2), where 48 covers the process itself (stdio, the Go runtime's poller,
// VRRP and ARP sockets, netlink watchers, status beacons, the notify
// socket, a running hook, config and certificate reads); loops is the
// proxy's event loops (GOMAXPROCS, at most 8) with an epoll fd, an eventfd
// and a spare each; binds the frontends' listening sockets; checks the
// backend servers checked (a socket each, 2 to allow a probe overlapping a
// slow close); scripts the script trackers (a pipe and a pidfd); control
// and http the connections those servers accept at most (16 each). A
// proxied connection costs 2 sockets; the third descriptor leaves room for
// splice pipes (2 descriptors, held only while a slow reader leaves bytes
// in one) on half of them.
//
// Raise sets the soft limit to the hard limit first, as HAProxy does
// (systemd's LimitNOFILE=, or the hard limit a shell gives).
package fdlimit

import (
	"fmt"
	"runtime"
	"syscall"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
)

// Parts of the reserve.
const (
	// Base is what vipd itself holds outside the proxy and the counted
	// parts below.
	Base = 48
	// PerConn is the descriptors counted per proxied connection.
	PerConn = 3
	// HTTPConns is the most connections the status page serves at once.
	HTTPConns = 16
	// maxLoops mirrors the proxy's cap on event loops.
	maxLoops = 8
)

// Raise sets the soft RLIMIT_NOFILE to the hard limit and returns the
// limit now in force.
func Raise() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("fdlimit: getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return current(), fmt.Errorf("fdlimit: setrlimit: %w", err)
		}
	}
	return current(), nil
}

// current is the soft RLIMIT_NOFILE, or 0 when it cannot be read.
func current() uint64 {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	return uint64(lim.Cur) // an int64 on FreeBSD
}

// Budget is how the descriptors are shared out.
type Budget struct {
	NoFile  uint64 // RLIMIT_NOFILE (soft)
	Loops   int
	Binds   int
	Checks  int
	Scripts int
	// Reserved is kept for everything but proxied connections.
	Reserved int
	// MaxConn is the default proxy-wide connection limit; at least 1.
	MaxConn int
	// Configured is [global] maxconn when set (0: the default applies).
	Configured int
}

// ForConfig computes the budget of cfg under the RLIMIT_NOFILE in force.
func ForConfig(cfg *config.Config) Budget {
	return budget(cfg, current(), min(runtime.GOMAXPROCS(0), maxLoops))
}

func budget(cfg *config.Config, nofile uint64, loops int) Budget {
	b := Budget{NoFile: nofile, Loops: loops, Configured: cfg.Global.MaxConn}
	for _, f := range cfg.Frontends {
		b.Binds += len(cfg.Binds(f))
	}
	for _, be := range cfg.Backends {
		if be.Check.Type != config.CheckNone {
			b.Checks += len(be.Servers)
		}
	}
	for _, t := range cfg.Tracks {
		if t.Type == config.TrackScript {
			b.Scripts++
		}
	}
	b.Reserved = Base + 3*b.Loops + b.Binds + 2*b.Checks + 3*b.Scripts + control.MaxConns + HTTPConns
	b.MaxConn = 1
	if nofile > uint64(b.Reserved+PerConn) {
		b.MaxConn = int(min((nofile-uint64(b.Reserved))/PerConn, 1<<30))
	}
	return b
}

// Limit is the proxy-wide limit that applies: [global] maxconn when set,
// else MaxConn.
func (b Budget) Limit() int {
	if b.Configured > 0 {
		return b.Configured
	}
	return b.MaxConn
}

// String explains the numbers, for the start-up log and `vipd check`.
func (b Budget) String() string {
	s := fmt.Sprintf("RLIMIT_NOFILE %d: %d kept for vipd itself (%d + 3 x %d event loops + %d listeners + 2 x %d checks + 3 x %d scripts + %d control + %d status page connections)",
		b.NoFile, b.Reserved, Base, b.Loops, b.Binds, b.Checks, b.Scripts, control.MaxConns, HTTPConns)
	if b.Configured > 0 {
		return s + fmt.Sprintf("; [global] maxconn = %d", b.Configured)
	}
	return s + fmt.Sprintf(", so [global] maxconn defaults to (%d - %d) / %d = %d", b.NoFile, b.Reserved, PerConn, b.MaxConn)
}

// Warning is non-empty when the limit in force can use up the
// descriptors vipd keeps for itself: a [global] maxconn beyond the budget,
// or an RLIMIT_NOFILE too small for any connection.
func (b Budget) Warning() string {
	switch {
	case b.Configured > b.MaxConn:
		return fmt.Sprintf("[global] maxconn = %d needs about %d file descriptors, but RLIMIT_NOFILE is %d: a flood can take the descriptors the control socket, the status page and the health checks need; lower maxconn to %d or raise LimitNOFILE=",
			b.Configured, b.Reserved+PerConn*b.Configured, b.NoFile, b.MaxConn)
	case b.NoFile < uint64(b.Reserved+PerConn):
		return fmt.Sprintf("RLIMIT_NOFILE %d is below the %d descriptors vipd keeps for itself; raise LimitNOFILE= (the shipped unit sets 1048576)", b.NoFile, b.Reserved)
	}
	return ""
}
