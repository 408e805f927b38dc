package daemon

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipd/vipd/internal/control"
)

// bgpSessionStates and bgpVIPStates are every value the BGP state-set
// gauges take, so a dashboard sees 0 for the states a node is not in.
var (
	bgpSessionStates = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}
	bgpVIPStates     = []string{"announced", "draining", "withdrawn"}
)

// bgpCollector turns the bgp section of the status collector's snapshot
// into metrics; a node without BGP exports none of them.
type bgpCollector struct {
	sessState, sessUptime, sessSent, sessReceived, sessFlaps *prometheus.Desc
	vipState, drained                                        *prometheus.Desc
}

func newBGPCollector() *bgpCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &bgpCollector{
		sessState:    d("vipd_bgp_session_state", "1 for the BGP session's current state (RFC 4271 FSM), 0 for the others.", "peer", "state"),
		sessUptime:   d("vipd_bgp_session_uptime_seconds", "How long the BGP session has been established; 0 when it is not.", "peer"),
		sessSent:     d("vipd_bgp_prefixes_sent", "Prefixes advertised to the router on the session.", "peer"),
		sessReceived: d("vipd_bgp_prefixes_received", "Prefixes accepted from the router on the session.", "peer"),
		sessFlaps:    d("vipd_bgp_session_flaps_total", "Times the BGP session left established.", "peer"),
		vipState:     d("vipd_bgp_vip_state", "1 for the announced VIP's current state, 0 for the others.", "vip", "state"),
		drained:      d("vipd_bgp_drained", "1 while the node is drained by the operator (vipd drain self)."),
	}
}

func (c *bgpCollector) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sessState, c.sessUptime, c.sessSent, c.sessReceived, c.sessFlaps, c.vipState, c.drained} {
		ch <- d
	}
}

func (c *bgpCollector) collect(ch chan<- prometheus.Metric, b *control.BGP) {
	if b == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for _, s := range b.Sessions {
		for _, st := range bgpSessionStates {
			gauge(c.sessState, b2f(s.State == st), s.Peer, st)
		}
		if !slices.Contains(bgpSessionStates, s.State) {
			gauge(c.sessState, 1, s.Peer, s.State)
		}
		gauge(c.sessUptime, s.UptimeS, s.Peer)
		gauge(c.sessSent, float64(s.PrefixesSent), s.Peer)
		gauge(c.sessReceived, float64(s.PrefixesReceived), s.Peer)
		ch <- prometheus.MustNewConstMetric(c.sessFlaps, prometheus.CounterValue, float64(s.Flaps), s.Peer)
	}
	for _, v := range b.VIPs {
		for _, st := range bgpVIPStates {
			gauge(c.vipState, b2f(v.State == st), v.VIP, st)
		}
	}
	gauge(c.drained, b2f(b.Drained))
}
