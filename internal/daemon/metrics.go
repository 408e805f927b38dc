package daemon

import (
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vipd/vipd/internal/control"
)

// metricsHandler serves /metrics from a private registry: the status
// collector plus the Go and process collectors. Nothing registers with
// the global default registry.
func metricsHandler(status func() control.Status) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newStatusCollector(status),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// ContinueOnError: one odd series (say, two senders reporting the same
	// address) must not blank the whole scrape.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// vrrpStates and serverStates are every value the state-set gauges take,
// so that a dashboard sees 0 for the states a node is not in.
var (
	vrrpStates   = []string{"INIT", "BACKUP", "MASTER", "FAULT"}
	serverStates = []string{"UP", "DOWN", "DRAIN", "MAINT"}
)

// statusCollector turns one Daemon.Status() snapshot per scrape into
// metrics. Counters come straight from the daemon's own counters, so they
// are monotonic for the life of the process.
type statusCollector struct {
	status func() control.Status

	info *prometheus.Desc

	vrrpState, vrrpTransitions, vrrpSent, vrrpReceived, vrrpDrops *prometheus.Desc
	vrrpChecksum, vrrpEffPrio, vrrpPrio                           *prometheus.Desc
	vrrpVersion, vrrpNotices, vrrpEffectErrors, vrrpFault         *prometheus.Desc
	vrrpPeerVersion, vrrpPeerProblem                              *prometheus.Desc

	peerFresh, peerPrio, trackerHealthy *prometheus.Desc

	liveUp, liveProblem, liveEnds *prometheus.Desc

	drillGap, drillExpected, drillTime *prometheus.Desc

	feListening, feActive, feTotal, feBytesIn, feBytesOut *prometheus.Desc

	srvState, srvActive, srvTotal, srvFailed, srvLatency, srvUp *prometheus.Desc

	bgp *bgpCollector // the bgp section, from the same snapshot
}

func newStatusCollector(status func() control.Status) *statusCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &statusCollector{
		status: status,
		info:   d("vipd_info", "Always 1; labels name the node, version and mode.", "node", "version", "mode"),

		vrrpState:        d("vipd_vrrp_state", "1 for the instance's current VRRP state, 0 for the others.", "instance", "state"),
		vrrpTransitions:  d("vipd_vrrp_transitions_total", "VRRP state transitions since start.", "instance"),
		vrrpSent:         d("vipd_vrrp_adverts_sent_total", "VRRP advertisements sent.", "instance"),
		vrrpReceived:     d("vipd_vrrp_adverts_received_total", "Valid VRRP advertisements received.", "instance"),
		vrrpDrops:        d("vipd_vrrp_drops_total", "VRRP packets dropped, by reason.", "instance", "reason"),
		vrrpChecksum:     d("vipd_vrrp_peer_checksum_info", "1 per router heard on the VRID, with the checksum form it uses (pseudo-header: keepalived).", "instance", "peer", "form"),
		vrrpEffPrio:      d("vipd_vrrp_effective_priority", "Priority advertised now, after trackers.", "instance"),
		vrrpPrio:         d("vipd_vrrp_priority", "Configured priority of this node.", "instance"),
		vrrpVersion:      d("vipd_vrrp_version", "VRRP version the instance speaks (3, or 2 beside keepalived).", "instance"),
		vrrpNotices:      d("vipd_vrrp_notices_total", "Adverts accepted with something odd about them, by kind (addr_list: the VIP lists differ).", "instance", "notice"),
		vrrpEffectErrors: d("vipd_vrrp_effect_errors_total", "Host effects that failed (listen, add VIP, remove VIP).", "instance", "action"),
		vrrpFault:        d("vipd_vrrp_cannot_serve", "1 while the instance is FAULT because a listener or the VIP could not be set up.", "instance"),
		vrrpPeerVersion:  d("vipd_vrrp_peer_version", "VRRP version each router heard on the VRID speaks.", "instance", "peer"),
		vrrpPeerProblem:  d("vipd_vrrp_peer_problem", "1 for a router heard on the VRID whose adverts do not count or look wrong (status and the log say why).", "instance", "peer"),

		peerFresh:      d("vipd_peer_fresh", "1 when the peer's status beacon is recent.", "peer", "addr"),
		peerPrio:       d("vipd_peer_effective_priority", "Effective priority the peer last reported.", "peer", "addr"),
		trackerHealthy: d("vipd_tracker_healthy", "1 when the priority tracker is healthy.", "tracker", "type"),

		liveUp:      d("vipd_liveness_up", "1 while the liveness connection to the peer is up (a crash of its vipd is seen within milliseconds).", "peer", "addr"),
		liveProblem: d("vipd_liveness_problem", "1 while something (a firewall) keeps liveness from working with the peer; status says what.", "peer", "addr"),
		liveEnds:    d("vipd_liveness_ends_total", "Ends of the liveness connection to the peer, by what they meant: goodbye (planned), crash (confirmed: a takeover signal), alive (reset while its vipd answered), unconfirmed.", "peer", "addr", "end"),

		drillGap:      d("vipd_drill_last_gap_seconds", "Client-visible gap measured by the last failover drill.", "from", "to"),
		drillExpected: d("vipd_drill_last_expected_seconds", "Gap the VRRP timers predicted for the last failover drill.", "from", "to"),
		drillTime:     d("vipd_drill_last_timestamp_seconds", "When the last failover drill ran (Unix time).", "from", "to"),

		feListening: d("vipd_frontend_listening", "1 when the frontend's listeners are bound.", "frontend"),
		feActive:    d("vipd_frontend_connections_active", "Client connections open now.", "frontend"),
		feTotal:     d("vipd_frontend_connections_total", "Client connections accepted.", "frontend"),
		feBytesIn:   d("vipd_frontend_bytes_in_total", "Bytes received from clients.", "frontend"),
		feBytesOut:  d("vipd_frontend_bytes_out_total", "Bytes sent to clients.", "frontend"),

		srvState:   d("vipd_server_state", "1 for the server's current state, 0 for the others.", "backend", "server", "state"),
		srvActive:  d("vipd_server_connections_active", "Proxied connections open to the server now.", "backend", "server"),
		srvTotal:   d("vipd_server_connections_total", "Connections proxied to the server.", "backend", "server"),
		srvFailed:  d("vipd_server_connections_failed_total", "Connects to the server that failed.", "backend", "server"),
		srvLatency: d("vipd_server_check_latency_seconds", "Duration of the last health check.", "backend", "server"),
		srvUp:      d("vipd_server_check_up", "1 when the last health check passed.", "backend", "server"),

		bgp: newBGPCollector(),
	}
}

// Describe sends every descriptor; the collector is fully checked.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info,
		c.vrrpState, c.vrrpTransitions, c.vrrpSent, c.vrrpReceived, c.vrrpDrops, c.vrrpChecksum, c.vrrpEffPrio, c.vrrpPrio,
		c.vrrpVersion, c.vrrpNotices, c.vrrpEffectErrors, c.vrrpFault, c.vrrpPeerVersion, c.vrrpPeerProblem,
		c.peerFresh, c.peerPrio, c.trackerHealthy,
		c.liveUp, c.liveProblem, c.liveEnds,
		c.drillGap, c.drillExpected, c.drillTime,
		c.feListening, c.feActive, c.feTotal, c.feBytesIn, c.feBytesOut,
		c.srvState, c.srvActive, c.srvTotal, c.srvFailed, c.srvLatency, c.srvUp,
	} {
		ch <- d
	}
	c.bgp.describe(ch)
}

// Collect reads one status snapshot.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	gauge(c.info, 1, st.Node, st.Version, st.Mode)
	c.bgp.collect(ch, st.BGP)

	for _, in := range st.Instances {
		for _, s := range vrrpStates {
			gauge(c.vrrpState, b2f(in.State == s), in.Name, s)
		}
		if !slices.Contains(vrrpStates, in.State) {
			gauge(c.vrrpState, 1, in.Name, in.State)
		}
		counter(c.vrrpTransitions, float64(in.Transitions), in.Name)
		counter(c.vrrpSent, float64(in.AdvertsSent), in.Name)
		counter(c.vrrpReceived, float64(in.AdvertsReceived), in.Name)
		for reason, n := range in.Drops {
			counter(c.vrrpDrops, float64(n), in.Name, reason)
		}
		for _, s := range in.Senders {
			if s.Checksum != "" {
				gauge(c.vrrpChecksum, 1, in.Name, s.Addr, s.Checksum)
			}
			gauge(c.vrrpPeerVersion, float64(s.Version), in.Name, s.Addr)
			gauge(c.vrrpPeerProblem, b2f(s.Problem != ""), in.Name, s.Addr)
		}
		for k, n := range in.Notices {
			counter(c.vrrpNotices, float64(n), in.Name, k)
		}
		for k, n := range in.EffectErrors {
			counter(c.vrrpEffectErrors, float64(n), in.Name, k)
		}
		gauge(c.vrrpVersion, float64(in.Version), in.Name)
		gauge(c.vrrpFault, b2f(in.Fault != ""), in.Name)
		gauge(c.vrrpEffPrio, float64(in.EffectivePriority), in.Name)
		gauge(c.vrrpPrio, float64(in.Priority), in.Name)
	}
	for _, p := range st.Peers {
		gauge(c.peerFresh, b2f(p.Fresh), p.Name, p.Addr)
		gauge(c.peerPrio, float64(p.EffectivePriority), p.Name, p.Addr)
		if l := p.Liveness; l != nil {
			gauge(c.liveUp, b2f(l.State == "up"), p.Name, p.Addr)
			gauge(c.liveProblem, b2f(l.Problem != ""), p.Name, p.Addr)
			counter(c.liveEnds, float64(l.Goodbyes), p.Name, p.Addr, "goodbye")
			counter(c.liveEnds, float64(l.Crashes), p.Name, p.Addr, "crash")
			counter(c.liveEnds, float64(l.AliveAfterEnd), p.Name, p.Addr, "alive")
			counter(c.liveEnds, float64(l.Unconfirmed), p.Name, p.Addr, "unconfirmed")
		}
	}
	for _, t := range st.Trackers {
		gauge(c.trackerHealthy, b2f(t.Healthy), t.Name, t.Type)
	}
	if dr := st.LastDrill; dr != nil {
		gauge(c.drillGap, dr.GapMs/1000, dr.From, dr.To)
		gauge(c.drillExpected, dr.ExpectedMs/1000, dr.From, dr.To)
		if !dr.At.IsZero() {
			gauge(c.drillTime, float64(dr.At.UnixNano())/1e9, dr.From, dr.To)
		}
	}

	for _, f := range st.Frontends {
		gauge(c.feListening, b2f(f.Listening), f.Name)
		gauge(c.feActive, float64(f.ActiveConns), f.Name)
		counter(c.feTotal, float64(f.TotalConns), f.Name)
		counter(c.feBytesIn, float64(f.BytesIn), f.Name)
		counter(c.feBytesOut, float64(f.BytesOut), f.Name)
	}
	for _, b := range st.Backends {
		for _, s := range b.Servers {
			for _, state := range serverStates {
				gauge(c.srvState, b2f(s.State == state), b.Name, s.Name, state)
			}
			if !slices.Contains(serverStates, s.State) {
				gauge(c.srvState, 1, b.Name, s.Name, s.State)
			}
			gauge(c.srvActive, float64(s.ActiveConns), b.Name, s.Name)
			counter(c.srvTotal, float64(s.TotalConns), b.Name, s.Name)
			counter(c.srvFailed, float64(s.FailedConns), b.Name, s.Name)
			// No check has run yet: absent, rather than a fake 0 or "down".
			if !s.CheckedAt.IsZero() {
				gauge(c.srvLatency, s.LatencyMs/1000, b.Name, s.Name)
				gauge(c.srvUp, b2f(checkPassed(s.LastCheck)), b.Name, s.Name)
			}
		}
	}
}

// checkPassed reads the outcome from Server.LastCheck ("ok", "ok: ...",
// "failed: ...", as checkText writes it).
func checkPassed(last string) bool { return last == "ok" || strings.HasPrefix(last, "ok:") }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
