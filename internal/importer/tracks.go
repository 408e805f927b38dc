package importer

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A check that haproxy runs: vipd is the proxy, so it needs none.
var haproxyCheckRE = regexp.MustCompile(`^(?:\S*/)?(?:pidof(?:\s+-\S+)*\s+haproxy|killall\s+-0\s+haproxy|pkill\s+-0\s+haproxy|pgrep(?:\s+-\S+)*\s+haproxy|systemctl(?:\s+--quiet)?\s+is-active(?:\s+--quiet)?\s+haproxy(?:\.service)?)$`)

// A check that the API server answers (kubeadm's check_apiserver.sh, a curl
// of /healthz on 6443 or 8443).
var (
	apiserverNameRE  = regexp.MustCompile(`(?i)api-?server`)
	apiserverProbeRE = regexp.MustCompile(`(?i)\b(?:curl|wget)\b.*(?::6443|:8443|/healthz|/readyz|/livez)`)
)

// shellBody unwraps sh -c '...'.
func shellBody(argv []string) string {
	if len(argv) >= 3 && (strings.HasSuffix(argv[0], "sh")) && argv[1] == "-c" {
		return strings.TrimSpace(argv[2])
	}
	return strings.Join(argv, " ")
}

func isHAProxyCheck(argv []string) bool {
	body := strings.Join(strings.Fields(shellBody(argv)), " ")
	return haproxyCheckRE.MatchString(body)
}

func isAPIServerCheck(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	return apiserverNameRE.MatchString(argv[0]) || apiserverProbeRE.MatchString(shellBody(argv))
}

type trackAcc struct {
	t         *outTrack
	instances map[string]bool
	nodes     map[string]bool
	pos       Pos
}

// trackers translates every node's track_interface, track_script and
// track_process into [[track]] tables.
func (m *merger) trackers(groups []*instGroup, frontends []*outFrontend) {
	var (
		accs  []*trackAcc
		byKey = map[string]*trackAcc{}
	)
	add := func(key string, t *outTrack, inst, node string, pos Pos) {
		a := byKey[key]
		if a == nil {
			a = &trackAcc{t: t, instances: map[string]bool{}, nodes: map[string]bool{}, pos: pos}
			byKey[key] = a
			accs = append(accs, a)
		}
		a.instances[inst] = true
		a.nodes[node] = true
	}
	for _, g := range groups {
		if g.out == nil {
			continue
		}
		for _, in := range m.ordered(g) {
			target := "instance:" + g.out.Name
			for _, ti := range in.TrackIfs {
				if ti.Name == in.Interface.V {
					m.r.notCarried(ti.Pos, target, "track_interface %s: the VRRP interface itself; vipd always tracks it and goes FAULT while its link is down", ti.Name)
					continue
				}
				t := &outTrack{Name: "link-" + ti.Name, Type: "interface", Interface: ti.Name, Weight: ti.Weight}
				add(fmt.Sprintf("if|%s|%d", ti.Name, ti.Weight), t, g.out.Name, in.file.node, ti.Pos)
			}
			for _, ref := range in.TrackScripts {
				if ref.isProcess {
					m.trackProcess(in, ref, target)
					continue
				}
				s := in.file.scripts[ref.Name]
				if s == nil {
					m.r.errorf(ref.Pos, "track_script %s: no vrrp_script %s in %s's configuration", ref.Name, ref.Name, in.file.node)
					continue
				}
				weight := s.Weight.V
				if ref.Weight.Set {
					weight = ref.Weight.V
				}
				t, key := m.scriptTracker(s, weight, frontends, target)
				if t != nil {
					add(key, t, g.out.Name, in.file.node, s.Pos)
				}
			}
		}
	}
	names := map[string]int{}
	for _, a := range accs {
		t := a.t
		if n := names[t.Name]; n > 0 {
			t.Name = fmt.Sprintf("%s-%d", t.Name, n+1)
		}
		names[a.t.Name]++
		if len(a.instances) < len(m.out.Instances) {
			for i := range a.instances {
				t.Instances = append(t.Instances, i)
			}
			sort.Strings(t.Instances)
		}
		if len(a.nodes) < len(m.files) {
			var on []string
			for _, f := range m.files {
				if a.nodes[f.node] {
					on = append(on, f.node)
				}
			}
			m.r.chose(a.pos, "track:"+t.Name, "tracker %s is configured on %s only; vipd runs every tracker on every node", t.Name, strings.Join(on, ", "))
		}
		m.out.Tracks = append(m.out.Tracks, t)
	}
}

func (m *merger) trackProcess(in *kaInstance, ref kaTrackRef, target string) {
	p := in.file.procs[ref.Name]
	switch {
	case p == nil:
		m.r.errorf(ref.Pos, "track_process %s: no vrrp_track_process %s in %s's configuration", ref.Name, ref.Name, in.file.node)
	case p.Process == "haproxy":
		m.r.chose(p.Pos, target, "vrrp_track_process %s (process haproxy): dropped; vipd is the proxy, and if it dies the VRRP side dies with it, so a peer takes over without a tracker", p.Name)
	default:
		m.r.notCarried(p.Pos, target, "vrrp_track_process %s (process %s): vipd has no process trackers; a [[track]] with type = \"script\" and command = [\"pidof\", %q] does the same", p.Name, p.Process, p.Process)
	}
}

// scriptTracker translates one vrrp_script as tracked with weight.
func (m *merger) scriptTracker(s *kaScript, weight int, frontends []*outFrontend, target string) (*outTrack, string) {
	switch {
	case len(s.Argv) == 0:
		return nil, ""
	case isHAProxyCheck(s.Argv):
		m.r.chose(s.Pos, target, "vrrp_script %s (%s): dropped; vipd is the proxy, and if it dies the VRRP side dies with it, so a peer takes over without a tracker; to hand the VIP on when this node reaches no API server, add a [[track]] with type = \"backends\"", s.Name, s.Script.V)
		return nil, ""
	case isAPIServerCheck(s.Argv) && len(frontends) > 0:
		fe := apiFrontend(frontends)
		m.r.chose(s.Pos, "track:"+s.Name, "vrrp_script %s (%s) checked that the API server answers; vipd proxies to every API server and checks each itself, so this is a backends tracker on frontend %q: it fails when no server of that frontend's backend passes its check, with the same weight %d", s.Name, s.Script.V, fe.Name, weight)
		t := &outTrack{Name: s.Name, Type: "backends", Frontend: fe.Name, Weight: weight}
		return t, fmt.Sprintf("be|%s|%d", fe.Name, weight)
	case isAPIServerCheck(s.Argv):
		m.r.chose(s.Pos, "track:"+s.Name, "vrrp_script %s checks the API server; with no haproxy.cfg there is no frontend to watch, so it stays a script tracker (with --haproxy it becomes a backends tracker)", s.Name)
	}
	t := &outTrack{Name: s.Name, Type: "script", Command: s.Argv, Weight: weight}
	t.Interval = kaDefaultScriptIv
	if s.Interval.Set {
		t.Interval = s.Interval.V
	}
	// keepalived's timeout defaults to the interval.
	t.Timeout = t.Interval
	if s.Timeout.Set {
		t.Timeout = s.Timeout.V
	}
	t.Rise, t.Fall = 1, 1
	if s.Rise.Set {
		t.Rise = s.Rise.V
	}
	if s.Fall.Set {
		t.Fall = s.Fall.V
	}
	if !s.Interval.Set || !s.Rise.Set || !s.Fall.Set || !s.Timeout.Set {
		m.r.chose(s.Pos, "track:"+s.Name, "vrrp_script %s: keepalived's defaults (interval 1s, timeout = interval, rise 1, fall 1) written out, since vipd's differ", s.Name)
	}
	key := fmt.Sprintf("sh|%s|%q|%d|%s|%s|%d|%d", s.Name, t.Command, weight, t.Interval, t.Timeout, t.Rise, t.Fall)
	return t, key
}

// apiFrontend picks the frontend of the Kubernetes API.
func apiFrontend(fes []*outFrontend) *outFrontend {
	for _, f := range fes {
		if f.Port == 6443 || f.Port == 8443 {
			return f
		}
	}
	for _, f := range fes {
		n := strings.ToLower(f.Name)
		if strings.Contains(n, "api") || strings.Contains(n, "kube") || strings.Contains(n, "k8s") {
			return f
		}
	}
	return fes[0]
}

// notify builds [notify] from keepalived's notify scripts. vipd runs one
// command with instance, state and priority appended; a small sh script
// dispatches to the keepalived scripts as keepalived would have run them.
func (m *merger) notify(groups []*instGroup) {
	var (
		script string
		from   *kaFile
		pos    Pos
	)
	for _, f := range m.files {
		s, p := m.notifyScript(f, groups)
		if s == "" {
			continue
		}
		switch {
		case from == nil:
			script, from, pos = s, f, p
		case s != script:
			m.r.chose(p, "notify", "the notify scripts on %s differ from %s's; vipd has one [notify] for every node: took %s's", f.node, from.node, from.node)
		}
	}
	if script == "" {
		return
	}
	m.out.Notify = &outNotify{Command: []string{"/bin/sh", "-c", script, "vipd-notify"}}
	m.r.chose(pos, "notify", "notify scripts: [notify] runs sh with instance, state and priority as $1 $2 $3, and this script calls each keepalived script for its state (notify gets keepalived's INSTANCE NAME STATE PRIORITY)")
}

func (m *merger) notifyScript(f *kaFile, groups []*instGroup) (string, Pos) {
	var (
		cases, generic []string
		pos            Pos
	)
	several := len(groups) > 1
	for _, g := range groups {
		in := g.byNode[f.node]
		if in == nil || g.out == nil {
			continue
		}
		for _, state := range []string{"master", "backup", "fault"} {
			v, ok := in.Notify[state]
			if !ok {
				continue
			}
			if pos.File == "" {
				pos = v.Pos
			}
			pat := strings.ToUpper(state)
			if several {
				pat = g.out.Name + "/" + pat
			}
			cases = append(cases, fmt.Sprintf("%s) %s ;;", shQuote(pat), shJoin(v.V)))
		}
		if v, ok := in.Notify["notify"]; ok {
			if pos.File == "" {
				pos = v.Pos
			}
			call := shJoin(v.V) + " INSTANCE " + shQuote(in.Name) + ` "$2" "$3"`
			if several {
				call = fmt.Sprintf(`case "$1" in %s) %s ;; esac`, shQuote(g.out.Name), call)
			}
			generic = append(generic, call)
		}
	}
	var parts []string
	if len(cases) > 0 {
		subject := `"$2"`
		if several {
			subject = `"$1/$2"`
		}
		parts = append(parts, "case "+subject+" in "+strings.Join(cases, " ")+" esac")
	}
	parts = append(parts, generic...)
	return strings.Join(parts, "; "), pos
}

// shQuote quotes a word for sh unless it is plain.
func shQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shQuote(a)
	}
	return strings.Join(q, " ")
}

var _ = strconv.Itoa
var _ = time.Second
