package importer

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// stats translates a stats page section into [http].
func (t *haTranslator) stats(s *haSection) {
	const target = "http"
	if t.res.http != nil {
		markSection(s)
		t.r.notCarried(s.Head.Pos, target, "%s: vipd has one status page, and an earlier stats section is carried over", s.label())
		return
	}
	h := &outHTTP{}
	if d := s.get("mode"); d != nil {
		d.done = true
	}
	for _, d := range s.Dirs {
		if d.key() != "bind" {
			continue
		}
		d.done = true
		if h.Listen != "" {
			t.r.notCarried(d.Pos, target, "%s: vipd's status page has one listen address", d.line())
			continue
		}
		t.bindOptions(d, target)
		addr := strings.Split(d.arg(0), ",")[0]
		a, problem := parseHAAddr(addr)
		if problem == "" && !a.HasPort {
			problem = "no port"
		}
		if problem != "" {
			t.r.errorf(d.Pos, "%s: bind %s: %s", s.label(), addr, problem)
			continue
		}
		h.Listen = t.listenAddr(d, a)
	}
	if h.Listen == "" {
		t.r.errorf(s.Head.Pos, "%s has no bind line", s.label())
		return
	}
	for _, d := range s.Dirs {
		if d.key() != "stats" {
			continue
		}
		d.done = true
		switch d.arg(0) {
		case "enable":
		case "auth":
			t.statsUser(d, h)
		case "uri":
			t.r.notCarried(d.Pos, target, "%s: vipd serves the page at /, with /metrics and /api/v1/status beside it", d.line())
		case "admin":
			t.r.notCarried(d.Pos, target, "%s: vipd's page only shows; drain and maint are CLI commands (vipd server drain BACKEND/SERVER)", d.line())
		case "refresh":
			t.r.notCarried(d.Pos, target, "%s: vipd's page has its own refresh", d.line())
		default:
			t.r.notCarried(d.Pos, target, "%s: no vipd equivalent", d.line())
		}
	}
	t.allow(s, h)
	t.res.http = h
}

// listenAddr turns a stats bind address into [http] listen. The vipd file
// is the same on every node, so a node's own address becomes every
// address.
func (t *haTranslator) listenAddr(d *haDirective, a haAddr) string {
	port := strconv.Itoa(int(a.Port))
	switch {
	case a.IP.IsUnspecified():
		return ":" + port
	case t.nodeAddrs[a.IP] != "":
		t.r.chose(d.Pos, "http", "%s: %s is node %s's own address; the vipd file serves every node, so the page listens on every address (listen = \":%s\"), limited by allow", d.line(), a.IP, t.nodeAddrs[a.IP], port)
		return ":" + port
	}
	return netip.AddrPortFrom(a.IP, a.Port).String()
}

func (t *haTranslator) statsUser(d *haDirective, h *outHTTP) {
	user, pass, ok := strings.Cut(d.arg(1), ":")
	if !ok || user == "" || pass == "" {
		t.r.errorf(d.Pos, "stats auth: write user:password")
		return
	}
	for _, u := range h.Users {
		if u.Name == user {
			t.r.notCarried(d.Pos, "http", "stats auth %s: a second password for the same user; the first is carried over", user)
			return
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), t.cost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		t.r.errorf(d.Pos, "stats auth %s: bcrypt takes passwords of at most 72 bytes; choose a shorter one", user)
		return
	}
	if err != nil {
		t.r.errorf(d.Pos, "stats auth %s: hashing the password: %v", user, err)
		return
	}
	t.r.chose(d.Pos, "http", "stats auth %s: [[http.user]] with a bcrypt hash of the password made at import; the password itself is not in this file", user)
	h.Users = append(h.Users, outUser{Name: user, Hash: string(hash)})
}

// allow turns the source ACLs that guard a stats page into [http] allow.
// Recognised: "acl NAME src CIDR..." with "http-request deny if !NAME"
// ("unless NAME", "if !A !B", "unless A || B"), "http-request allow if NAME"
// followed by "http-request deny", and the same with "tcp-request
// connection reject".
func (t *haTranslator) allow(s *haSection, h *outHTTP) {
	const target = "http"
	acls := map[string][]netip.Prefix{}
	bad := map[string]bool{}
	for _, d := range s.Dirs {
		if d.key() != "acl" {
			continue
		}
		d.done = true
		name := d.arg(0)
		if d.arg(1) != "src" {
			bad[name] = true
			t.r.notCarried(d.Pos, target, "%s: only src ACLs are carried over (as allow)", d.line())
			continue
		}
		for _, w := range d.Words[3:] {
			p, err := parsePrefix(w)
			if err != nil {
				bad[name] = true
				t.r.notCarried(d.Pos, target, "%s: %s is not an address or CIDR vipd import can read", d.line(), w)
				break
			}
			acls[name] = append(acls[name], p)
		}
	}
	var (
		allowed   []netip.Prefix
		rules     int
		allowIf   []string // names of a preceding "allow if"
		unhandled []*haDirective
	)
	add := func(names []string) bool {
		for _, n := range names {
			if bad[n] || acls[n] == nil {
				return false
			}
		}
		for _, n := range names {
			allowed = append(allowed, acls[n]...)
		}
		return true
	}
	for _, d := range s.Dirs {
		var w []string
		switch {
		case d.key() == "http-request" && len(d.Words) > 1:
			w = d.Words[1:]
		case d.key() == "tcp-request" && (d.arg(0) == "connection" || d.arg(0) == "content"):
			w = d.Words[2:]
		default:
			continue
		}
		d.done = true
		rules++
		action, cond := w[0], w[1:]
		for len(cond) > 1 && cond[0] == "deny_status" {
			cond = cond[2:]
		}
		switch {
		case (action == "deny" || action == "reject") && len(cond) == 0 && allowIf != nil:
			if add(allowIf) {
				continue
			}
		case action == "allow" || action == "accept":
			if names, ok := aclNames(cond, "if", false); ok {
				allowIf = names
				continue
			}
		case action == "deny" || action == "reject":
			if names, ok := aclNames(cond, "if", true); ok && add(names) {
				continue
			}
			if names, ok := aclNames(cond, "unless", false); ok && add(names) {
				continue
			}
		}
		unhandled = append(unhandled, d)
	}
	for _, d := range unhandled {
		t.r.notCarried(d.Pos, target, "%s: vipd's page has an allow list of client networks and basic auth only", d.line())
	}
	switch {
	case len(allowed) > 0:
		h.Allow = allowed
	case rules > 0:
		t.r.chose(s.Head.Pos, target, "%s: its access rules are not a plain source allow list, so vipd's page keeps its default: loopback clients only; add allow = [...] for the networks that may read it", s.label())
	case !isLoopbackListen(h.Listen):
		h.Allow = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		t.r.chose(s.Head.Pos, target, "%s had no source ACL, so HAProxy let every client in; allow = every network keeps that (vipd's default would be loopback only): narrow it", s.label())
	}
}

// aclNames reads "if !A !B" (negated) or "if A || B" / "unless A or B"
// (plain): a list of ACL names joined the way the rule needs.
func aclNames(cond []string, kw string, negated bool) ([]string, bool) {
	if len(cond) < 2 || cond[0] != kw {
		return nil, false
	}
	var names []string
	for i, w := range cond[1:] {
		if negated {
			if !strings.HasPrefix(w, "!") || len(w) == 1 {
				return nil, false
			}
			names = append(names, w[1:])
			continue
		}
		if i%2 == 1 {
			if w != "||" && w != "or" {
				return nil, false
			}
			continue
		}
		if strings.HasPrefix(w, "!") || strings.HasPrefix(w, "{") {
			return nil, false
		}
		names = append(names, w)
	}
	return names, len(names) > 0
}

func isLoopbackListen(l string) bool {
	ap, err := netip.ParseAddrPort(l)
	return err == nil && ap.Addr().IsLoopback()
}

// parsePrefix reads "10.0.0.0/8" or a bare address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Why proxy and defaults directives are not carried over, by keyword or by
// "keyword argument".
var haReasons = map[string]string{
	"log":                        "vipd logs every state change to stderr (journald); it keeps no per-connection log",
	"log-format":                 "vipd keeps no per-connection log",
	"option tcplog":              "vipd keeps no per-connection log",
	"option httplog":             "vipd keeps no per-connection log",
	"option dontlognull":         "vipd keeps no per-connection log",
	"option dontlog-normal":      "vipd keeps no per-connection log",
	"option log-separate-errors": "vipd keeps no per-connection log",
	"option log-health-checks":   "vipd logs every server state change",
	"option logasap":             "vipd keeps no per-connection log",
	"mode":                       "vipd proxies TCP (layer 4) only",
	"option http-server-close":   "an HTTP mode option; vipd proxies TCP",
	"option httpclose":           "an HTTP mode option; vipd proxies TCP",
	"option http-keep-alive":     "an HTTP mode option; vipd proxies TCP",
	"option forwardfor":          "an HTTP mode option; vipd proxies TCP",
	"option http-buffer-request": "an HTTP mode option; vipd proxies TCP",
	"errorfile":                  "an HTTP mode option; vipd proxies TCP",
	"http-request":               "an HTTP mode rule; vipd proxies TCP",
	"http-response":              "an HTTP mode rule; vipd proxies TCP",
	"http-after-response":        "an HTTP mode rule; vipd proxies TCP",
	"timeout http-request":       "an HTTP mode timeout; vipd proxies TCP",
	"timeout http-keep-alive":    "an HTTP mode timeout; vipd proxies TCP",
	"timeout queue":              "vipd does not queue: at maxconn clients wait in the kernel backlog",
	"timeout client-fin":         "vipd forwards half-closes and closes when both sides are done",
	"timeout server-fin":         "vipd forwards half-closes and closes when both sides are done",
	"timeout check":              "no server has check",
	"compression":                "an HTTP mode option; vipd proxies TCP",
	"option redispatch":          "already what vipd does: a connect that fails tries another server (up to 4)",
	"retries":                    "already what vipd does: a connect that fails tries another server (up to 4)",
	"option tcpka":               "already what vipd does: TCP keepalive on both sides",
	"option clitcpka":            "already what vipd does: TCP keepalive on both sides",
	"option srvtcpka":            "already what vipd does: TCP keepalive on both sides",
	"option splice-auto":         "vipd copies in the kernel where it can",
	"option splice-request":      "vipd copies in the kernel where it can",
	"option splice-response":     "vipd copies in the kernel where it can",
	"option abortonclose":        "vipd closes the server side when the client goes",
	"option allbackups":          "vipd has no backup servers",
	"option persist":             "vipd has no persistence beyond balance = \"source\"",
	"option socket-stats":        "vipd counts connections per frontend and server",
	"option independent-streams": "no vipd equivalent",
	"option nolinger":            "no vipd equivalent",
	"option contstats":           "vipd counts bytes continuously",
	"stick-table":                "vipd has no stick tables; balance = \"source\" keeps a client on one server",
	"stick":                      "vipd has no stick tables; balance = \"source\" keeps a client on one server",
	"hash-type":                  "vipd's source balancing uses rendezvous hashing",
	"cookie":                     "vipd proxies TCP; balance = \"source\" keeps a client on one server",
	"persist":                    "vipd has no persistence beyond balance = \"source\"",
	"fullconn":                   "vipd limits connections per frontend and globally",
	"tcp-request":                "vipd does not inspect the traffic",
	"tcp-response":               "vipd does not inspect the traffic",
	"acl":                        "ACLs are carried over only as a stats page's allow list",
	"description":                "no vipd equivalent",
	"id":                         "no vipd equivalent",
	"enabled":                    "no vipd equivalent",
	"disabled":                   "a disabled proxy: vipd import carries it over anyway; leave it out of the output if it must stay off",
	"bind-process":               "vipd sizes its event loops to the CPUs",
	"source":                     "vipd connects from the host's own address",
	"email-alert":                "vipd sends no mail; [notify] runs a command on every transition",
	"monitor-uri":                "an HTTP mode option; vipd proxies TCP",
	"monitor":                    "an HTTP mode option; vipd proxies TCP",
	"unique-id-format":           "an HTTP mode option; vipd proxies TCP",
	"capture":                    "vipd keeps no per-connection log",
	"rate-limit":                 "vipd limits concurrent connections (maxconn), not their rate",
	"maxconn":                    "vipd sets maxconn per frontend",
	"balance":                    "no backend uses it",
	"default-server":             "no server line uses it",
	"option httpchk":             "no backend uses it",
	"option ssl-hello-chk":       "no backend uses it",
	"option tcp-check":           "no backend uses it",
	"http-check":                 "no backend uses it",
	"tcp-check":                  "no backend uses it",
	"timeout connect":            "no backend uses it",
	"timeout client":             "no frontend uses it",
	"timeout server":             "no backend uses it",
	"timeout tunnel":             "no backend uses it",
	"default_backend":            "no frontend uses it",
}

// sweep names every directive of a section that was not translated.
func (t *haTranslator) sweep(s *haSection) {
	target := ""
	switch s.Kind {
	case "frontend":
		target = "frontend:" + s.Name
	case "backend":
		target = "backend:" + s.Name
	case "listen":
		target = "frontend:" + s.Name
		if isStats(s) {
			target = "http"
		}
	case "global":
		target = "global"
	}
	for _, d := range s.Dirs {
		if d.done {
			continue
		}
		d.done = true
		reason := haReasons[d.key()+" "+d.arg(0)]
		if reason == "" {
			reason = haReasons[d.key()]
		}
		if reason == "" {
			reason = "no vipd equivalent"
		}
		t.r.notCarried(d.Pos, target, "%s: %s", d.line(), reason)
	}
}
