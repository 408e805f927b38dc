package daemon

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipd/vipd/internal/control"
)

// scrape fetches /metrics and returns each sample line as series -> value,
// e.g. `vipd_vrrp_priority{instance="VI_51"}` -> "150", and the TYPE lines
// as family -> type.
func scrape(t *testing.T, status func() control.Status) (samples, types map[string]string) {
	t.Helper()
	h := newHTTPHandler(nil, httpSource{status: status})
	w := do(h, "127.0.0.1:1", "/metrics", "", "")
	if w.Code != 200 {
		t.Fatalf("/metrics = %d\n%s", w.Code, w.Body)
	}
	samples, types = map[string]string{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(w.Body.String()))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			types[name] = typ
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		samples[line[:i]] = line[i+1:]
	}
	return samples, types
}

func TestMetrics(t *testing.T) {
	now := time.Now()
	got, types := scrape(t, func() control.Status { return fakeStatus(now) })
	want := map[string]string{
		`vipd_info{mode="vrrp",node="lb1",version="v1.2.3"}`: "1",

		`vipd_vrrp_state{instance="VI_51",state="MASTER"}`:                               "1",
		`vipd_vrrp_state{instance="VI_51",state="BACKUP"}`:                               "0",
		`vipd_vrrp_state{instance="VI_51",state="FAULT"}`:                                "0",
		`vipd_vrrp_state{instance="VI_51",state="INIT"}`:                                 "0",
		`vipd_vrrp_transitions_total{instance="VI_51"}`:                                  "3",
		`vipd_vrrp_adverts_sent_total{instance="VI_51"}`:                                 "1234",
		`vipd_vrrp_adverts_received_total{instance="VI_51"}`:                             "56",
		`vipd_vrrp_drops_total{instance="VI_51",reason="ttl"}`:                           "2",
		`vipd_vrrp_drops_total{instance="VI_51",reason="checksum"}`:                      "7",
		`vipd_vrrp_drops_total{instance="VI_51",reason="vrid"}`:                          "0",
		`vipd_vrrp_peer_checksum_info{form="rfc9568",instance="VI_51",peer="10.0.0.12"}`: "1",
		`vipd_vrrp_effective_priority{instance="VI_51"}`:                                 "140",
		`vipd_vrrp_priority{instance="VI_51"}`:                                           "150",

		`vipd_peer_fresh{addr="10.0.0.12",peer="lb2"}`:                  "1",
		`vipd_peer_fresh{addr="10.0.0.13",peer="lb3"}`:                  "0",
		`vipd_peer_effective_priority{addr="10.0.0.12",peer="lb2"}`:     "100",
		`vipd_tracker_healthy{tracker="apiserver-local",type="script"}`: "0",

		`vipd_drill_last_gap_seconds{from="lb2",to="lb1"}`:      "0.85",
		`vipd_drill_last_expected_seconds{from="lb2",to="lb1"}`: "0.414",

		`vipd_frontend_listening{frontend="kubernetes"}`:          "1",
		`vipd_frontend_connections_active{frontend="kubernetes"}`: "4",
		`vipd_frontend_connections_total{frontend="kubernetes"}`:  "99",
		`vipd_frontend_bytes_in_total{frontend="kubernetes"}`:     "2048",
		`vipd_frontend_bytes_out_total{frontend="kubernetes"}`:    "4096",

		`vipd_server_state{backend="kube-apiserver",server="cp1",state="UP"}`:    "1",
		`vipd_server_state{backend="kube-apiserver",server="cp1",state="DOWN"}`:  "0",
		`vipd_server_state{backend="kube-apiserver",server="cp2",state="DOWN"}`:  "1",
		`vipd_server_state{backend="kube-apiserver",server="cp2",state="UP"}`:    "0",
		`vipd_server_state{backend="kube-apiserver",server="cp3",state="DRAIN"}`: "1",
		`vipd_server_state{backend="kube-apiserver",server="cp4",state="MAINT"}`: "1",
		`vipd_server_state{backend="kube-apiserver",server="cp4",state="UP"}`:    "0",

		`vipd_server_connections_active{backend="kube-apiserver",server="cp1"}`:       "3",
		`vipd_server_connections_total{backend="kube-apiserver",server="cp1"}`:        "70",
		`vipd_server_connections_failed_total{backend="kube-apiserver",server="cp1"}`: "1",
		`vipd_server_connections_failed_total{backend="kube-apiserver",server="cp2"}`: "5",
		`vipd_server_check_latency_seconds{backend="kube-apiserver",server="cp1"}`:    "0.0125",
		`vipd_server_check_latency_seconds{backend="kube-apiserver",server="cp2"}`:    "0.00025",
		`vipd_server_check_up{backend="kube-apiserver",server="cp1"}`:                 "1",
		`vipd_server_check_up{backend="kube-apiserver",server="cp2"}`:                 "0",
		`vipd_server_check_up{backend="kube-apiserver",server="cp3"}`:                 "1",
	}
	for series, v := range want {
		if g, ok := got[series]; !ok {
			t.Errorf("missing %s", series)
		} else if g != v {
			t.Errorf("%s = %s, want %s", series, g, v)
		}
	}
	// A server never checked has no check series rather than a fake 0.
	for _, s := range []string{
		`vipd_server_check_up{backend="kube-apiserver",server="cp4"}`,
		`vipd_server_check_latency_seconds{backend="kube-apiserver",server="cp4"}`,
	} {
		if _, ok := got[s]; ok {
			t.Errorf("%s present for a server never checked", s)
		}
	}
	wantTypes := map[string]string{
		"vipd_vrrp_state": "gauge", "vipd_vrrp_transitions_total": "counter", "vipd_vrrp_adverts_sent_total": "counter",
		"vipd_vrrp_adverts_received_total": "counter", "vipd_vrrp_drops_total": "counter", "vipd_vrrp_peer_checksum_info": "gauge",
		"vipd_vrrp_effective_priority": "gauge", "vipd_vrrp_priority": "gauge", "vipd_drill_last_gap_seconds": "gauge",
		"vipd_frontend_listening": "gauge", "vipd_frontend_connections_active": "gauge", "vipd_frontend_connections_total": "counter",
		"vipd_frontend_bytes_in_total": "counter", "vipd_frontend_bytes_out_total": "counter", "vipd_server_state": "gauge",
		"vipd_server_connections_active": "gauge", "vipd_server_connections_total": "counter",
		"vipd_server_connections_failed_total": "counter", "vipd_server_check_latency_seconds": "gauge", "vipd_server_check_up": "gauge",
		// The Go and process collectors ride along.
		"go_goroutines": "gauge", "process_cpu_seconds_total": "counter",
	}
	for name, typ := range wantTypes {
		if types[name] != typ {
			t.Errorf("family %s has TYPE %q, want %q", name, types[name], typ)
		}
	}
}

// TestMetricsSingleMode: no VRRP instance, no drill: those families are
// simply absent and the scrape still succeeds.
func TestMetricsSingleMode(t *testing.T) {
	got, _ := scrape(t, func() control.Status {
		st := fakeStatus(time.Now())
		st.Mode, st.Instances, st.Peers, st.LastDrill = "single", nil, nil, nil
		return st
	})
	for series := range got {
		if strings.HasPrefix(series, "vipd_vrrp_") || strings.HasPrefix(series, "vipd_drill_") {
			t.Errorf("single mode exports %s", series)
		}
	}
	if got[`vipd_frontend_listening{frontend="kubernetes"}`] != "1" {
		t.Errorf("frontend metrics missing in single mode")
	}
}

// TestMetricsReadAtScrape: the collector reads the status on every scrape
// (no cached values) and registers nothing globally.
func TestMetricsReadAtScrape(t *testing.T) {
	n := 0
	status := func() control.Status {
		n++
		st := fakeStatus(time.Now())
		st.Instances[0].AdvertsSent = uint64(n * 10)
		return st
	}
	h := newHTTPHandler(nil, httpSource{status: status})
	for i := 1; i <= 2; i++ {
		body := do(h, "127.0.0.1:1", "/metrics", "", "").Body.String()
		want := `vipd_vrrp_adverts_sent_total{instance="VI_51"} ` + map[int]string{1: "10", 2: "20"}[i]
		if !strings.Contains(body, want) {
			t.Errorf("scrape %d lacks %q", i, want)
		}
	}
	// A second handler (a daemon restarted in-process) must not clash.
	newHTTPHandler(nil, httpSource{status: status})
	if mfs, err := prometheus.DefaultGatherer.Gather(); err == nil {
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "vipd_") {
				t.Errorf("%s registered in the global registry", mf.GetName())
			}
		}
	}
}

// Liveness per peer: up, a problem, and each kind of end counted.
func TestMetricsLiveness(t *testing.T) {
	now := time.Now()
	got, types := scrape(t, func() control.Status {
		st := fakeStatus(now)
		st.Peers[0].Liveness = &control.PeerLiveness{State: "up", Goodbyes: 2, Crashes: 1, AliveAfterEnd: 3, Problem: "a firewall"}
		st.Peers[1].Liveness = &control.PeerLiveness{State: "down"}
		return st
	})
	for series, v := range map[string]string{
		`vipd_liveness_up{addr="10.0.0.12",peer="lb2"}`:                           "1",
		`vipd_liveness_up{addr="10.0.0.13",peer="lb3"}`:                           "0",
		`vipd_liveness_problem{addr="10.0.0.12",peer="lb2"}`:                      "1",
		`vipd_liveness_ends_total{addr="10.0.0.12",end="goodbye",peer="lb2"}`:     "2",
		`vipd_liveness_ends_total{addr="10.0.0.12",end="crash",peer="lb2"}`:       "1",
		`vipd_liveness_ends_total{addr="10.0.0.12",end="alive",peer="lb2"}`:       "3",
		`vipd_liveness_ends_total{addr="10.0.0.13",end="unconfirmed",peer="lb3"}`: "0",
	} {
		if got[series] != v {
			t.Errorf("%s = %q, want %s", series, got[series], v)
		}
	}
	if types["vipd_liveness_ends_total"] != "counter" || types["vipd_liveness_up"] != "gauge" {
		t.Errorf("types %s %s", types["vipd_liveness_ends_total"], types["vipd_liveness_up"])
	}
}
