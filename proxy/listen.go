package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const keepAliveIdle = 15 // seconds, as Go's net package

// BindError is returned by Listen when a frontend address cannot be bound.
type BindError struct {
	Frontend string
	Addr     netip.AddrPort
	// Wildcard is set when the address is in use and another socket
	// listens on the wildcard address of the same port (the
	// kube-apiserver co-location trap).
	Wildcard bool
	Err      error
}

func (e *BindError) Error() string {
	if e.Wildcard {
		p := e.Addr.Port()
		return fmt.Sprintf("proxy: frontend %q: cannot listen on %s: %v: another process listens on *:%d "+
			"(every address, the VIP included; kube-apiserver does this by default). "+
			"Fix: run kube-apiserver with --bind-address=<node IP> so it does not hold *:%d, "+
			"or give the frontend another port than %d", e.Frontend, e.Addr, e.Err, p, p, p)
	}
	return fmt.Sprintf("proxy: frontend %q: cannot listen on %s: %v", e.Frontend, e.Addr, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// inheritedOpts are set on a listening socket once, and every socket it
// accepts inherits them: TCP keepalive (probes after 15 s idle, as Go's
// net package) and TCP_NODELAY. Set per accept they would cost three
// system calls per connection.
var inheritedOpts = [][3]int{
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
	{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepAliveIdle},
	{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
}

// setOpts sets socket options, stopping at the first error.
func setOpts(fd int, opts [][3]int) error {
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], o[2]); err != nil {
			return fmt.Errorf("setsockopt %d/%d: %w", o[0], o[1], err)
		}
	}
	return nil
}

// listenFreebind opens a non-blocking listening socket on addr with
// IP_FREEBIND, so the address need not exist on the host yet (no global
// ip_nonlocal_bind), and the inheritedOpts.
func listenFreebind(addr netip.AddrPort) (*rawListener, error) {
	a := addr.Addr().Unmap()
	family := unix.AF_INET
	var sa unix.Sockaddr
	if a.Is6() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()} // As4 panics on IPv6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	opts := [][3]int{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		{unix.IPPROTO_IP, unix.IP_FREEBIND, 1},
	}
	if a.Is6() {
		opts[1] = [3]int{unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1}
		opts = append(opts, [3]int{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1})
	}
	if err := setOpts(fd, append(opts, inheritedOpts...)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// IP_TRANSPARENT, inherited by accepted sockets, lets them keep
	// sending from the VIP after it is removed: on leaving MASTER the VIP
	// goes first (DESIGN.md section 4) and the FIN/RST that closes each
	// client connection must still reach the client, or it hangs until a
	// keepalive timeout. Best effort: it needs CAP_NET_ADMIN.
	if a.Is6() {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TRANSPARENT, 1)
	} else {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TRANSPARENT, 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Listen(fd, 65535); err != nil { // the kernel caps it at somaxconn
		unix.Close(fd)
		return nil, err
	}
	return newRawListener(fd)
}

// rawListener is a non-blocking listening socket. It is not registered
// with the runtime poller: every event loop has it in its epoll set with
// EPOLLEXCLUSIVE and accepts from it directly (see loop.acceptFrom).
type rawListener struct {
	fd      int
	adopted bool // taken over from the old process (adopt.go)
}

func newRawListener(fd int) (*rawListener, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &rawListener{fd: fd}, nil
}

func (r *rawListener) close() { unix.Close(r.fd) }

// CheckBinds looks, without binding anything, for what would make Listen
// fail on the co-location trap: a process listening on the wildcard
// address (kube-apiserver on *:6443) or on the frontend's own address and
// port. It reads /proc/net/tcp{,6} only, so it is safe to call at start-up
// before the node has won any election; the error is a *BindError.
func (p *Proxy) CheckBinds() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, fe := range p.frontends {
		for _, a := range fe.binds {
			if fe.listeners[a] != nil {
				continue
			}
			switch {
			case wildcardListening(a.Port()):
				errs = append(errs, &BindError{Frontend: fe.name, Addr: a, Err: unix.EADDRINUSE, Wildcard: true})
			case exactListening(a):
				errs = append(errs, &BindError{Frontend: fe.name, Addr: a, Err: unix.EADDRINUSE})
			}
		}
	}
	return errors.Join(errs...)
}

// exactListening reports whether a socket listens on exactly a.
func exactListening(a netip.AddrPort) bool {
	f := "/proc/net/tcp"
	if a.Addr().Is6() {
		f = "/proc/net/tcp6"
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return false
	}
	return listeningIn(string(data), func(ip string, port uint16) bool {
		return port == a.Port() && ip == procHex(a.Addr())
	})
}

// procHex writes a the way /proc/net/tcp does: each 32-bit word in host
// (little-endian on the architectures vipd runs on) byte order.
func procHex(a netip.Addr) string {
	b := a.AsSlice()
	var sb strings.Builder
	for i := 0; i < len(b); i += 4 {
		fmt.Fprintf(&sb, "%02X%02X%02X%02X", b[i+3], b[i+2], b[i+1], b[i])
	}
	return sb.String()
}

// wildcardListening reports whether a socket listens on 0.0.0.0:port or
// [::]:port, from /proc/net/tcp and /proc/net/tcp6.
func wildcardListening(port uint16) bool {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if wildcardIn(string(data), port) {
			return true
		}
	}
	return false
}

func wildcardIn(table string, port uint16) bool {
	return listeningIn(table, func(ip string, p uint16) bool { return p == port && strings.Trim(ip, "0") == "" })
}

// listeningIn reports whether a listening socket in a /proc/net/tcp table
// matches.
func listeningIn(table string, match func(hexIP string, port uint16) bool) bool {
	for i, line := range strings.Split(table, "\n") {
		fields := strings.Fields(line)
		if i == 0 || len(fields) < 4 || fields[3] != "0A" { // TCP_LISTEN
			continue
		}
		ip, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			continue
		}
		if match(ip, uint16(p)) {
			return true
		}
	}
	return false
}
