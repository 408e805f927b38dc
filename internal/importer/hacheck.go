package importer

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

func netipAddrPort(ip netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(ip, port) }

// haCheckOptions are the options that choose HAProxy's check; the last one
// in effect wins.
var haCheckOptions = map[string]bool{
	"httpchk": true, "ssl-hello-chk": true, "tcp-check": true, "mysql-check": true, "pgsql-check": true,
	"redis-check": true, "smtpchk": true, "ldap-check": true, "spop-check": true, "external-check": true,
}

// checkOptions returns the check options in effect: the section's own,
// else those of its defaults chain.
func checkOptions(s *haSection) []*haDirective {
	for p := s; p != nil; p = p.from {
		var out []*haDirective
		for _, d := range p.Dirs {
			if d.key() == "option" && haCheckOptions[d.arg(0)] {
				out = append(out, d)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// check translates a backend's health check.
func (t *haTranslator) check(s *haSection, servers []*haServer, target string) outCheck {
	opts := checkOptions(s)
	httpChecks := s.all("http-check")
	tcpChecks := s.all("tcp-check")
	timeoutCheck := s.get("timeout", "check")
	used := func(ds ...[]*haDirective) {
		for _, l := range ds {
			for _, d := range l {
				d.done = true
			}
		}
	}

	var checked []*haServer
	for _, sv := range servers {
		if sv.has("check") {
			checked = append(checked, sv)
		}
	}
	if len(checked) == 0 {
		used(opts, httpChecks, tcpChecks)
		if timeoutCheck != nil {
			timeoutCheck.done = true
		}
		t.r.chose(s.Head.Pos, target, "%s: no server line has check, so HAProxy never checked these servers and vipd does not either (check type none): add a check to take dead servers out", s.label())
		return outCheck{Type: "none"}
	}
	if len(checked) < len(servers) {
		var un []string
		for _, sv := range servers {
			if !sv.has("check") {
				un = append(un, sv.name)
			}
		}
		t.r.chose(checked[0].d.Pos, target, "%s: server %s without check: vipd checks every server of a backend", s.label(), strings.Join(un, ", "))
	}

	c := outCheck{Type: "tcp"}
	ref := checked[0]
	tls := t.agree(checked, "check-ssl", target, "the check's TLS") == "on"
	c.Interval = t.timeOpt(ref, "inter")
	t.agree(checked, "inter", target, "check.interval")
	c.Rise = t.intOpt(ref, "rise", 1, 100)
	t.agree(checked, "rise", target, "check.rise")
	c.Fall = t.intOpt(ref, "fall", 1, 100)
	t.agree(checked, "fall", target, "check.fall")
	if p := t.intOpt(ref, "port", 1, 65535); p > 0 {
		c.Port = uint16(p)
	}
	t.agree(checked, "port", target, "check.port")

	kind := ""
	if len(opts) > 0 {
		kind = opts[len(opts)-1].arg(0)
	}
	var httpOpt, helloOpt *haDirective
	for _, d := range opts {
		d.done = true
		switch d.arg(0) {
		case "httpchk":
			httpOpt = d
		case "ssl-hello-chk":
			helloOpt = d
		}
	}
	// Both httpchk and ssl-hello-chk, one of them last: the operator meant
	// an HTTP check over TLS (kubeadm's guide writes exactly this).
	ambiguous := httpOpt != nil && helloOpt != nil && (kind == "httpchk" || kind == "ssl-hello-chk")
	for _, d := range opts {
		if d != opts[len(opts)-1] && !(ambiguous && (d == httpOpt || d == helloOpt)) {
			t.r.notCarried(d.Pos, target, "%s: HAProxy runs only the last check option (%s)", d.line(), opts[len(opts)-1].line())
		}
	}

	switch {
	case ambiguous:
		used(tcpChecks)
		c.Type = "https"
		c.Insecure = true
		t.httpCheck(httpOpt, httpChecks, &c, &tls, target)
		c.Type = "https"
		ran := "option ssl-hello-chk (a TLS hello, no HTTP), so http-check expect was never evaluated"
		if kind == "httpchk" {
			ran = "option httpchk in plain HTTP against a port that speaks TLS (option ssl-hello-chk)"
		}
		t.r.chose(helloOpt.Pos, target, "%s has both option httpchk and option ssl-hello-chk; HAProxy ran only the last, %s. vipd checks https %s %s expecting %d without verifying the certificate: the httpchk line states the intent and ssl-hello-chk shows the port speaks TLS. This is stricter than what HAProxy did: if the servers refuse anonymous %s, use check = { type = \"tls\", insecure_skip_verify = true }",
			s.label(), ran, orDefault(c.Method, "GET"), orDefault(c.Path, "/"), orInt(c.ExpectStatus, 200), orDefault(c.Path, "/"))
	case kind == "httpchk":
		used(tcpChecks)
		t.httpCheck(httpOpt, httpChecks, &c, &tls, target)
		c.Type = "http"
		if tls {
			c.Type = "https"
		}
	case kind == "ssl-hello-chk":
		used(httpChecks, tcpChecks)
		c.Type = "tls"
		c.Insecure = true
		tls = false // verification settings do not apply to a hello
		t.r.chose(helloOpt.Pos, target, "option ssl-hello-chk: a TLS handshake check without certificate verification (type = \"tls\", insecure_skip_verify = true); set ca instead to verify the servers")
	case kind == "tcp-check":
		used(httpChecks)
		t.tcpCheck(tcpChecks, &c, &tls, target)
		c.Type = "tcp"
		if tls {
			c.Type = "tls"
		}
	case kind != "":
		used(httpChecks, tcpChecks)
		c.Type = "tcp"
		if tls {
			c.Type = "tls"
		}
		t.r.chose(opts[len(opts)-1].Pos, target, "option %s: vipd has no %s protocol check; it checks that a %s connection succeeds", kind, kind, c.Type)
	default:
		used(httpChecks, tcpChecks)
		if tls {
			c.Type = "tls"
		}
	}
	if c.Type == "tls" || c.Type == "https" {
		t.tlsVerify(ref, checked, &c, tls, target)
	} else if c.SNI != "" {
		t.r.notCarried(s.Head.Pos, target, "%s: sni %s: the check does not use TLS", s.label(), c.SNI)
		c.SNI = ""
	}
	at := s.Head.Pos
	if o, ok := ref.opts["inter"]; ok {
		at = o.d.Pos
	}
	t.checkTimeout(timeoutCheck, &c, at, target)
	return c
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// httpCheck reads option httpchk and the http-check rules.
func (t *haTranslator) httpCheck(opt *haDirective, rules []*haDirective, c *outCheck, tls *bool, target string) {
	// option httpchk [<method>] <uri> [<version>]; no argument means
	// OPTIONS / HTTP/1.0.
	args := opt.Words[2:]
	switch len(args) {
	case 0:
		c.Method, c.Path = "OPTIONS", "/"
	case 1:
		c.Path = args[0]
	default:
		c.Method, c.Path = args[0], args[1]
		if len(args) > 2 {
			t.r.notCarried(opt.Pos, target, "option httpchk: %s: vipd sends HTTP/1.1 with its own headers", (&haDirective{Words: args[2:]}).line())
		}
	}
	expect, send := false, false
	for _, d := range rules {
		d.done = true
		switch d.arg(0) {
		case "send":
			send = true
			for i := 2; i+1 < len(d.Words); i += 2 {
				switch d.Words[i] {
				case "meth":
					c.Method = d.Words[i+1]
				case "uri":
					c.Path = d.Words[i+1]
				case "ver":
				default:
					t.r.notCarried(d.Pos, target, "http-check send: %s %s: vipd sends no headers or body of its own", d.Words[i], d.Words[i+1])
				}
			}
		case "connect":
			t.connectRule(d, c, tls, target)
		case "expect":
			expect = true
			t.expectRule(d, c, target)
		default:
			t.r.notCarried(d.Pos, target, "%s: vipd's http check sends one request and checks its status", d.line())
		}
	}
	if len(args) == 0 && !send {
		t.r.chose(opt.Pos, target, "option httpchk without a request: HAProxy sends OPTIONS /, and so does vipd")
	}
	if c.Method != "" {
		c.Method = strings.ToUpper(c.Method)
		switch c.Method {
		case "GET", "HEAD", "OPTIONS", "POST":
		default:
			t.r.chose(opt.Pos, target, "check method %s: vipd sends GET, HEAD, OPTIONS or POST; chose GET", c.Method)
			c.Method = "GET"
		}
		if c.Method == "GET" {
			c.Method = "" // vipd's default
		}
	}
	if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		t.r.errorf(opt.Pos, "check uri %s: must start with /", c.Path)
		c.Path = ""
	}
	if c.Path == "/" {
		c.Path = ""
	}
	if !expect {
		t.r.chose(opt.Pos, target, "no http-check expect: HAProxy accepted any 2xx or 3xx status; vipd expects one status, 200")
	}
}

func (t *haTranslator) expectRule(d *haDirective, c *outCheck, target string) {
	words := d.Words[2:]
	if len(words) > 0 && words[0] == "!" {
		t.r.chose(d.Pos, target, "%s: vipd cannot negate an expectation; it expects status 200", d.line())
		return
	}
	if len(words) < 2 {
		t.r.errorf(d.Pos, "%s: incomplete", d.line())
		return
	}
	switch words[0] {
	case "status":
		first := words[1]
		if i := strings.IndexAny(first, ",-"); i >= 0 {
			first = first[:i]
			t.r.chose(d.Pos, target, "%s: vipd expects one status; chose %s", d.line(), first)
		}
		n, err := strconv.Atoi(first)
		if err != nil || n < 100 || n > 599 {
			t.r.errorf(d.Pos, "%s: not an HTTP status", d.line())
			return
		}
		c.ExpectStatus = n
		if n == 200 {
			c.ExpectStatus = 0 // vipd's default
		}
	default:
		t.r.chose(d.Pos, target, "%s: vipd checks the status only, and expects 200", d.line())
	}
}

// connectRule reads "http-check connect" and "tcp-check connect".
func (t *haTranslator) connectRule(d *haDirective, c *outCheck, tls *bool, target string) {
	for i := 2; i < len(d.Words); i++ {
		switch w := d.Words[i]; w {
		case "ssl":
			*tls = true
		case "port":
			if i+1 < len(d.Words) {
				i++
				n, err := strconv.Atoi(d.Words[i])
				if err != nil || n < 1 || n > 65535 {
					t.r.errorf(d.Pos, "%s: bad port", d.line())
					continue
				}
				c.Port = uint16(n)
			}
		case "sni":
			if i+1 < len(d.Words) {
				i++
				c.SNI = d.Words[i]
			}
		case "default", "linger", "send-proxy", "via-socks4":
			t.r.notCarried(d.Pos, target, "%s: %s: no vipd equivalent", d.line(), w)
		default:
			if i+1 < len(d.Words) && (w == "alpn" || w == "proto" || w == "addr" || w == "comment") {
				i++
			}
			t.r.notCarried(d.Pos, target, "%s: %s: no vipd equivalent", d.line(), w)
		}
	}
}

// tcpCheck reads the tcp-check rules: vipd's tcp and tls checks connect
// (and shake hands) only.
func (t *haTranslator) tcpCheck(rules []*haDirective, c *outCheck, tls *bool, target string) {
	for _, d := range rules {
		d.done = true
		switch d.arg(0) {
		case "connect":
			t.connectRule(d, c, tls, target)
		case "comment":
		default:
			t.r.notCarried(d.Pos, target, "%s: vipd's tcp check only connects (a tls check also shakes hands)", d.line())
		}
	}
}

// tlsVerify sets how a tls or https check verifies the server.
func (t *haTranslator) tlsVerify(ref *haServer, checked []*haServer, c *outCheck, fromServer bool, target string) {
	if sni, ok := ref.opts["check-sni"]; ok && c.SNI == "" {
		c.SNI = sni.value
	}
	t.agree(checked, "check-sni", target, "check.sni")
	if crt, ok := ref.opts["crt"]; ok {
		// HAProxy's crt is one PEM with the certificate and the key, which
		// Go reads for both.
		p := absPath(t.crtBase, crt.value)
		if strings.HasPrefix(p, "/") {
			c.ClientCert, c.ClientKey = p, p
		} else {
			t.r.errorf(crt.d.Pos, "crt %s: vipd needs an absolute path (or set crt-base in global)", crt.value)
		}
	}
	t.agree(checked, "crt", target, "check.client_cert")
	if c.Insecure {
		return
	}
	verify := t.agree(checked, "verify", target, "check.insecure_skip_verify")
	ca := t.agree(checked, "ca-file", target, "check.ca")
	switch {
	case verify == "none" || verify == "" && t.serverVerifyNone:
		c.Insecure = true
	case ca != "":
		c.CA = absPath(t.caBase, ca)
		if !strings.HasPrefix(c.CA, "/") {
			t.r.errorf(ref.opts["ca-file"].d.Pos, "ca-file %s: vipd needs an absolute path (or set ca-base in global)", ca)
			c.CA = ""
		}
	default:
		t.r.chose(ref.d.Pos, target, "server %s verifies the certificate without a ca-file; vipd verifies against the system roots, which do not sign a cluster's kube-apiserver certificate: set check.ca", ref.name)
	}
}

// checkTimeout carries over timeout check when vipd can take it.
func (t *haTranslator) checkTimeout(d *haDirective, c *outCheck, at Pos, target string) {
	interval := c.Interval
	if interval == 0 {
		interval = 2 * time.Second // HAProxy's and vipd's default inter
	}
	if d == nil {
		if interval <= time.Second {
			c.Timeout = interval / 2
			t.r.chose(at, target, "check interval %s: timeout %s (HAProxy bounds a check by its interval; vipd's must be shorter)", fmtDur(interval), fmtDur(c.Timeout))
		}
		return
	}
	d.done = true
	v, ok := parseHATime(d.arg(1))
	switch {
	case !ok || v < 10*time.Millisecond:
		t.r.errorf(d.Pos, "%s: vipd takes 10ms..1h", d.line())
	case v < interval:
		c.Timeout = v
	default:
		c.Timeout = interval / 2
		if c.Timeout == time.Second {
			c.Timeout = 0 // vipd's default
		}
		t.r.chose(d.Pos, target, "%s: HAProxy bounds a check by its interval (%s); a vipd check timeout must be shorter than the interval: timeout %s", d.line(), fmtDur(interval), fmtDur(interval/2))
	}
}
