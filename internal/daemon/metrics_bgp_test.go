package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/control"
)

func bgpStatusSample() *control.BGP {
	return &control.BGP{
		ASN: 64512, RouterID: "10.1.0.21", Drained: true, DrainTimeMs: 5000,
		Sessions: []control.BGPSession{
			{Peer: "10.1.0.1", ASN: 64500, State: "established", UptimeS: 42, HoldTimeS: 9, PrefixesSent: 1, PrefixesReceived: 3, Flaps: 2, BFD: "up"},
			{Peer: "10.1.0.2", ASN: 64500, State: "active", LastError: "connection refused"},
		},
		VIPs: []control.BGPVIP{
			{VIP: "192.168.40.10", State: "draining", Reason: "drained by the operator (vipd drain self)", Frontends: []string{"kubernetes"}, Peers: 1,
				WithdrawAt: time.Date(2026, 1, 1, 12, 0, 5, 0, time.UTC)},
			{VIP: "192.168.40.11", State: "withdrawn", Reason: "backends: 0 of 3 healthy behind talos (need 1)", Frontends: []string{"talos"}},
		},
	}
}

func TestMetricsBGP(t *testing.T) {
	got, types := scrape(t, func() control.Status {
		st := fakeStatus(time.Now())
		st.BGP = bgpStatusSample()
		return st
	})
	want := map[string]string{
		`vipd_bgp_session_state{peer="10.1.0.1",state="established"}`: "1",
		`vipd_bgp_session_state{peer="10.1.0.1",state="idle"}`:        "0",
		`vipd_bgp_session_state{peer="10.1.0.2",state="active"}`:      "1",
		`vipd_bgp_session_uptime_seconds{peer="10.1.0.1"}`:            "42",
		`vipd_bgp_prefixes_sent{peer="10.1.0.1"}`:                     "1",
		`vipd_bgp_prefixes_received{peer="10.1.0.1"}`:                 "3",
		`vipd_bgp_session_flaps_total{peer="10.1.0.1"}`:               "2",
		`vipd_bgp_vip_state{state="draining",vip="192.168.40.10"}`:    "1",
		`vipd_bgp_vip_state{state="announced",vip="192.168.40.10"}`:   "0",
		`vipd_bgp_vip_state{state="withdrawn",vip="192.168.40.11"}`:   "1",
		`vipd_bgp_drained`: "1",
	}
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %q, want %q", series, got[series], v)
		}
	}
	if types["vipd_bgp_session_flaps_total"] != "counter" || types["vipd_bgp_vip_state"] != "gauge" {
		t.Errorf("types %q %q", types["vipd_bgp_session_flaps_total"], types["vipd_bgp_vip_state"])
	}
	// A node without BGP exports none of them.
	got, _ = scrape(t, func() control.Status { return fakeStatus(time.Now()) })
	for series := range got {
		if strings.HasPrefix(series, "vipd_bgp_") {
			t.Errorf("%s exported without BGP", series)
		}
	}
}
