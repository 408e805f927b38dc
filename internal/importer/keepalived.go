package importer

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// val is a setting read from a source file: its value, where it was
// written, and whether it was written at all.
type val[T any] struct {
	V   T
	Pos Pos
	Set bool
}

func (v *val[T]) set(x T, p Pos) { v.V, v.Pos, v.Set = x, p, true }

// kaFile is what one node's keepalived.conf says that vipd can use.
type kaFile struct {
	node string
	path string

	version      val[int] // global_defs vrrp_version
	garpRepeat   val[int]
	garpInterval val[time.Duration]
	garpRefresh  val[time.Duration]
	lowerRepeat  val[int]
	lowerDelay   val[time.Duration]

	instances []*kaInstance
	scripts   map[string]*kaScript
	procs     map[string]*kaProc
	groups    []*kaGroup
}

// kaInstance is one vrrp_instance of one node.
type kaInstance struct {
	Name string
	Pos  Pos
	file *kaFile

	State        val[string]
	Interface    val[string]
	VRID         val[int]
	Priority     val[int]
	Advert       val[time.Duration]
	Version      val[int]
	Nopreempt    val[bool]
	PreemptDelay val[time.Duration]
	AuthType     val[string]
	AuthPass     val[string]
	VIPs         []kaVIP
	UnicastSrc   val[netip.Addr]
	McastSrc     val[netip.Addr]
	Peers        []val[netip.Addr]
	TrackIfs     []kaTrackIf
	TrackScripts []kaTrackRef
	// Notify maps "master", "backup", "fault" and "notify" to argv.
	Notify      map[string]val[[]string]
	GARPRepeat  val[int]
	GARPRefresh val[time.Duration]
	LowerRepeat val[int]
	LowerDelay  val[time.Duration]
	// vridWritten: a virtual_router_id line exists (its value may be bad).
	vridWritten bool
}

type kaVIP struct {
	Prefix   netip.Prefix
	Pos      Pos
	Excluded bool
	Dev      string // "dev IF" on the address line
	Bare     bool   // written without a prefix length (a /32 or /128)
}

type kaTrackIf struct {
	Name   string
	Weight int
	Pos    Pos
}

type kaTrackRef struct {
	Name      string
	Weight    val[int]
	Pos       Pos
	isProcess bool
}

// kaScript is a vrrp_script.
type kaScript struct {
	Name     string
	Pos      Pos
	Script   val[string]
	Argv     []string
	Interval val[time.Duration]
	Timeout  val[time.Duration]
	Weight   val[int]
	Rise     val[int]
	Fall     val[int]
	Reverse  bool
}

// kaProc is a vrrp_track_process.
type kaProc struct {
	Name    string
	Pos     Pos
	Process string
	Weight  val[int]
}

type kaGroup struct {
	Name      string
	Pos       Pos
	Instances []string
}

const (
	kaDefaultPriority = 100
	kaOwnerPriority   = 255
	kaDefaultAdvert   = time.Second
	kaDefaultScriptIv = time.Second
)

// kaReader reads one node's statement tree into a kaFile.
type kaReader struct {
	r *report
	f *kaFile
}

func readKeepalived(r *report, node, path string, stmts []*kaStmt) *kaFile {
	k := &kaReader{r: r, f: &kaFile{node: node, path: path, scripts: map[string]*kaScript{}, procs: map[string]*kaProc{}}}
	for _, st := range stmts {
		k.top(st)
	}
	sweep(r, stmts, "")
	return k.f
}

// sweep names every statement nobody translated or noted.
func sweep(r *report, stmts []*kaStmt, in string) {
	for _, st := range stmts {
		if !st.done {
			where := ""
			if in != "" {
				where = " in " + in
			}
			r.notCarried(st.Pos, "", "%s%s: not a keepalived directive vipd import knows; check its spelling", clip(st.key()), clip(where))
			st.done = true
		}
		sweep(r, st.Block, st.key())
	}
}

func markAll(stmts []*kaStmt) {
	for _, st := range stmts {
		st.done = true
		markAll(st.Block)
	}
}

func (k *kaReader) top(st *kaStmt) {
	st.done = true
	switch st.key() {
	case "global_defs":
		for _, g := range st.Block {
			k.global(g)
		}
	case "vrrp_instance":
		k.instance(st)
	case "vrrp_script":
		k.script(st)
	case "vrrp_track_process":
		k.process(st)
	case "vrrp_sync_group":
		k.group(st)
	case "virtual_server", "virtual_server_group":
		markAll(st.Block)
		k.r.errorf(st.Pos, "%s %s: LVS (IPVS) load balancing has no vipd equivalent; vipd proxies TCP in user space: import the haproxy.cfg that fronts these servers, or write [[frontend]] and [[backend]] tables by hand and leave this block out",
			st.key(), strings.Join(st.args(), " "))
	case "static_ipaddress", "static_routes", "static_rules":
		markAll(st.Block)
		k.r.notCarried(st.Pos, "", "%s: vipd manages only the VIPs; keep these in the host's network configuration", st.key())
	case "vrrp_track_file", "track_file", "bfd_instance", "garp_group", "linkbeat_interfaces", "vrrp_track_bfd":
		markAll(st.Block)
		k.r.notCarried(st.Pos, "", "%s: vipd has no equivalent; a [[track]] with type = \"script\" can watch a file or a process", st.key())
	default:
		st.done = false
	}
}

// Why global_defs settings are not carried over.
var kaGlobalReasons = map[string]string{
	"router_id":                       "vipd names each node by its [[node]] name",
	"notification_email":              "vipd sends no mail; [notify] runs a command on every transition",
	"notification_email_from":         "vipd sends no mail; [notify] runs a command on every transition",
	"smtp_server":                     "vipd sends no mail; [notify] runs a command on every transition",
	"smtp_connect_timeout":            "vipd sends no mail",
	"smtp_helo_name":                  "vipd sends no mail",
	"enable_script_security":          "vipd runs scripts without a shell, as its own unprivileged user (User=vipd in the unit): there is nothing to enable; make sure that user may run each script",
	"script_user":                     "vipd runs scripts as its own user (User=vipd in the unit), not as a configured one",
	"vrrp_garp_master_delay":          "vipd sends one burst (garp_repeat rounds garp_interval apart) and refreshes every garp_refresh; it has no second burst",
	"vrrp_garp_master_refresh_repeat": "vipd's refresh sends one round",
	"vrrp_gna_interval":               "vipd's IPv6 announcements follow garp_interval",
	"vrrp_min_garp":                   "vipd's GARP settings are garp_repeat, garp_interval and garp_refresh",
	"vrrp_strict":                     "vipd follows RFC 9568 with keepalived's relaxations and has no strict mode",
	"vrrp_skip_check_adv_addr":        "no vipd equivalent",
	"vrrp_check_unicast_src":          "already what vipd does: in unicast mode it accepts adverts only from the [[node]] addresses",
	"vrrp_iptables":                   "vipd adds no firewall rules",
	"vrrp_ipsets":                     "vipd adds no firewall rules",
	"nftables":                        "vipd adds no firewall rules",
	"dynamic_interfaces":              "vipd waits for its interface and tracks its link",
	"vrrp_no_swap":                    "process tuning; the vipd unit sets its own limits",
	"vrrp_priority":                   "process tuning; the vipd unit sets its own limits",
	"vrrp_rt_priority":                "process tuning; the vipd unit sets its own limits",
	"vrrp_cpu_affinity":               "process tuning; the vipd unit sets its own limits",
	"max_auto_priority":               "process tuning; the vipd unit sets its own limits",
	"lvs_sync_daemon":                 "LVS has no vipd equivalent",
	"vrrp_notify_fifo":                "[notify] runs a command on every transition",
	"notify_fifo":                     "[notify] runs a command on every transition",
	"vrrp_startup_delay":              "vipd holds preemption until its checks completed a round (startup_hold)",
}

func (k *kaReader) global(st *kaStmt) {
	st.done = true
	switch st.key() {
	case "vrrp_version":
		if v, ok := k.intArg(st, 2, 3, "vrrp_version 2 or vrrp_version 3"); ok {
			k.f.version.set(v, st.Pos)
		}
	case "vrrp_garp_master_repeat":
		if v, ok := k.intArg(st, 1, 100, "vipd sends 1..100 rounds"); ok {
			k.f.garpRepeat.set(v, st.Pos)
		}
	case "vrrp_garp_interval":
		if v, ok := k.secondsArg(st, 0, 10*time.Second); ok {
			k.f.garpInterval.set(v, st.Pos)
		}
	case "vrrp_garp_master_refresh":
		if v, ok := k.secondsArg(st, 0, 24*time.Hour); ok {
			k.f.garpRefresh.set(v, st.Pos)
		}
	case "vrrp_garp_lower_prio_repeat":
		if v, ok := k.intArg(st, 0, 100, "vipd sends 0..100 rounds"); ok {
			k.f.lowerRepeat.set(v, st.Pos)
		}
	case "vrrp_garp_lower_prio_delay":
		if v, ok := k.secondsArg(st, 0, time.Hour); ok {
			k.f.lowerDelay.set(v, st.Pos)
		}
	case "vrrp_mcast_group4", "vrrp_mcast_group6":
		def := "224.0.0.18"
		if st.key() == "vrrp_mcast_group6" {
			def = "ff02::12"
		}
		a, err := netip.ParseAddr(argOr(st, 0))
		if err == nil && a == netip.MustParseAddr(def) {
			k.r.notCarried(st.Pos, "", "%s %s: the default group, which vipd uses", st.key(), a)
			return
		}
		k.r.errorf(st.Pos, "%s %s: vipd sends adverts to the RFC group %s only, so it would not hear these keepalived peers; switch them to unicast (unicast_src_ip and unicast_peer) or to the default group first", st.key(), argOr(st, 0), def)
	default:
		reason, ok := kaGlobalReasons[st.key()]
		if !ok {
			reason = "no vipd equivalent"
		}
		markAll(st.Block)
		k.r.notCarried(st.Pos, "", "%s: %s", st.key(), reason)
	}
}

func argOr(st *kaStmt, i int) string {
	if i+1 < len(st.Words) {
		return st.Words[i+1]
	}
	return ""
}

// placeholder explains a value that looks like an unfilled template.
func placeholder(w string) string {
	if strings.Contains(w, "${") || strings.Contains(w, "{{") || strings.HasPrefix(w, "$") || strings.HasPrefix(w, "<") {
		return "; it looks like an unfilled template placeholder: fill in the value first"
	}
	return ""
}

func (k *kaReader) intArg(st *kaStmt, lo, hi int, fix string) (int, bool) {
	w := argOr(st, 0)
	n, err := strconv.Atoi(w)
	if err != nil || n < lo || n > hi {
		k.r.errorf(st.Pos, "%s %s: must be a whole number %d..%d; %s%s", st.key(), w, lo, hi, fix, placeholder(w))
		return 0, false
	}
	return n, true
}

// secondsArg reads keepalived's seconds, which may have decimals.
func (k *kaReader) secondsArg(st *kaStmt, lo, hi time.Duration) (time.Duration, bool) {
	w := argOr(st, 0)
	d, ok := parseSeconds(w)
	if !ok || d < lo || d > hi {
		k.r.errorf(st.Pos, "%s %s: must be seconds between %s and %s%s", st.key(), w, fmtDur(lo), fmtDur(hi), placeholder(w))
		return 0, false
	}
	return d, true
}

// parseSeconds reads "1", "0.5" or "2.25" seconds, to the millisecond.
func parseSeconds(w string) (time.Duration, bool) {
	if w == "" || strings.ContainsAny(w, "eE+-xXpPnN_") {
		return 0, false
	}
	f, err := strconv.ParseFloat(w, 64)
	if err != nil || f < 0 || f > 1e7 || math.IsNaN(f) {
		return 0, false
	}
	return time.Duration(math.Round(f*1000)) * time.Millisecond, true
}

func (k *kaReader) script(st *kaStmt) {
	name := argOr(st, 0)
	if name == "" {
		k.r.errorf(st.Pos, "vrrp_script without a name; write vrrp_script chk_name { ... }")
		markAll(st.Block)
		return
	}
	s := &kaScript{Name: name, Pos: st.Pos}
	for _, b := range st.Block {
		b.done = true
		switch b.key() {
		case "script":
			text := strings.Join(b.args(), " ")
			if len(b.args()) == 1 {
				text = b.args()[0]
			}
			s.Script.set(text, b.Pos)
			argv, ok := splitArgv(text)
			if !ok || len(argv) == 0 {
				k.r.errorf(b.Pos, "vrrp_script %s: script %q: not a command line (an unterminated quote?)", name, text)
			}
			s.Argv = argv
		case "interval":
			if v, ok := k.secondsArg(b, 10*time.Millisecond, time.Hour); ok {
				s.Interval.set(v, b.Pos)
			}
		case "timeout":
			if v, ok := k.secondsArg(b, 10*time.Millisecond, time.Hour); ok {
				s.Timeout.set(v, b.Pos)
			}
		case "weight":
			if v, ok := k.intArg(b, -254, 254, "keepalived's range is -253..253"); ok {
				s.Weight.set(v, b.Pos)
			}
			if argOr(b, 1) == "reverse" {
				s.Reverse = true
				k.r.errorf(b.Pos, "vrrp_script %s: weight %s reverse: vipd has no reverse weights; rewrite the script to succeed when it should add to the priority and use a plain weight", name, argOr(b, 0))
			}
		case "rise":
			if v, ok := k.intArg(b, 1, 100, "vipd's range is 1..100"); ok {
				s.Rise.set(v, b.Pos)
			}
		case "fall":
			if v, ok := k.intArg(b, 1, 100, "vipd's range is 1..100"); ok {
				s.Fall.set(v, b.Pos)
			}
		case "user":
			k.r.notCarried(b.Pos, "", "vrrp_script %s: user %s: vipd runs scripts as its own user (User=vipd in the unit); make sure it may run this one", name, strings.Join(b.args(), " "))
		case "init_fail":
			k.r.notCarried(b.Pos, "", "vrrp_script %s: init_fail: a vipd script tracker starts unknown and must pass rise times before it counts as up", name)
		default:
			b.done = false
		}
	}
	if !s.Script.Set {
		k.r.errorf(st.Pos, "vrrp_script %s has no script line; keepalived ignores it too: remove it or add script \"/path\"", name)
	}
	if _, dup := k.f.scripts[name]; dup {
		k.r.errorf(st.Pos, "vrrp_script %s is defined twice; keep one", name)
		return
	}
	k.f.scripts[name] = s
}

func (k *kaReader) process(st *kaStmt) {
	p := &kaProc{Name: argOr(st, 0), Pos: st.Pos}
	for _, b := range st.Block {
		b.done = true
		switch b.key() {
		case "process":
			p.Process = argOr(b, 0)
		case "weight":
			if v, ok := k.intArg(b, -254, 254, "keepalived's range is -253..253"); ok {
				p.Weight.set(v, b.Pos)
			}
		default:
			k.r.notCarried(b.Pos, "", "vrrp_track_process %s: %s: only the process name matters to vipd import", p.Name, b.key())
		}
	}
	k.f.procs[p.Name] = p
}

func (k *kaReader) group(st *kaStmt) {
	g := &kaGroup{Name: argOr(st, 0), Pos: st.Pos}
	for _, b := range st.Block {
		b.done = true
		if b.key() == "group" {
			for _, m := range b.Block {
				m.done = true
				g.Instances = append(g.Instances, m.Words...)
			}
			continue
		}
		markAll(b.Block)
		k.r.notCarried(b.Pos, "", "vrrp_sync_group %s: %s: not carried over with the group", g.Name, b.key())
	}
	k.f.groups = append(k.f.groups, g)
}

// splitArgv splits a keepalived script line into argv: blanks separate
// words, single and double quotes group them, a backslash escapes the next
// character. keepalived runs the result without a shell, as vipd does.
func splitArgv(s string) ([]string, bool) {
	return splitQuoted(s, false, func(c byte) byte { return c })
}

// splitQuoted splits s into words: blanks separate them, 'single' and
// "double" quotes group them, a backslash escapes the next character (read
// through escape; inside single quotes it is a backslash). With comments,
// "#" outside quotes ends the line. ok is false for an unterminated quote.
// It stops after maxWords+1 words: the callers refuse that many.
func splitQuoted(s string, comments bool, escape func(byte) byte) (words []string, ok bool) {
	var (
		cur    strings.Builder
		inWord bool
		quote  byte
	)
	for i := 0; i < len(s) && len(words) <= maxWords; i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == '"' && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(escape(s[i]))
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(escape(s[i]))
			inWord = true
		case comments && c == '#':
			i = len(s)
		case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, quote == 0
}

// fmtDur prints a duration the way vipd's config writes it.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func wordsOf(st *kaStmt) string { return strings.Join(st.Words, " ") }

var _ = fmt.Sprintf
