package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func (d *decoder) backend(t *table) Backend {
	t.hints = backendHints
	b := Backend{}
	if !t.has("name") {
		t.badTable(`missing name; add name = "kube-apiserver"`)
	}
	b.Name = t.str("name", "")
	if t.has("name") && b.Name == "" {
		t.bad("name", "", "must not be empty")
	}
	b.Servers = d.servers(t)
	b.Check = d.check(t)
	b.DrainTimeout = t.duration("drain_timeout", DefaultDrainTimeout, 0, 24*time.Hour, "30s")
	b.ProxyProtocol = t.boolean("proxy_protocol", false)
	b.CloseOnDown = t.boolean("close_on_down", false)
	t.finish()
	return b
}

func (d *decoder) servers(t *table) []Server {
	v, ok := t.get("servers")
	if !ok {
		t.badTable(`no servers; add servers = ["192.168.30.31:6443", "192.168.30.32:6443"]`)
		return nil
	}
	var elems []any
	switch x := v.(type) {
	case []any:
		elems = x
	case []map[string]any:
		for _, m := range x {
			elems = append(elems, m)
		}
	default:
		t.bad("servers", v, `must be a list; write servers = ["192.168.30.31:6443", ...]`)
		return nil
	}
	if len(elems) == 0 {
		t.bad("servers", v, `must list at least one server; write servers = ["192.168.30.31:6443", ...]`)
		return nil
	}
	out := make([]Server, 0, len(elems))
	names := map[string]int{}
	addrs := map[netip.AddrPort]int{}
	for i, e := range elems {
		p := indexPath(t.keyPath("servers"), i)
		label := fmt.Sprintf("%s servers[%d]", t.label, i)
		var s Server
		switch x := e.(type) {
		case string:
			ap, err := parseServerAddr(x)
			if err != nil {
				d.errAt(p, "%s = %q: %v", label, x, err)
				break
			}
			s = Server{Name: ap.Addr().String(), Addr: ap}
		case map[string]any:
			st := d.table(x, p, joinPath(t.name, "servers"), label)
			s.Name = st.str("name", "")
			if st.has("name") && s.Name == "" {
				st.bad("name", "", "must not be empty; remove it to use the address as the name")
			}
			a := st.str("address", "")
			if !st.has("address") {
				st.badTable(`missing address; add address = "192.168.30.31:6443"`)
			} else {
				if _, isStr := x["address"].(string); isStr {
					ap, err := parseServerAddr(a)
					if err != nil {
						st.bad("address", a, "%v", err)
					} else {
						s.Addr = ap
					}
				}
			}
			if s.Name == "" && s.Addr.IsValid() {
				s.Name = s.Addr.Addr().String()
			}
			st.finish()
		default:
			d.errAt(p, `%s = %s: must be "ip:port" or { name = "cp1", address = "ip:port" }`, label, render(e))
		}
		if s.Addr.IsValid() {
			if j, dup := addrs[s.Addr]; dup {
				d.errAt(p, "%s: %s is already servers[%d]; list each server once", label, s.Addr, j)
			}
			addrs[s.Addr] = i
		}
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				d.errAt(p, `%s: the name %q is already used by servers[%d]; name them, e.g. { name = "cp1-%d", address = %q }`, label, s.Name, j, i+1, s.Addr)
			}
			names[s.Name] = i
		}
		out = append(out, s)
	}
	return out
}

// parseServerAddr parses "ip:port"; hostnames are not resolved.
func parseServerAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		if ap.Port() == 0 {
			return ap, fmt.Errorf("port 0 is not a port; write %q", netip.AddrPortFrom(ap.Addr(), 6443))
		}
		if ap.Addr().Is4In6() {
			return ap, fmt.Errorf("an IPv4-mapped IPv6 address; write %q", netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPort{}, fmt.Errorf("missing the port; write %q", netip.AddrPortFrom(a, 6443))
	}
	if i := strings.LastIndex(s, ":"); i >= 0 {
		host, port := s[:i], s[i+1:]
		if _, err := netip.ParseAddr(host); err == nil && strings.Contains(host, ":") {
			return netip.AddrPort{}, fmt.Errorf("write IPv6 servers in brackets, e.g. %q", "["+host+"]:"+port)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return netip.AddrPort{}, fmt.Errorf(`bad port %q; write "ip:port" with a port 1..65535`, port)
		}
	}
	return netip.AddrPort{}, fmt.Errorf(`not "ip:port" (hostnames are not resolved); write the server's IP, e.g. "192.168.30.31:6443"`)
}

func (d *decoder) check(bt *table) Check {
	c := Check{
		Type:         DefaultCheckType,
		Method:       DefaultCheckMethod,
		Path:         DefaultCheckPath,
		ExpectStatus: DefaultCheckExpectStatus,
		Interval:     DefaultCheckInterval,
		Timeout:      DefaultCheckTimeout,
		Rise:         DefaultCheckRise,
		Fall:         DefaultCheckFall,
	}
	t := bt.sub("check", bt.label+" check")
	if t == nil {
		return c
	}
	t.hints = checkHints
	c.Type = t.oneOf("type", DefaultCheckType, CheckTCP, CheckTLS, CheckHTTP, CheckHTTPS, CheckNone)
	c.Port = uint16(t.integer("port", 0, 1, 65535, "leave it out to check each server's own port"))
	c.Method = t.oneOf("method", DefaultCheckMethod, "GET", "HEAD", "OPTIONS", "POST")
	c.Path = t.str("path", DefaultCheckPath)
	if !strings.HasPrefix(c.Path, "/") {
		t.bad("path", t.m["path"], "must start with /; write path = %q", "/"+c.Path)
		c.Path = DefaultCheckPath
	}
	c.ExpectStatus = int(t.integer("expect_status", DefaultCheckExpectStatus, 100, 599, "an HTTP status code, e.g. expect_status = 200"))
	c.Interval = t.duration("interval", DefaultCheckInterval, 10*time.Millisecond, time.Hour, "2s")
	c.Timeout = t.duration("timeout", DefaultCheckTimeout, 10*time.Millisecond, time.Hour, "1s")
	c.Rise = int(t.integer("rise", DefaultCheckRise, 1, 100, "the number of passed checks in a row that bring a server UP, e.g. rise = 2"))
	c.Fall = int(t.integer("fall", DefaultCheckFall, 1, 100, "the number of failed checks in a row that take a server DOWN, e.g. fall = 3"))
	c.CA = t.str("ca", "")
	c.SNI = t.str("sni", "")
	c.ClientCert = t.str("client_cert", "")
	c.ClientKey = t.str("client_key", "")
	c.InsecureSkipVerify = t.boolean("insecure_skip_verify", false)
	t.finish()

	httpKeys := []string{"method", "path", "expect_status"}
	tlsKeys := []string{"ca", "sni", "client_cert", "client_key", "insecure_skip_verify"}
	isHTTP := c.Type == CheckHTTP || c.Type == CheckHTTPS
	isTLS := c.Type == CheckTLS || c.Type == CheckHTTPS
	for _, k := range httpKeys {
		if t.has(k) && !isHTTP {
			t.bad(k, t.m[k], `applies only to type = "http" or "https" checks, and this one is type = %q; remove it or change the type`, c.Type)
		}
	}
	for _, k := range tlsKeys {
		if t.has(k) && !isTLS {
			t.bad(k, t.m[k], `applies only to type = "tls" or "https" checks, and this one is type = %q; remove it or change the type`, c.Type)
		}
	}
	if c.Type == CheckNone {
		for _, k := range []string{"port", "interval", "timeout", "rise", "fall"} {
			if t.has(k) {
				t.bad(k, t.m[k], `has no effect with type = "none" (servers are always UP); remove it or pick a check type`)
			}
		}
	}
	for _, k := range []string{"ca", "client_cert", "client_key"} {
		if v := t.m[k]; v != nil {
			if s, _ := v.(string); s != "" && !filepath.IsAbs(s) {
				t.bad(k, v, "must be an absolute path (the daemon runs from /); write %q", "/etc/vipd/"+s)
			}
		}
	}
	if (c.ClientCert == "") != (c.ClientKey == "") && isTLS {
		if c.ClientCert == "" {
			t.bad("client_key", c.ClientKey, `needs client_cert too; add client_cert = "/path/to/client.crt"`)
		} else {
			t.bad("client_cert", c.ClientCert, `needs client_key too; add client_key = "/path/to/client.key"`)
		}
	}
	if c.CA != "" && c.InsecureSkipVerify {
		t.bad("insecure_skip_verify", true, "contradicts ca = %q; keep ca (verify against it) or remove it (skip verification)", c.CA)
	}
	if c.Type != CheckNone && c.Timeout >= c.Interval {
		key := "timeout"
		if !t.has("timeout") {
			key = "interval"
		}
		t.warnKey(key, "timeout %s is not shorter than interval %s; a slow check overlaps the next one; make timeout shorter than interval", fmtDur(c.Timeout), fmtDur(c.Interval))
	}
	if c.Type == CheckHTTPS && c.CA == "" && !c.InsecureSkipVerify {
		t.d.warnAt(t.keyPath("type"), `%s: an https check without ca verifies against the system roots, which do not sign a cluster's kube-apiserver certificate; set ca = "/etc/kubernetes/pki/ca.crt" (or insecure_skip_verify = true)`, t.label)
	}
	return c
}
