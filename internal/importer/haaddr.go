package importer

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// haAddr is an address of a bind or server line.
type haAddr struct {
	IP      netip.Addr // unspecified for "*" or an empty host
	Port    uint16     // 0: none given
	HasPort bool
}

// parseHAAddr reads HAProxy's "[family@]host[:port]": "*:6443", ":6443",
// "0.0.0.0:6443", ":::6443", "ipv4@10.0.0.1:6443", "[fd00::1]:6443",
// "10.0.0.1". problem, when not empty, says why it cannot be used.
func parseHAAddr(s string) (a haAddr, problem string) {
	for _, fam := range []string{"ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"} {
		s = strings.TrimPrefix(s, fam)
	}
	if strings.HasPrefix(s, "/") || strings.Contains(s, "@") {
		return a, "a UNIX socket or a file descriptor; vipd listens and connects over TCP/IP only"
	}
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return a, "an unclosed ["
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return a, "not [address]:port"
			}
			port = rest[1:]
			a.HasPort = true
		}
	case strings.Contains(s, ":"):
		i := strings.LastIndex(s, ":")
		host, port = s[:i], s[i+1:]
		a.HasPort = true
	}
	if a.HasPort {
		if strings.ContainsAny(port, "+-") || strings.Contains(port, ",") {
			return a, "a port range or offset; vipd listens on and connects to single ports: write one line per port"
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return a, "not a port 1..65535" + placeholder(port)
		}
		a.Port = uint16(n)
	}
	switch host {
	case "", "*":
		a.IP = netip.IPv4Unspecified()
		return a, ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return a, "not an IP address (vipd does not resolve names); write the address" + placeholder(host)
	}
	a.IP = ip.Unmap()
	return a, ""
}

// parseHATime reads an HAProxy time: a number with an optional unit (us,
// ms, s, m, h, d); a bare number is milliseconds.
func parseHATime(s string) (time.Duration, bool) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	unit := time.Millisecond
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, unit = strings.TrimSuffix(s, u.suffix), u.unit
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(n) * unit, true
}
