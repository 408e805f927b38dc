package daemon

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/control"
)

// The status page: one server-rendered HTML document, no JavaScript, built
// for a person glancing at it during an incident. html/template escapes
// every value that comes from the status document (node names, reasons,
// check details), and a strict Content-Security-Policy forbids scripts.

//go:embed web/status.html.tmpl
var webFS embed.FS

var pageTmpl = template.Must(template.New("status.html.tmpl").Funcs(template.FuncMap{
	"stateClass": stateClass,
}).ParseFS(webFS, "web/status.html.tmpl"))

const (
	defaultRefresh = 2 // seconds
	maxRefresh     = 3600
)

// pageHandler renders the page from a fresh status snapshot. `?refresh=N`
// sets the meta refresh in seconds (0 turns it off; default 2).
func pageHandler(src httpSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refresh := defaultRefresh
		if v := r.URL.Query().Get("refresh"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxRefresh {
				http.Error(w, fmt.Sprintf("refresh must be 0..%d seconds", maxRefresh), http.StatusBadRequest)
				return
			}
			refresh = n
		}
		self := ""
		if src.self != nil {
			self = src.self()
		}
		data := buildPage(src.status(), self, time.Now(), refresh)
		var buf bytes.Buffer
		if err := pageTmpl.Execute(&buf, data); err != nil {
			http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		w.Write(buf.Bytes())
	})
}

// pageData is the template's view of one status snapshot: every string
// already worded for a reader, every time already turned into "3s ago".
type pageData struct {
	S         control.Status
	Refresh   int
	Generated string
	Uptime    string
	State     string // this node's state (first instance), "ACTIVE" in single mode
	VIPs      string
	Owner     string
	Priority  string
	Why       string
	Nodes     []nodeRow
	Instances []instanceView
	Trackers  []trackerRow
	Frontends []frontendRow
	Backends  []backendView
	Drill     *drillView
	BGP       *bgpView
}

type nodeRow struct {
	Name, Addr, State, Priority, Ready, Seen string
	Self, Fresh                              bool
	// Live words the liveness connection; LiveUp colours it.
	Live, LiveProblem string
	LiveUp            bool
}

type instanceView struct {
	In      control.Instance
	Timers  string
	Since   string
	Recent  []transitionRow
	Senders []senderRow
	Drops   string
}

type transitionRow struct{ When, Ago, From, To, Reason string }

type senderRow struct{ Addr, Name, Version, Priority, Checksum, Seen, Count, Problem string }

type trackerRow struct {
	Name, Type, Weight, Detail string
	Healthy                    bool
}

type frontendRow struct {
	F                    control.Frontend
	Binds, Healthy, Data string
}

type backendView struct {
	Name    string
	Summary string
	Servers []serverRow
}

type serverRow struct {
	S                                   control.Server
	Check, Checked, Latency, Conns, Why string
}

type drillView struct {
	D                                    control.DrillResult
	Gap, Expected, Ago, Takeover, Probes string
	Timeline                             *timelineView
}

func buildPage(st control.Status, self string, now time.Time, refresh int) pageData {
	p := pageData{S: st, Refresh: refresh, Generated: now.Format("2006-01-02 15:04:05 MST")}
	if !st.Started.IsZero() {
		p.Uptime = human(now.Sub(st.Started))
	}
	peerName := map[string]string{}
	for _, pe := range st.Peers {
		peerName[pe.Addr] = pe.Name
	}
	named := func(addr string) string {
		if addr == "" {
			return ""
		}
		if addr == self {
			return st.Node + " (this node, " + addr + ")"
		}
		if n, ok := peerName[addr]; ok {
			return n + " (" + addr + ")"
		}
		return addr
	}

	self1 := nodeRow{Name: st.Node, Addr: self, Self: true, Fresh: true, Seen: "this node", Ready: "—", Priority: "—", Live: "—"}
	switch {
	case len(st.Instances) == 0 && st.BGP != nil:
		p.State, p.VIPs = bgpHeadline(st.BGP)
		p.Owner = "every node that announces it (BGP: the routers spread clients over them)"
		self1.State = p.State
	case len(st.Instances) == 0:
		p.State = "ACTIVE"
		p.Owner = "this node (single mode: no VRRP, the frontends are always bound)"
		self1.State = "ACTIVE"
	case len(st.Instances) > 1:
		// Several instances: one word per instance in the headline.
		var states, vips, owners, prios []string
		for _, in := range st.Instances {
			states = append(states, in.Name+" "+in.State)
			vips = append(vips, strings.Join(in.VIPs, ", "))
			owners = append(owners, in.Name+": "+owner(st, in, named))
			prios = append(prios, fmt.Sprintf("%s %d (configured %d)", in.Name, in.EffectivePriority, in.Priority))
		}
		p.State = strings.Join(states, " · ")
		p.VIPs = strings.Join(vips, " · ")
		p.Owner = strings.Join(owners, " · ")
		p.Priority = strings.Join(prios, " · ")
		p.Why = "see the instances below"
		self1.State, self1.Priority, self1.Ready = p.State, "see below", yesNo(st.Instances[0].Ready)
	default:
		in := st.Instances[0]
		p.State = in.State
		p.VIPs = strings.Join(in.VIPs, ", ")
		p.Priority = fmt.Sprintf("%d (configured %d)", in.EffectivePriority, in.Priority)
		p.Why = in.PriorityReason
		if p.Why == "" {
			if in.EffectivePriority == in.Priority {
				p.Why = "all trackers healthy"
			} else {
				p.Why = "see trackers"
			}
		}
		p.Owner = owner(st, in, named)
		self1.State, self1.Priority, self1.Ready = in.State, strconv.Itoa(in.EffectivePriority), yesNo(in.Ready)
	}
	p.Nodes = append(p.Nodes, self1)
	for _, pe := range st.Peers {
		seen := "never"
		if !pe.LastSeen.IsZero() {
			seen = human(now.Sub(pe.LastSeen)) + " ago"
		}
		row := nodeRow{
			Name: pe.Name, Addr: pe.Addr, State: pe.State, Priority: strconv.Itoa(pe.EffectivePriority),
			Ready: yesNo(pe.Ready), Seen: seen, Fresh: pe.Fresh, Live: "—",
		}
		if l := pe.Liveness; l != nil {
			row.Live, row.LiveUp, row.LiveProblem = l.String(), l.State == "up", l.Problem
			if row.LiveUp && !l.Since.IsZero() {
				row.Live = "up " + human(now.Sub(l.Since))
			}
			if l.LastEnd != "" && !l.LastEndAt.IsZero() {
				row.Live += " · last end " + human(now.Sub(l.LastEndAt)) + " ago: " + l.LastEnd
			}
		}
		if row.State == "" {
			row.State = "—"
		}
		p.Nodes = append(p.Nodes, row)
	}

	for _, in := range st.Instances {
		iv := instanceView{
			In:     in,
			Timers: fmt.Sprintf("advert %s · master down %s · skew %s", fms(in.AdvertIntervalMs), fms(in.DownIntervalMs), fms(in.SkewTimeMs)),
		}
		if !in.LastTransition.IsZero() {
			iv.Since = human(now.Sub(in.LastTransition)) + " ago"
		}
		for _, t := range in.Recent {
			iv.Recent = append(iv.Recent, transitionRow{
				When: t.At.Format("15:04:05.000"), Ago: human(now.Sub(t.At)) + " ago", From: t.From, To: t.To, Reason: t.Reason,
			})
		}
		for _, s := range in.Senders {
			name := s.Name
			if name == "" {
				name = peerName[s.Addr]
			}
			iv.Senders = append(iv.Senders, senderRow{
				Addr: s.Addr, Name: name, Version: "v" + strconv.Itoa(s.Version), Priority: strconv.Itoa(s.Priority), Checksum: s.Checksum,
				Seen: human(now.Sub(s.LastSeen)) + " ago", Count: strconv.FormatUint(s.Count, 10), Problem: s.Problem,
			})
		}
		var drops []string
		for _, k := range sortedKeys(in.Drops) {
			if n := in.Drops[k]; n > 0 {
				drops = append(drops, fmt.Sprintf("%s %d", k, n))
			}
		}
		iv.Drops = strings.Join(drops, ", ")
		p.Instances = append(p.Instances, iv)
	}
	for _, t := range st.Trackers {
		p.Trackers = append(p.Trackers, trackerRow{Name: t.Name, Type: t.Type, Weight: fmt.Sprintf("%+d", t.Weight), Detail: t.Detail, Healthy: t.Healthy})
	}
	for _, f := range st.Frontends {
		binds := f.Bind
		if len(f.Binds) > 0 {
			binds = strings.Join(f.Binds, ", ")
		}
		p.Frontends = append(p.Frontends, frontendRow{
			F: f, Binds: binds, Healthy: plural(f.Healthy, "healthy server"),
			Data: fmt.Sprintf("%s in · %s out", bytesText(f.BytesIn), bytesText(f.BytesOut)),
		})
	}
	for _, b := range st.Backends {
		bv := backendView{Name: b.Name}
		up := 0
		for _, s := range b.Servers {
			if s.State == "UP" {
				up++
			}
			r := serverRow{S: s, Check: s.LastCheck, Checked: "not yet", Conns: fmt.Sprintf("%d open · %d total · %d failed", s.ActiveConns, s.TotalConns, s.FailedConns)}
			if r.Check == "" {
				r.Check = strings.ToLower(s.Health)
			}
			if !s.CheckedAt.IsZero() {
				r.Checked = human(now.Sub(s.CheckedAt)) + " ago"
				r.Latency = latencyText(s.LatencyMs)
			}
			bv.Servers = append(bv.Servers, r)
		}
		bv.Summary = fmt.Sprintf("%d of %d UP", up, len(b.Servers))
		p.Backends = append(p.Backends, bv)
	}
	if st.BGP != nil {
		p.BGP = buildBGPView(st.BGP, now)
	}
	if d := st.LastDrill; d != nil {
		dv := &drillView{
			D: *d, Gap: fms(d.GapMs), Expected: fms(d.ExpectedMs), Takeover: fms(d.TakeoverMs),
			Probes: fmt.Sprintf("%d probes, %d failed (%s)", d.Probes, d.Failed, d.Probe),
		}
		if !d.At.IsZero() {
			dv.Ago = d.At.Format("2006-01-02 15:04:05") + ", " + human(now.Sub(d.At)) + " ago"
		}
		dv.Timeline = buildTimeline(*d, st.Node)
		p.Drill = dv
	}
	return p
}

// owner words who holds the VIPs, as this node sees it.
func owner(st control.Status, in control.Instance, named func(string) string) string {
	if in.State == "MASTER" {
		return st.Node + " (this node)"
	}
	if in.MasterAddr != "" {
		return named(in.MasterAddr)
	}
	for _, pe := range st.Peers {
		if pe.Fresh && pe.State == "MASTER" {
			return pe.Name + " (" + pe.Addr + ", by its beacon)"
		}
	}
	return "nobody this node can hear"
}

// stateClass maps a state word to a CSS class; unknown words get a
// neutral class, so nothing from the document reaches an attribute raw.
func stateClass(s string) string {
	switch s {
	case "MASTER", "BACKUP", "FAULT", "INIT", "UP", "DOWN", "DRAIN", "MAINT", "ACTIVE":
		return "st-" + strings.ToLower(s)
	case "ANNOUNCED", "ESTABLISHED":
		return "st-up"
	case "DRAINING":
		return "st-drain"
	case "WITHDRAWN":
		return "st-down"
	}
	return "st-other"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fms(ms float64) string {
	if ms >= 10000 {
		return strconv.FormatFloat(ms/1000, 'f', 1, 64) + " s"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
}

// latencyText keeps the precision a fast check needs ("0.25 ms").
func latencyText(ms float64) string {
	switch {
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return fms(ms)
}

// human prints a duration at the precision a reader needs: "850ms",
// "4.2s", "3m12s", "5h03m", "2d04h".
func human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
