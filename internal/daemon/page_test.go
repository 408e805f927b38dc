package daemon

import (
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/control"
)

var (
	tagRE   = regexp.MustCompile(`(?s)<style.*?</style>|<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// visibleText is roughly what a reader sees: tags and styles removed,
// entities decoded, whitespace collapsed.
func visibleText(page string) string {
	return strings.TrimSpace(spaceRE.ReplaceAllString(html.UnescapeString(tagRE.ReplaceAllString(page, " ")), " "))
}

func getPage(t *testing.T, src httpSource, path string) string {
	t.Helper()
	w := do(newHTTPHandler(nil, src), "127.0.0.1:1", path, "", "")
	if w.Code != 200 {
		t.Fatalf("GET %s = %d\n%s", path, w.Code, w.Body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not forbid scripts", csp)
	}
	return w.Body.String()
}

// TestPageKeyFacts: the facts a person looks for are on the page, in words.
func TestPageKeyFacts(t *testing.T) {
	now := time.Now()
	page := getPage(t, testSource(now), "/")
	text := visibleText(page)
	for _, want := range []string{
		"vipd · lb1", "MASTER",
		"VIP 10.0.0.100/32", "VIP owner lb1 (this node)",
		"Effective priority 140 (configured 150)", "150 - 10 (apiserver-local failing)",
		// every node: this one and the peers from beacons
		"lb1 (this node) 10.0.0.11 MASTER 140 yes",
		"lb2 10.0.0.12 BACKUP 100 yes fresh",
		"lb3 10.0.0.13 FAULT 0 no stale · 1m00s ago",
		// trackers
		"apiserver-local script -10 failing exit status 1",
		// VRRP details
		"advert 1000 ms · master down 3414 ms · skew 414 ms",
		"1234 sent · 56 received · 3 transitions", "checksum 7, ttl 2",
		"10.0.0.12 lb2 v3 100 rfc9568",
		// a peer speaking another version is named, with the fix
		"Problem peer 10.0.0.21 speaks VRRPv2; set version = 2 to join it",
		"10.0.0.21 v2 200", "VRID · version · interface 51 · VRRPv3 on eth0",
		// backends
		"Backend kube-apiserver · 1 of 4 UP",
		"cp1 10.0.0.21:6443 UP ok", "cp2 10.0.0.22:6443 DOWN failed: connection refused",
		"cp3 10.0.0.23:6443 DRAIN ok", "cp4 10.0.0.24:6443 MAINT unchecked not yet",
		"12.5 ms 3 open", "0.25 ms", "3 open · 70 total · 1 failed",
		// frontends
		"kubernetes 10.0.0.100:6443 yes 4 open · 99 total",
		// transitions, newest first
		"BACKUP → MASTER master down timer expired",
		"INIT → BACKUP startup",
		// drill
		"lb2 → lb1", "850 ms", "timers predict 414 ms", "90 probes, 1 failed",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q\n--- visible text ---\n%s", want, text)
		}
	}
	if i, j := strings.Index(text, "BACKUP → MASTER"), strings.Index(text, "INIT → BACKUP"); i > j {
		t.Error("recent transitions not newest first")
	}
	for _, class := range []string{`class="badge st-master"`, `class="badge st-backup"`, `class="badge st-fault"`,
		`class="badge st-up"`, `class="badge st-down"`, `class="badge st-drain"`, `class="badge st-maint"`} {
		if !strings.Contains(page, class) {
			t.Errorf("page lacks %s", class)
		}
	}
	if !strings.Contains(page, `<meta http-equiv="refresh" content="2">`) {
		t.Error("page does not refresh every 2 s by default")
	}
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Error("page carries a script")
	}
}

func TestPageRefreshOff(t *testing.T) {
	page := getPage(t, testSource(time.Now()), "/?refresh=0")
	if strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("?refresh=0 still refreshes")
	}
}

// TestPageBackupView: on a backup the owner is the master, named from the
// beacons.
func TestPageBackupView(t *testing.T) {
	src := httpSource{status: func() control.Status {
		st := fakeStatus(time.Now())
		st.Node = "lb2"
		st.Instances[0].State, st.Instances[0].MasterAddr = "BACKUP", "10.0.0.11"
		st.Peers = []control.Peer{{Name: "lb1", Addr: "10.0.0.11", State: "MASTER", EffectivePriority: 150, Ready: true, LastSeen: time.Now(), Fresh: true}}
		return st
	}, self: func() string { return "10.0.0.12" }}
	text := visibleText(getPage(t, src, "/"))
	for _, want := range []string{"VIP owner lb1 (10.0.0.11)", "lb2 (this node) 10.0.0.12 BACKUP", "lb1 10.0.0.11 MASTER 150 yes fresh"} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q\n%s", want, text)
		}
	}
}

// TestPageSingleMode: no VRRP: the page says so instead of showing blanks.
func TestPageSingleMode(t *testing.T) {
	src := httpSource{status: func() control.Status {
		st := fakeStatus(time.Now())
		st.Mode, st.Instances, st.Peers, st.LastDrill, st.Trackers = "single", nil, nil, nil, nil
		return st
	}}
	text := visibleText(getPage(t, src, "/"))
	for _, want := range []string{"ACTIVE", "single mode", "No drill since this node started", "Recent transitions None yet."} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q\n%s", want, text)
		}
	}
}

// TestPageEscapes: names, reasons and check details come from configs,
// peers on the wire and remote servers; none reaches the page as markup.
func TestPageEscapes(t *testing.T) {
	evil := `<script>alert(1)</script>"'&`
	src := httpSource{status: func() control.Status {
		st := fakeStatus(time.Now())
		st.Node = evil
		st.Version = evil
		st.Instances[0].Name = evil
		st.Instances[0].PriorityReason = evil
		st.Instances[0].State = evil
		st.Instances[0].Recent[0].Reason = evil
		st.Peers[0].Name = evil
		st.Peers[0].State = evil
		st.Backends[0].Name = evil
		st.Backends[0].Servers[1].LastCheck = evil
		st.Backends[0].Servers[1].State = evil
		st.Trackers[0].Detail = evil
		st.LastDrill.From = evil
		return st
	}, self: func() string { return evil }}
	page := getPage(t, src, "/")
	if strings.Contains(page, "<script>") || strings.Contains(page, `"'&`) {
		t.Errorf("page carries unescaped input:\n%s", page)
	}
	if !strings.Contains(visibleText(page), evil) {
		t.Error("escaped text should still read as the original")
	}
	if !strings.Contains(page, `class="badge st-other"`) {
		t.Error("an unknown state word should get the neutral class")
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0ms", 850 * time.Millisecond: "850ms", 4200 * time.Millisecond: "4.2s",
		192 * time.Second: "3m12s", 5*time.Hour + 3*time.Minute: "5h03m", 52 * time.Hour: "2d04h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestPageLiveness: the node table says whether a crash of each peer's
// vipd would be seen at once, and names a problem (a firewall) in red.
func TestPageLiveness(t *testing.T) {
	now := time.Now()
	src := httpSource{status: func() control.Status {
		st := fakeStatus(now)
		st.Peers = []control.Peer{
			{Name: "lb2", Addr: "10.0.0.12", State: "BACKUP", Fresh: true, LastSeen: now,
				Liveness: &control.PeerLiveness{State: "up", Speaks: true, Since: now.Add(-3 * time.Minute)}},
			{Name: "lb3", Addr: "10.0.0.13", Fresh: false,
				Liveness: &control.PeerLiveness{State: "down", Speaks: true, DialError: "connection refused", Problem: "lb3 refuses tcp/9602 while its vipd answers on udp/9602: a firewall rejects tcp/9602",
					LastEnd: "reset (RST) without a goodbye", LastEndAt: now.Add(-5 * time.Second)}},
		}
		return st
	}}
	page := getPage(t, src, "/")
	text := visibleText(page)
	for _, want := range []string{"Liveness", "up 3m00s", "down: connection refused · last end 5.0s ago: reset (RST) without a goodbye",
		"a firewall rejects tcp/9602"} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q\n%s", want, text)
		}
	}
	if !strings.Contains(page, `<span class="problem">lb3 refuses`) {
		t.Errorf("the liveness problem is not marked as one")
	}
}

// TestPageDrillTimeline: the last drill is drawn as inline SVG (no
// script): a rect per probe coloured by result, who answered, and a line
// with its label per mark.
func TestPageDrillTimeline(t *testing.T) {
	src := httpSource{status: func() control.Status {
		st := fakeStatus(time.Now())
		st.LastDrill.Samples = []control.DrillSample{
			{TMs: -20, Result: "ok", Node: "lb1"}, {TMs: -10, Result: "ok", Node: "lb1"}, {TMs: 0, Result: "refused", Node: "lb1"},
			{TMs: 10, Result: "timeout"}, {TMs: 40, Result: "ok", Node: "lb2"},
		}
		st.LastDrill.Marks = []control.DrillMark{
			{TMs: 0, Node: "lb1", What: "fault: hard leave (crash rehearsal)"}, {TMs: 31, Node: "lb2", What: "new master heard"},
			{TMs: 40, Node: "lb2", What: "first success"},
		}
		return st
	}}
	page := getPage(t, src, "/")
	for _, want := range []string{
		`<svg class="timeline" id="drill-timeline"`, `fill="#1a7f37"`, `fill="#cf222e"`, `fill="#bf8700"`, `fill="#0969da"`,
		`>0 ms fault: hard leave (crash rehearsal) (lb1)</text>`, `>31 ms new master heard (lb2)</text>`, `>40 ms first success</text>`,
		`answered by lb2`, `5 probes from -20 to 60 ms; fault: hard leave (crash rehearsal) at 0 ms → new master heard at 31 ms → first success at 40 ms`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("the page has a script")
	}
}
