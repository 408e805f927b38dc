package importer

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// haResult is what haproxy.cfg contributes to the vipd file.
type haResult struct {
	frontends []*outFrontend
	backends  []*outBackend
	http      *outHTTP
	maxconn   int
}

type haTranslator struct {
	r    *report
	secs []*haSection
	// nodeAddrs are the keepalived nodes' own addresses: a bind on one of
	// them is node-specific, which a shared vipd file cannot be.
	nodeAddrs map[netip.Addr]string
	cost      int

	caBase, crtBase  string
	serverVerifyNone bool
	backends         map[string]*haSection
	names            map[string]bool // frontend names given out
	built            map[string]*outBackend
	res              haResult
}

func translateHAProxy(r *report, secs []*haSection, nodeAddrs map[netip.Addr]string, cost int) *haResult {
	t := &haTranslator{r: r, secs: secs, nodeAddrs: nodeAddrs, cost: cost,
		backends: map[string]*haSection{}, built: map[string]*outBackend{}, names: map[string]bool{}}
	for _, s := range secs {
		if s.Kind == "frontend" || s.Kind == "listen" {
			t.names[s.Name] = true
		}
	}
	for _, s := range secs {
		switch s.Kind {
		case "global":
			t.global(s)
		case "backend", "listen":
			if _, dup := t.backends[s.Name]; !dup && s.Name != "" {
				t.backends[s.Name] = s
			}
		}
	}
	for _, s := range secs {
		switch {
		case s.Kind != "frontend" && s.Kind != "listen":
		case isStats(s):
			t.stats(s)
		default:
			t.frontend(s)
		}
	}
	for _, s := range secs {
		switch s.Kind {
		case "backend":
			if t.built[s.Name] == nil {
				markSection(s)
				t.r.notCarried(s.Head.Pos, "", "%s: no frontend uses it", s.label())
			}
		case "defaults", "frontend", "listen", "global":
		case "unnamed":
			markSection(s)
		default:
			markSection(s)
			t.r.notCarried(s.Head.Pos, "", "%s: %s", s.label(), haOtherSections[s.Kind])
		}
	}
	for _, s := range secs {
		t.sweep(s)
	}
	return &t.res
}

func markSection(s *haSection) {
	for _, d := range s.Dirs {
		d.done = true
	}
}

// Why global directives are not carried over.
var haGlobalReasons = map[string]string{
	"log":                  "vipd logs to stderr (journald)",
	"log-send-hostname":    "vipd logs to stderr (journald)",
	"log-tag":              "vipd logs to stderr (journald)",
	"chroot":               "the vipd unit confines the daemon (ProtectSystem, no capabilities but NET_ADMIN, NET_RAW and NET_BIND_SERVICE)",
	"user":                 "the vipd unit runs the daemon as user vipd",
	"group":                "the vipd unit runs the daemon as user vipd",
	"uid":                  "the vipd unit runs the daemon as user vipd",
	"gid":                  "the vipd unit runs the daemon as user vipd",
	"daemon":               "vipd runs in the foreground under systemd",
	"master-worker":        "vipd runs in the foreground under systemd",
	"pidfile":              "vipd runs in the foreground under systemd",
	"stats":                "vipd's CLI talks to the daemon over [control] socket (vipd status, vipd server drain)",
	"nbproc":               "vipd sizes its event loops to the CPUs",
	"nbthread":             "vipd sizes its event loops to the CPUs",
	"cpu-map":              "vipd sizes its event loops to the CPUs",
	"ulimit-n":             "set LimitNOFILE in the vipd unit",
	"hard-stop-after":      "vipd hands the VIP over and then closes its connections",
	"spread-checks":        "vipd spreads its checks by itself",
	"description":          "no vipd equivalent",
	"node":                 "vipd names each node by its [[node]] name",
	"server-state-file":    "vipd keeps server state (drain, maint) in the running daemon",
	"server-state-base":    "vipd keeps server state (drain, maint) in the running daemon",
	"external-check":       "vipd runs scripts only as VRRP trackers",
	"insecure-fork-wanted": "vipd runs scripts only as VRRP trackers",
	"lua-load":             "vipd has no Lua",
	"setenv":               "no vipd equivalent",
	"presetenv":            "no vipd equivalent",
	"maxconnrate":          "vipd limits concurrent connections ([global] maxconn), not their rate",
	"maxsessrate":          "vipd limits concurrent connections ([global] maxconn), not their rate",
	"maxsslrate":           "vipd terminates no TLS",
	"ssl-dh-param-file":    "vipd terminates no TLS",
}

func (t *haTranslator) global(s *haSection) {
	for _, d := range s.Dirs {
		d.done = true
		k := d.key()
		switch {
		case k == "maxconn":
			n, err := strconv.Atoi(d.arg(0))
			if err != nil || n < 0 || n > 1<<24 {
				t.r.errorf(d.Pos, "maxconn %s: not a connection count 0..%d", d.arg(0), 1<<24)
				continue
			}
			t.res.maxconn = n
		case k == "ca-base":
			t.caBase = d.arg(0)
		case k == "crt-base":
			t.crtBase = d.arg(0)
		case k == "ssl-server-verify":
			t.serverVerifyNone = d.arg(0) == "none"
		case strings.HasPrefix(k, "tune.") || strings.HasPrefix(k, "ssl-") || strings.HasPrefix(k, "ssl."):
			t.r.notCarried(d.Pos, "global", "%s: vipd has no such tuning (it terminates no TLS; its buffers size themselves)", k)
		default:
			reason, ok := haGlobalReasons[k]
			if !ok {
				reason = "no vipd equivalent"
			}
			t.r.notCarried(d.Pos, "global", "%s: %s", d.line(), reason)
		}
	}
}

// isStats tells a stats page section from a proxy.
func isStats(s *haSection) bool {
	for _, d := range s.Dirs {
		if d.key() == "stats" && d.arg(0) != "socket" && d.arg(0) != "timeout" {
			return true
		}
	}
	return false
}

// mode returns the proxy's mode and marks the directive used.
func (t *haTranslator) mode(s *haSection) string {
	d := s.get("mode")
	if d == nil {
		return "tcp" // HAProxy's default
	}
	d.done = true
	return d.arg(0)
}

func (t *haTranslator) frontend(s *haSection) {
	target := "frontend:" + s.Name
	if m := t.mode(s); m != "tcp" {
		d := s.get("mode")
		t.r.errorf(d.Pos, "%s: mode %s: vipd proxies TCP (layer 4) only; set mode tcp in this %s (kube-apiserver and Talos apid terminate TLS themselves), or leave it out of the import", s.label(), m, s.Kind)
		markSection(s)
		return
	}
	beName, ok := t.backendOf(s)
	if !ok {
		markSection(s)
		return
	}
	var binds []*haDirective
	for _, d := range s.Dirs {
		if d.key() == "bind" {
			binds = append(binds, d)
		}
	}
	if len(binds) == 0 {
		t.r.errorf(s.Head.Pos, "%s has no bind line; vipd needs the port clients connect to", s.label())
		markSection(s)
		return
	}
	be := t.backend(beName, s)
	var fes []*outFrontend
	ports := map[uint16]int{}
	seen := map[haAddr]bool{}
	for _, b := range binds {
		b.done = true
		t.bindOptions(b, target)
		for _, addr := range strings.Split(b.arg(0), ",") {
			a, problem := parseHAAddr(addr)
			if problem == "" && !a.HasPort {
				problem = "no port"
			}
			if problem != "" {
				t.r.errorf(b.Pos, "%s: bind %s: %s", s.label(), addr, problem)
				continue
			}
			if seen[a] {
				t.r.notCarried(b.Pos, target, "%s: bind %s: already bound by this %s", s.label(), addr, s.Kind)
				continue
			}
			seen[a] = true
			name := s.Name
			if ports[a.Port] > 0 || len(fes) > 0 {
				name = fmt.Sprintf("%s-%d", s.Name, a.Port)
				for n := 2; t.names[name]; n++ {
					name = fmt.Sprintf("%s-%d-%d", s.Name, a.Port, n)
				}
				t.r.chose(b.Pos, target, "%s: a vipd frontend listens on one port: bind %s becomes frontend %q", s.label(), addr, name)
			}
			t.names[name] = true
			ports[a.Port]++
			fes = append(fes, &outFrontend{Name: name, Port: a.Port, bind: a.IP, Backend: beName, pos: b.Pos})
		}
	}
	if len(fes) == 0 {
		return
	}
	if d := s.get("maxconn"); d != nil {
		d.done = true
		if n, err := strconv.Atoi(d.arg(0)); err == nil && n > 0 && n <= 1<<24 {
			for _, f := range fes {
				f.MaxConn = n
			}
		} else {
			t.r.errorf(d.Pos, "maxconn %s: not a connection count 1..%d", d.arg(0), 1<<24)
		}
	}
	idle := t.idleTimeout(s, t.backends[beName], target)
	var connect time.Duration
	if bs := t.backends[beName]; bs != nil {
		if d := bs.get("timeout", "connect"); d != nil {
			d.done = true
			if v, ok := parseHATime(d.arg(1)); ok && v >= time.Millisecond && v <= 10*time.Minute {
				connect = v
			} else {
				t.r.errorf(d.Pos, "timeout connect %s: vipd takes 1ms..10m", d.arg(1))
			}
		}
	}
	for _, f := range fes {
		f.IdleTimeout = idle
		f.ConnectTimeout = connect
		if be != nil {
			f.Balance = t.balance(t.backends[beName], target)
		}
		t.res.frontends = append(t.res.frontends, f)
	}
}

// backendOf finds the backend a frontend forwards to.
func (t *haTranslator) backendOf(s *haSection) (string, bool) {
	if s.Kind == "listen" {
		return s.Name, true
	}
	var def *haDirective
	for _, d := range s.Dirs {
		if d.key() != "use_backend" {
			continue
		}
		d.done = true
		if len(d.Words) > 2 {
			t.r.errorf(d.Pos, "%s: %s: vipd forwards a frontend to one backend and does not look into the traffic; give each backend its own frontend (port)", s.label(), d.line())
			return "", false
		}
		def = d
	}
	if d := s.get("default_backend"); d != nil {
		d.done = true
		if def != nil {
			t.r.errorf(def.Pos, "%s: use_backend %s and default_backend %s: vipd forwards a frontend to one backend; keep one", s.label(), def.arg(0), d.arg(0))
			return "", false
		}
		def = d
	}
	if def == nil {
		t.r.errorf(s.Head.Pos, "%s has no default_backend; vipd forwards each frontend to one backend: add default_backend", s.label())
		return "", false
	}
	name := def.arg(0)
	if t.backends[name] == nil {
		t.r.errorf(def.Pos, "%s: %s: no backend or listen section has that name", s.label(), def.line())
		return "", false
	}
	return name, true
}

// Bind options and why they are not carried over.
var haBindReasons = map[string]string{
	"accept-proxy":    "vipd does not accept the PROXY protocol from clients",
	"v4v6":            "vipd binds the VIP's own family",
	"v6only":          "vipd binds the VIP's own family",
	"transparent":     "vipd binds the VIP with IP_FREEBIND",
	"defer-accept":    "no vipd equivalent",
	"tfo":             "no vipd equivalent",
	"interface":       "vipd binds the VIP, which is on the VRRP interface",
	"name":            "vipd names frontends by their section",
	"process":         "vipd sizes its event loops to the CPUs",
	"thread":          "vipd sizes its event loops to the CPUs",
	"maxconn":         "vipd's limit is the frontend's maxconn",
	"backlog":         "vipd uses the kernel's somaxconn",
	"mss":             "no vipd equivalent",
	"nice":            "no vipd equivalent",
	"id":              "no vipd equivalent",
	"namespace":       "vipd binds in its own network namespace",
	"shards":          "vipd sizes its event loops to the CPUs",
	"tcp-ut":          "no vipd equivalent",
	"user":            "vipd listens on TCP only",
	"group":           "vipd listens on TCP only",
	"mode":            "vipd listens on TCP only",
	"level":           "vipd listens on TCP only",
	"expose-fd":       "vipd listens on TCP only",
	"severity-output": "vipd listens on TCP only",
	"label":           "no vipd equivalent",
}

// haBindArgs are bind options followed by a value.
var haBindArgs = map[string]bool{"interface": true, "name": true, "process": true, "thread": true, "maxconn": true, "backlog": true, "mss": true, "nice": true, "id": true, "namespace": true, "shards": true, "tcp-ut": true, "user": true, "group": true, "mode": true, "level": true, "severity-output": true, "label": true, "expose-fd": true, "crt": true, "ca-file": true, "alpn": true, "ciphers": true, "ciphersuites": true, "curves": true, "ecdhe": true, "verify": true, "crt-list": true, "ssl-min-ver": true, "ssl-max-ver": true, "crl-file": true, "npn": true, "uid": true, "gid": true, "proto": true}

func (t *haTranslator) bindOptions(b *haDirective, target string) {
	for i := 2; i < len(b.Words); i++ {
		opt := b.Words[i]
		arg := ""
		if haBindArgs[opt] && i+1 < len(b.Words) {
			i++
			arg = " " + b.Words[i]
		}
		switch {
		case opt == "ssl" || opt == "crt" || opt == "crt-list":
			t.r.errorf(b.Pos, "bind %s %s: HAProxy terminates TLS here; vipd passes TCP through and terminates no TLS: let the servers terminate it (mode tcp without ssl), then import again", b.arg(0), opt)
		case haBindReasons[opt] != "":
			t.r.notCarried(b.Pos, target, "bind %s: %s%s: %s", b.arg(0), opt, arg, haBindReasons[opt])
		default:
			t.r.notCarried(b.Pos, target, "bind %s: %s%s: no vipd equivalent", b.arg(0), opt, arg)
		}
	}
}

// watchSafe is the shortest idle timeout that does not cut API watches
// (kube-apiserver ends them after 30-60 min itself) and kubectl logs -f.
const watchSafe = time.Hour

// idleTimeout decides what HAProxy's client, server and tunnel timeouts
// become. In mode tcp a connection idle in both directions is closed by the
// shorter of timeout client and timeout server, or by timeout tunnel when
// it is set.
func (t *haTranslator) idleTimeout(fe, be *haSection, target string) time.Duration {
	var ds []*haDirective
	client := fe.get("timeout", "client")
	var server, tunnel *haDirective
	if be != nil {
		server = be.get("timeout", "server")
		tunnel = be.get("timeout", "tunnel")
	}
	var eff time.Duration
	var effD *haDirective
	parse := func(d *haDirective) time.Duration {
		v, ok := parseHATime(d.arg(1))
		if !ok {
			t.r.errorf(d.Pos, "%s: not an HAProxy time (a number of ms, or with us, ms, s, m, h or d)", d.line())
		}
		return v
	}
	for _, d := range []*haDirective{client, server} {
		if d == nil {
			continue
		}
		d.done = true
		ds = append(ds, d)
		if v := parse(d); v > 0 && (eff == 0 || v < eff) {
			eff, effD = v, d
		}
	}
	if tunnel != nil {
		tunnel.done = true
		ds = append(ds, tunnel)
		if v := parse(tunnel); v > 0 {
			eff, effD = v, tunnel
		}
	}
	if effD == nil {
		for _, d := range ds {
			t.r.notCarried(d.Pos, target, "%s: no idle timeout, which is vipd's default", d.line())
		}
		return 0
	}
	if eff < watchSafe {
		for _, d := range ds {
			t.r.notCarried(d.Pos, target, "%s: an idle timeout of %s would cut API watches and kubectl logs -f/exec; vipd has no idle timeout by default (TCP keepalive finds dead peers); set idle_timeout to keep one", d.line(), fmtDur(eff))
		}
		return 0
	}
	for _, d := range ds {
		if d != effD {
			t.r.notCarried(d.Pos, target, "%s: vipd has one idle timeout; %s decides it", d.line(), effD.line())
		}
	}
	t.r.chose(effD.Pos, target, "%s: idle_timeout = %q (connections idle that long in both directions are closed, as HAProxy did)", effD.line(), fmtDur(eff))
	return eff
}

func (t *haTranslator) balance(be *haSection, target string) string {
	d := be.get("balance")
	if d == nil {
		t.r.chose(be.Head.Pos, target, "%s has no balance line, so HAProxy balanced roundrobin; vipd's default leastconn spreads long-lived API connections by count: write balance = \"roundrobin\" to keep HAProxy's", be.label())
		return ""
	}
	d.done = true
	switch a := d.arg(0); a {
	case "roundrobin", "leastconn", "source":
		return a
	case "static-rr":
		t.r.chose(d.Pos, target, "balance static-rr: vipd's roundrobin (server weights are not carried over)")
		return "roundrobin"
	default:
		t.r.chose(d.Pos, target, "balance %s: vipd balances by leastconn, roundrobin or source; chose leastconn, vipd's default for long-lived API connections", a)
		return ""
	}
}

// absPath makes a certificate path absolute with HAProxy's ca-base or
// crt-base, as HAProxy does.
func absPath(base, p string) string {
	if p == "" || filepath.IsAbs(p) || base == "" {
		return p
	}
	return filepath.Join(base, p)
}
