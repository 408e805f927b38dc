package importer

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// haOpt is one option of a server or default-server line.
type haOpt struct {
	name, value string
	d           *haDirective
}

// haServer is a server line with its default-server options applied.
type haServer struct {
	d    *haDirective
	name string
	addr haAddr
	// opts holds the options in effect, later lines overriding earlier.
	opts map[string]haOpt
}

func (s *haServer) has(k string) bool { _, ok := s.opts[k]; return ok }

// haServerArgs are server options followed by a value.
var haServerArgs = map[string]bool{
	"inter": true, "fastinter": true, "downinter": true, "rise": true, "fall": true, "port": true, "addr": true,
	"weight": true, "maxconn": true, "maxqueue": true, "minconn": true, "slowstart": true, "cookie": true, "id": true,
	"verify": true, "ca-file": true, "crt": true, "sni": true, "check-sni": true, "resolvers": true, "init-addr": true,
	"resolve-prefer": true, "resolve-net": true, "on-error": true, "on-marked-down": true, "on-marked-up": true,
	"error-limit": true, "observe": true, "agent-port": true, "agent-inter": true, "agent-addr": true, "agent-send": true,
	"track": true, "ciphers": true, "ciphersuites": true, "alpn": true, "check-alpn": true, "proto": true,
	"check-proto": true, "crl-file": true, "ssl-min-ver": true, "ssl-max-ver": true, "redir": true, "namespace": true,
	"pool-max-conn": true, "pool-purge-delay": true, "pool-low-conn": true, "max-reuse": true, "tcp-ut": true,
	"socks4": true, "verifyhost": true, "log-proto": true, "ws": true, "proxy-v2-options": true, "set-proxy-v2-tlv-fmt": true,
	"curves": true, "sigalgs": true, "client-sigalgs": true, "shard": true, "hash-key": true, "guid": true, "log-bufsize": true,
	"init-state": true, "strict-maxconn": true, "ssl-reuse": true, "source": true, "usesrc": true, "usesrc-ip": true,
}

// haNegations switch an option off again ("no-check" after a
// default-server "check").
var haNegations = map[string]string{
	"no-check": "check", "no-check-ssl": "check-ssl", "no-ssl": "ssl", "no-backup": "backup",
	"no-send-proxy": "send-proxy", "no-send-proxy-v2": "send-proxy-v2", "no-verifyhost": "verifyhost",
	"no-agent-check": "agent-check", "no-tfo": "tfo", "enabled": "disabled",
}

// Server options and why they are not carried over.
var haServerReasons = map[string]string{
	"fastinter":        "vipd checks every interval whatever the server's state",
	"downinter":        "vipd checks every interval whatever the server's state",
	"weight":           "vipd has no server weights",
	"maxconn":          "vipd limits connections per frontend and globally, not per server",
	"maxqueue":         "vipd does not queue: at maxconn clients wait in the kernel backlog",
	"minconn":          "vipd limits connections per frontend and globally, not per server",
	"slowstart":        "vipd sends a server its share as soon as it is UP",
	"cookie":           "vipd proxies TCP; balance = \"source\" keeps a client on one server",
	"id":               "vipd names servers",
	"resolvers":        "vipd does not resolve names",
	"init-addr":        "vipd does not resolve names",
	"resolve-prefer":   "vipd does not resolve names",
	"resolve-net":      "vipd does not resolve names",
	"agent-check":      "vipd has no agent checks",
	"agent-port":       "vipd has no agent checks",
	"agent-inter":      "vipd has no agent checks",
	"agent-addr":       "vipd has no agent checks",
	"agent-send":       "vipd has no agent checks",
	"observe":          "vipd takes servers down on failed checks only",
	"error-limit":      "vipd takes servers down on failed checks only",
	"on-error":         "vipd takes servers down on failed checks only",
	"on-marked-up":     "no vipd equivalent",
	"track":            "each vipd backend checks its own servers",
	"addr":             "a vipd check goes to the server's own address (check.port can change the port)",
	"check-send-proxy": "vipd's checks send no PROXY header",
	"redir":            "vipd proxies TCP only",
	"tfo":              "no vipd equivalent",
	"backup":           "vipd has no backup servers: this one takes new connections like the others; leave it out of servers if it must only stand in",
	"disabled":         "vipd starts every server; run vipd server maint BACKEND/SERVER to keep this one out",
	"non-stick":        "vipd has no stick tables",
	"stick":            "vipd has no stick tables",
	"check-alpn":       "no vipd equivalent",
	"alpn":             "no vipd equivalent",
	"verifyhost":       "vipd verifies the certificate against sni when it is set",
}

// backend builds (once) the vipd backend for the HAProxy section name.
func (t *haTranslator) backend(name string, fe *haSection) *outBackend {
	if b, ok := t.built[name]; ok {
		return b
	}
	s := t.backends[name]
	target := "backend:" + name
	t.built[name] = nil
	if s.Kind == "backend" {
		if m := t.mode(s); m != "tcp" {
			t.r.errorf(s.get("mode").Pos, "%s: mode %s: vipd proxies TCP (layer 4) only; set mode tcp", s.label(), m)
			return nil
		}
	}
	servers := t.servers(s, target)
	if len(servers) == 0 {
		t.r.errorf(s.Head.Pos, "%s has no usable server line; vipd needs at least one server", s.label())
		return nil
	}
	b := &outBackend{Name: name, pos: s.Head.Pos}
	names := map[string]bool{}
	addrs := map[netip.AddrPort]string{}
	for _, sv := range servers {
		port := sv.addr.Port
		if !sv.addr.HasPort {
			port = t.frontendPort(fe)
			if port == 0 {
				t.r.errorf(sv.d.Pos, "server %s %s: no port, so HAProxy used the port the client came in on; write the port", sv.name, sv.d.arg(1))
				continue
			}
			t.r.chose(sv.d.Pos, target, "server %s %s: no port, so HAProxy connected to the port the client came in on: %d", sv.name, sv.d.arg(1), port)
		}
		if sv.addr.IP.IsUnspecified() {
			t.r.errorf(sv.d.Pos, "server %s %s: no address", sv.name, sv.d.arg(1))
			continue
		}
		if names[sv.name] {
			t.r.errorf(sv.d.Pos, "server %s: the name is used twice in %s; rename one", sv.name, s.label())
			continue
		}
		names[sv.name] = true
		ap := netipAddrPort(sv.addr.IP, port)
		if prev, dup := addrs[ap]; dup {
			t.r.notCarried(sv.d.Pos, target, "server %s %s: the same address as server %s; vipd lists each server once", sv.name, ap, prev)
			continue
		}
		addrs[ap] = sv.name
		b.Servers = append(b.Servers, outServer{Name: sv.name, Addr: ap})
	}
	t.serverFlags(servers, b, target)
	b.Check = t.check(s, servers, target)
	t.built[name] = b
	t.res.backends = append(t.res.backends, b)
	return b
}

// frontendPort is the single port the frontend listens on, or 0.
func (t *haTranslator) frontendPort(fe *haSection) uint16 {
	var port uint16
	for _, d := range fe.Dirs {
		if d.key() != "bind" {
			continue
		}
		for _, addr := range strings.Split(d.arg(0), ",") {
			a, problem := parseHAAddr(addr)
			if problem != "" || (port != 0 && a.Port != port) {
				return 0
			}
			port = a.Port
		}
	}
	return port
}

// servers reads the section's server lines with default-server applied.
func (t *haTranslator) servers(s *haSection, target string) []*haServer {
	var chain []*haSection
	for p := s; p != nil; p = p.from {
		chain = append([]*haSection{p}, chain...)
	}
	defaults := map[string]haOpt{}
	for _, p := range chain {
		for _, d := range p.Dirs {
			if d.key() == "default-server" {
				d.done = true
				t.options(d, d.Words[1:], defaults, target)
			}
		}
	}
	var out []*haServer
	for _, d := range s.Dirs {
		switch d.key() {
		case "server-template":
			d.done = true
			t.r.errorf(d.Pos, "server-template: vipd does not resolve names; write one server line per address")
		case "server":
			d.done = true
			if len(d.Words) < 3 {
				t.r.errorf(d.Pos, "server %s: no address", d.arg(0))
				continue
			}
			a, problem := parseHAAddr(d.arg(1))
			if problem != "" {
				t.r.errorf(d.Pos, "server %s %s: %s", d.arg(0), d.arg(1), problem)
				continue
			}
			sv := &haServer{d: d, name: d.arg(0), addr: a, opts: map[string]haOpt{}}
			for k, v := range defaults {
				sv.opts[k] = v
			}
			t.options(d, d.Words[3:], sv.opts, target)
			out = append(out, sv)
		}
	}
	return out
}

// options reads server options into opts, noting those vipd has nothing for.
func (t *haTranslator) options(d *haDirective, words []string, opts map[string]haOpt, target string) {
	for i := 0; i < len(words); i++ {
		o := haOpt{name: words[i], d: d}
		if haServerArgs[o.name] && i+1 < len(words) {
			i++
			o.value = words[i]
		}
		if k, ok := haNegations[o.name]; ok {
			delete(opts, k)
			continue
		}
		opts[o.name] = o
		switch o.name {
		case "check", "check-ssl", "ssl", "verify", "ca-file", "check-sni", "crt", "inter", "rise", "fall", "port",
			"send-proxy", "send-proxy-v2", "on-marked-down", "sni":
			// translated below, per backend
		default:
			reason := haServerReasons[o.name]
			if reason == "" {
				switch {
				case strings.HasPrefix(o.name, "ssl-") || strings.HasPrefix(o.name, "no-ssl") || strings.HasPrefix(o.name, "no-tls") ||
					strings.HasPrefix(o.name, "force-") || o.name == "ciphers" || o.name == "ciphersuites" || o.name == "crl-file":
					reason = "vipd's checks use Go's TLS defaults"
				default:
					reason = "no vipd equivalent"
				}
			}
			v := ""
			if o.value != "" {
				v = " " + o.value
			}
			t.r.notCarried(d.Pos, target, "%s %s: %s%s: %s", d.key(), d.arg(0), o.name, v, reason)
		}
	}
}

// serverFlags carries over the per-server options that are per-backend in
// vipd: PROXY protocol and closing connections when a server goes down.
func (t *haTranslator) serverFlags(servers []*haServer, b *outBackend, target string) {
	for _, sv := range servers {
		if o, ok := sv.opts["ssl"]; ok {
			t.r.errorf(o.d.Pos, "server %s: ssl: HAProxy encrypts the traffic to this server; vipd passes TCP through unchanged: remove ssl (keep check-ssl for the check) so the client's TLS reaches the server, then import again", sv.name)
		}
		if o, ok := sv.opts["send-proxy"]; ok {
			t.r.errorf(o.d.Pos, "server %s: send-proxy: vipd sends only PROXY protocol version 2; make the server accept v2 and write send-proxy-v2", sv.name)
		}
		if _, ok := sv.opts["sni"]; ok {
			sv.opts["sni"].d.done = true
		}
	}
	b.ProxyProtocol = t.agree(servers, "send-proxy-v2", target, "proxy_protocol") == "on"
	switch v := t.agree(servers, "on-marked-down", target, "close_on_down"); v {
	case "shutdown-sessions":
		b.CloseOnDown = true
	case "":
	default:
		t.r.notCarried(servers[0].d.Pos, target, "on-marked-down %s: no vipd equivalent", v)
	}
}

// agree returns the value of a per-server option every server has ("on" for
// a flag); when the servers differ it picks the first server's and says so.
func (t *haTranslator) agree(servers []*haServer, opt, target, key string) string {
	val := func(s *haServer) string {
		o, ok := s.opts[opt]
		switch {
		case !ok:
			return ""
		case o.value == "" && !haServerArgs[opt]:
			return "on"
		}
		return o.value
	}
	first := val(servers[0])
	for _, s := range servers[1:] {
		if v := val(s); v != first {
			t.r.chose(s.d.Pos, target, "server %s: %s %q differs from server %s's %q; vipd sets %s per backend: took server %s's", s.name, opt, v, servers[0].name, first, key, servers[0].name)
			break
		}
	}
	return first
}

func (t *haTranslator) intOpt(sv *haServer, opt string, lo, hi int) int {
	o, ok := sv.opts[opt]
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(o.value)
	if err != nil || n < lo || n > hi {
		t.r.errorf(o.d.Pos, "%s %s: must be %d..%d for vipd", opt, o.value, lo, hi)
		return 0
	}
	return n
}

func (t *haTranslator) timeOpt(sv *haServer, opt string) time.Duration {
	o, ok := sv.opts[opt]
	if !ok {
		return 0
	}
	v, good := parseHATime(o.value)
	if !good || v < 10*time.Millisecond || v > time.Hour {
		t.r.errorf(o.d.Pos, "%s %s: vipd checks every 10ms..1h", opt, o.value)
		return 0
	}
	return v
}

func describe(opts []string) string {
	return fmt.Sprintf("%q", strings.Join(opts, ", "))
}
