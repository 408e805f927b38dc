package importer

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/config"
)

// TestProxyDirectives: proxy.cfg's defaults chains, binds, server options,
// checks and timeouts.
func TestProxyDirectives(t *testing.T) {
	f := hand + "proxy.cfg"
	im := importOK(t, Options{HAProxy: f})
	c := im.cfg
	if c.Global.MaxConn != 30000 {
		t.Errorf("maxconn %d", c.Global.MaxConn)
	}
	type fe struct {
		name    string
		port    uint16
		addr    string
		backend string
		balance string
		maxconn int
		connect time.Duration
		idle    time.Duration
	}
	var got []fe
	for _, x := range c.Frontends {
		got = append(got, fe{x.Name, x.Port, x.Address.String(), x.Backend, x.Balance, x.MaxConn, x.ConnectTimeout, x.IdleTimeout})
	}
	want := []fe{
		// a comma list and a second bind line: one frontend per port;
		// defaults "base": connect 4000 (ms), tunnel 2h wins, maxconn 500
		{"fe-multi", 6443, "0.0.0.0", "be-full", "roundrobin", 500, 4 * time.Second, 2 * time.Hour},
		{"fe-multi-16443", 16443, "0.0.0.0", "be-full", "roundrobin", 500, 4 * time.Second, 2 * time.Hour},
		{"fe-multi-7443", 7443, "10.0.0.100", "be-full", "roundrobin", 500, 4 * time.Second, 2 * time.Hour},
		// the last defaults ("other", from base) applies to sections without from
		{"tcp-listen", 8080, "0.0.0.0", "tcp-listen", "leastconn", 500, 2 * time.Second, 2 * time.Hour},
		{"fe-other", 9999, "127.0.0.1", "be-hello", "leastconn", 50, 2 * time.Second, 2 * time.Hour},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(fe{})); diff != "" {
		t.Errorf("frontends (-want +got):\n%s", diff)
	}
	full := c.Backends[0]
	if diff := cmp.Diff(servers("s1", "10.0.0.11:6443", "s2", "10.0.0.12:6443", "s3", "10.0.0.13:6443"), full.Servers, eqNet); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
	wantCheck := config.Check{Type: "tls", Port: 6443, Method: "GET", Path: "/", ExpectStatus: 200, Interval: 3 * time.Second, Timeout: time.Second, Rise: 3, Fall: 2,
		CA: "/etc/ssl/vipd/ca.pem", SNI: "api.example", ClientCert: "/etc/ssl/vipd/client.pem", ClientKey: "/etc/ssl/vipd/client.pem"}
	if diff := cmp.Diff(wantCheck, full.Check); diff != "" {
		t.Errorf("be-full check (-want +got):\n%s", diff)
	}
	if !full.ProxyProtocol || !full.CloseOnDown {
		t.Errorf("be-full proxy_protocol %v close_on_down %v", full.ProxyProtocol, full.CloseOnDown)
	}
	listen := c.Backends[1]
	if diff := cmp.Diff(servers("a", "10.0.0.21:8080", "b", "10.0.0.22:8080"), listen.Servers, eqNet); diff != "" {
		t.Errorf("listen servers (-want +got):\n%s", diff)
	}
	if ck := listen.Check; ck.Type != "http" || ck.Method != "HEAD" || ck.Path != "/healthz" || ck.ExpectStatus != 200 || ck.Interval != time.Second || ck.Timeout != 500*time.Millisecond {
		t.Errorf("listen check %+v", ck)
	}
	if ck := c.Backends[2].Check; ck.Type != "tls" || ck.SNI != "hello.example" {
		t.Errorf("be-hello check %+v (the last option, mysql-check, is a connect; check-ssl makes it tls)", ck)
	}
	for line, sub := range map[int]string{
		5: "nbthread", 6: "tune.bufsize", 7: "ssl-default-bind-ciphers", 12: "timeout tunnel 2h decides it", 13: "timeout tunnel 2h decides it",
		16: "option redispatch", 17: "option tcpka", 24: "v4v6", 26: "tcp-request inspect-delay",
		33: `tcp-check send PING\r\n`, 34: "tcp-check expect", 35: "weight 10", 36: "backup", 37: "disabled",
		42: `HTTP/1.1\r\nHost: api`, 45: "fastinter", 54: "HAProxy runs only the last check option", 55: "HAProxy runs only the last check option",
		59: "be-unused: no frontend uses it", 62: "peers mypeers",
	} {
		wantNote(t, im.res, NotCarried, fmt.Sprintf("%s:%d", f, line), sub)
	}
	for line, sub := range map[int]string{
		14: `idle_timeout = "2h"`, 24: `"fe-multi-16443"`, 25: `"fe-multi-7443"`, 30: "static-rr", 35: "s3 without check",
		41: "balance first", 43: "status 200-399", 45: "no port", 46: `inter "2s" differs`, 56: "mysql-check",
	} {
		wantNote(t, im.res, Chosen, fmt.Sprintf("%s:%d", f, line), sub)
	}
}

// TestProxyRefusals: TLS termination, HTTP mode, names, content routing,
// port ranges, PROXY v1, TLS to the server, server templates and
// conditional blocks are errors with file:line.
func TestProxyRefusals(t *testing.T) {
	f := hand + "proxy-refuse.cfg"
	_, errs := importErrs(t, Options{HAProxy: f})
	for line, subs := range map[int][]string{
		4:  {"frontend https-term: mode http", "TCP (layer 4) only"},
		17: {"use_backend web if", "one backend"},
		21: {"bind *:7000-7010", "port range"},
		25: {"frontend nobackend has no default_backend"},
		29: {".if", "conditional blocks"},
		30: {".endif"},
		34: {"web1.example.com:443", "does not resolve names"},
		35: {"send-proxy", "version 2"},
		36: {"ssl", "remove ssl (keep check-ssl"},
		37: {"server-template"},
	} {
		wantError(t, errs, fmt.Sprintf("%s:%d", f, line), subs...)
	}
	wantError(t, errs, f+":4", "frontend http-mode: mode http")

	// TLS termination in a tcp frontend.
	dir := t.TempDir()
	g := filepath.Join(dir, "h.cfg")
	os.WriteFile(g, []byte("frontend f\n    bind *:443 ssl crt /etc/ssl/x.pem\n    default_backend b\nbackend b\n    server s 10.0.0.1:443\n"), 0o644)
	_, errs = importErrs(t, Options{HAProxy: g})
	wantError(t, errs, g+":2", "HAProxy terminates TLS here")
}

// TestStatsAccess: stats page rules that become [http] allow, and those
// that do not (the page then stays loopback-only).
func TestStatsAccess(t *testing.T) {
	im := importOK(t, Options{HAProxy: hand + "stats-rules.cfg"})
	h := im.cfg.HTTP
	if h.Listen != "127.0.0.1:8404" {
		t.Errorf("listen %q", h.Listen)
	}
	if diff := cmp.Diff([]netip.Prefix{pfx("10.20.0.0/16"), pfx("10.30.0.1/32"), pfx("10.30.0.2/32")}, h.Allow, eqNet); diff != "" {
		t.Errorf("allow (-want +got):\n%s", diff)
	}
	wantNote(t, im.res, NotCarried, hand+"stats-rules.cfg:11", "one status page")

	for _, tc := range []struct {
		name  string
		rules string
		allow []netip.Prefix
		note  string
	}{
		{"deny unless", "acl lan src 192.168.0.0/16\n    http-request deny unless lan\n", []netip.Prefix{pfx("192.168.0.0/16")}, ""},
		{"deny if not a and not b", "acl a src 10.1.0.0/16\n    acl b src 10.2.0.0/16\n    http-request deny if !a !b\n", []netip.Prefix{pfx("10.1.0.0/16"), pfx("10.2.0.0/16")}, ""},
		{"tcp reject", "acl a src 10.1.0.0/16\n    tcp-request connection reject if !a\n", []netip.Prefix{pfx("10.1.0.0/16")}, ""},
		{"deny status", "acl a src 10.1.0.0/16\n    http-request deny deny_status 403 if !a\n", []netip.Prefix{pfx("10.1.0.0/16")}, ""},
		{"no rules", "", []netip.Prefix{pfx("0.0.0.0/0"), pfx("::/0")}, "let every client in"},
		{"other acl", "acl ua hdr(user-agent) -i curl\n    http-request deny if ua\n", config.DefaultHTTPAllow(), "loopback clients only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := filepath.Join(t.TempDir(), "h.cfg")
			os.WriteFile(g, []byte("listen stats\n    bind *:8404\n    mode http\n    stats enable\n    "+tc.rules), 0o644)
			im := importOK(t, Options{HAProxy: g})
			if diff := cmp.Diff(tc.allow, im.cfg.HTTP.Allow, eqNet); diff != "" {
				t.Errorf("allow (-want +got):\n%s", diff)
			}
			if tc.note != "" {
				wantNote(t, im.res, Chosen, g+":1", tc.note)
			}
		})
	}
}

// TestStatsOnNodeAddress: a stats page bound to a node's own address
// listens on every address (the file serves every node).
func TestStatsOnNodeAddress(t *testing.T) {
	dir := t.TempDir()
	ka := filepath.Join(dir, "k.conf")
	os.WriteFile(ka, []byte("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n unicast_src_ip 10.0.0.1\n virtual_ipaddress {\n 10.0.0.9\n }\n}\n"), 0o644)
	ha := filepath.Join(dir, "h.cfg")
	os.WriteFile(ha, []byte("listen stats\n    bind 10.0.0.1:8404\n    stats enable\n    stats auth a:b\n    stats auth a:c\n"), 0o644)
	im := importOK(t, Options{Keepalived: one("lb1", ka), HAProxy: ha})
	if im.cfg.HTTP.Listen != ":8404" || len(im.cfg.HTTP.Users) != 1 {
		t.Errorf("http %+v", im.cfg.HTTP)
	}
	wantNote(t, im.res, Chosen, ha+":2", "node lb1's own address")
	wantNote(t, im.res, NotCarried, ha+":5", "second password")
}

func TestHATime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"5000": 5 * time.Second, "5s": 5 * time.Second, "100ms": 100 * time.Millisecond, "2m": 2 * time.Minute,
		"1h": time.Hour, "1d": 24 * time.Hour, "500us": 500 * time.Microsecond,
	} {
		if got, ok := parseHATime(in); !ok || got != want {
			t.Errorf("%q: %s %v, want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "s", "-1s", "1.5s", "1w", "99999999999"} {
		if _, ok := parseHATime(in); ok {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestHAAddr(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ip      string
		port    uint16
		problem bool
	}{
		{"*:6443", "0.0.0.0", 6443, false},
		{":6443", "0.0.0.0", 6443, false},
		{":::6443", "::", 6443, false},
		{"[fd00::1]:6443", "fd00::1", 6443, false},
		{"ipv4@10.0.0.1:80", "10.0.0.1", 80, false},
		{"10.0.0.1", "10.0.0.1", 0, false},
		{"unix@/run/x.sock", "", 0, true},
		{"/run/x.sock", "", 0, true},
		{"host.example:80", "", 0, true},
		{"10.0.0.1:0", "", 0, true},
		{"10.0.0.1:80-90", "", 0, true},
		{"10.0.0.1:+1", "", 0, true},
		{"[fd00::1", "", 0, true},
	} {
		a, problem := parseHAAddr(tc.in)
		if (problem != "") != tc.problem || (!tc.problem && (a.IP.String() != tc.ip || a.Port != tc.port)) {
			t.Errorf("%q: %+v %q", tc.in, a, problem)
		}
	}
}

func TestHAWords(t *testing.T) {
	for in, want := range map[string][]string{
		`  server s1 10.0.0.1:80 check # comment`: {"server", "s1", "10.0.0.1:80", "check"},
		`stats realm HAProxy\ Statistics`:         {"stats", "realm", "HAProxy Statistics"},
		`http-check send hdr Host "a b"`:          {"http-check", "send", "hdr", "Host", "a b"},
		`acl x 'single # quoted'`:                 {"acl", "x", "single # quoted"},
		`tcp-check send PING\r\n`:                 {"tcp-check", "send", "PING\r\n"},
	} {
		got, ok := haWords(in)
		if !ok || !cmp.Equal(got, want) {
			t.Errorf("%q: %q %v, want %q", in, got, ok, want)
		}
	}
	if _, ok := haWords(`bind "*:80`); ok {
		t.Errorf("unterminated quote must fail")
	}
}

// TestOptionsCheck: the CLI's flags are checked before anything is read.
func TestOptionsCheck(t *testing.T) {
	for _, o := range []Options{
		{},
		{Keepalived: []NodeFile{{"", "x.conf"}}},
		{Keepalived: []NodeFile{{"lb1", ""}}},
		{Keepalived: []NodeFile{{"lb1", "a"}, {"lb1", "b"}}},
		{Keepalived: []NodeFile{{"lb1", "a"}}, Addresses: addrs("lb2", "10.0.0.1")},
	} {
		if res, err := Import(o); err == nil || res != nil {
			t.Errorf("%+v: %v %v", o, res, err)
		}
	}
}

// TestUnreadable: a missing file and an oversized one are errors naming
// the file.
func TestUnreadable(t *testing.T) {
	_, errs := importErrs(t, Options{HAProxy: "testdata/nope.cfg"})
	wantError(t, errs, "testdata/nope.cfg", "cannot read", "no such file")
	big := filepath.Join(t.TempDir(), "big.cfg")
	os.WriteFile(big, make([]byte, maxFileSize+1), 0o644)
	_, errs = importErrs(t, Options{HAProxy: big})
	wantError(t, errs, big, "larger than 1 MiB")
}

// TestTimeouts: in mode tcp HAProxy closes a connection idle in both
// directions after the shorter of timeout client and timeout server, or
// after timeout tunnel when set. Shorter than an hour, it would cut API
// watches: not carried over.
func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name, lines string
		idle        time.Duration
		line        int
		note        string
		kind        NoteKind
	}{
		{"short", "timeout client 30s\n    timeout server 2h\n", 0, 2, "would cut API watches", NotCarried},
		{"long", "timeout client 2h\n    timeout server 3h\n", 2 * time.Hour, 2, `idle_timeout = "2h"`, Chosen},
		{"tunnel wins", "timeout client 10s\n    timeout server 10s\n    timeout tunnel 1h\n", time.Hour, 4, `timeout tunnel 1h: idle_timeout = "1h"`, Chosen},
		{"none", "timeout client 0\n    timeout server 0\n", 0, 2, "no idle timeout, which is vipd's default", NotCarried},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := filepath.Join(t.TempDir(), "h.cfg")
			os.WriteFile(g, []byte("defaults\n    "+tc.lines+"frontend f\n    bind 127.0.0.1:6443\n    default_backend b\nbackend b\n    balance roundrobin\n    server s 10.0.0.1:6443 check\n"), 0o644)
			im := importOK(t, Options{HAProxy: g})
			if got := im.cfg.Frontends[0].IdleTimeout; got != tc.idle {
				t.Errorf("idle_timeout %s, want %s", got, tc.idle)
			}
			wantNote(t, im.res, tc.kind, fmt.Sprintf("%s:%d", g, tc.line), tc.note)
		})
	}
	g := filepath.Join(t.TempDir(), "h.cfg")
	os.WriteFile(g, []byte("frontend f\n    bind :1\n    timeout client 5x\n    default_backend b\nbackend b\n    server s 10.0.0.1:1\n"), 0o644)
	_, errs := importErrs(t, Options{HAProxy: g})
	wantError(t, errs, g+":3", "timeout client 5x", "not an HAProxy time")
}

// TestEveryLineNamed: a directive vipd import does not know, in any
// section, is named with its line.
func TestEveryLineNamed(t *testing.T) {
	g := filepath.Join(t.TempDir(), "h.cfg")
	os.WriteFile(g, []byte("global\n    frob 1\ndefaults\n    frob 2\nfrontend f\n    bind :1\n    frob 3\n    default_backend b\nbackend b\n    frob 4\n    server s 10.0.0.1:1 frob\nuserlist u\n    user a password x\n"), 0o644)
	im := importOK(t, Options{HAProxy: g})
	for _, line := range []int{2, 4, 7, 10} {
		wantNote(t, im.res, NotCarried, fmt.Sprintf("%s:%d", g, line), "frob", "no vipd equivalent")
	}
	wantNote(t, im.res, NotCarried, g+":11", "server s: frob")
	wantNote(t, im.res, NotCarried, g+":12", "userlist u")
}
