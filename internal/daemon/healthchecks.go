package daemon

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/verify"
)

// checkKind says what a health check is for.
type checkKind uint8

const (
	checkServer checkKind = iota + 1 // a backend server: feeds the proxy
	checkScript                      // a script tracker: feeds the trackers
)

// checkKey identifies a check; results are routed by it. Its String is
// only the check's name in the health group.
type checkKey struct {
	kind            checkKind
	backend, server string // checkServer
	track           string // checkScript
}

func (k checkKey) String() string {
	if k.kind == checkServer {
		return "server " + k.backend + "/" + k.server
	}
	return "track " + k.track
}

// plannedCheck is one check a config asks for; spec compares two configs.
type plannedCheck struct {
	key     checkKey
	checker *health.Checker
	spec    any
}

// healthChecks runs every check the config asks for, on every node (a
// backup takes over warm), and routes the results: servers to the proxy
// (and the backends trackers), scripts to the trackers. A reload restarts
// only the checks that changed, so a server keeps its rise/fall state.
type healthChecks struct {
	log    zerolog.Logger
	group  *health.Group
	events chan health.Event
	proxy  Proxy
	trk    *trackers
	notify func()
	// onBackends runs after the backends trackers were re-evaluated (the
	// BGP side's health gate); nil: nothing.
	onBackends func()

	mu      sync.Mutex
	planned map[string]plannedCheck // by checkKey.String()

	// A restart pauses the routing of results (restart_health.go).
	gateMu sync.Mutex
	paused chan struct{} // non-nil while paused
	busy   sync.Mutex    // held while a result is routed
}

func newHealthChecks(log zerolog.Logger, p Proxy, trk *trackers, notify func()) *healthChecks {
	return &healthChecks{
		log: log, group: health.NewGroup(), events: make(chan health.Event, 256),
		proxy: p, trk: trk, notify: notify, planned: map[string]plannedCheck{},
	}
}

// plan builds every check of cfg, probes included; an error (a CA or key
// that cannot be read) means nothing may be applied.
func plan(cfg *config.Config) (map[string]plannedCheck, error) {
	out := map[string]plannedCheck{}
	for _, b := range cfg.Backends {
		if b.Check.Type == config.CheckNone {
			continue
		}
		for _, s := range b.Servers {
			spec := verify.CheckSpec(b, s)
			probe, err := health.NewProbe(spec)
			if err != nil {
				return nil, fmt.Errorf("backend %q server %q: health check: %w", b.Name, s.Name, err)
			}
			k := checkKey{kind: checkServer, backend: b.Name, server: s.Name}
			out[k.String()] = plannedCheck{key: k, spec: []any{spec, b.Check}, checker: &health.Checker{
				Name: k.String(), Probe: probe,
				Interval: b.Check.Interval, Timeout: b.Check.Timeout, Rise: b.Check.Rise, Fall: b.Check.Fall,
			}}
		}
	}
	for _, t := range cfg.Tracks {
		if t.Type != config.TrackScript {
			continue
		}
		k := checkKey{kind: checkScript, track: t.Name}
		out[k.String()] = plannedCheck{key: k, spec: t, checker: &health.Checker{
			Name: k.String(), Probe: health.ScriptProbe(t.Command),
			Interval: t.Interval, Timeout: t.Timeout, Rise: t.Rise, Fall: t.Fall,
		}}
	}
	return out, nil
}

// apply makes the running checks those of next: added and changed ones
// (re)start, removed ones stop, unchanged ones go on untouched.
func (h *healthChecks) apply(next map[string]plannedCheck) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, p := range next {
		if old, ok := h.planned[name]; ok && reflect.DeepEqual(old.spec, p.spec) {
			next[name] = old
			continue
		}
		h.group.Add(p.checker)
	}
	for name := range h.planned {
		if _, ok := next[name]; !ok {
			h.group.Remove(name)
		}
	}
	h.planned = next
}

func (h *healthChecks) key(name string) (checkKey, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.planned[name]
	return p.key, ok
}

// run runs the checks until ctx ends; ready is called once every check has
// a first result.
func (h *healthChecks) run(ctx context.Context, ready func()) error {
	go func() {
		select {
		case <-h.group.FirstRoundDone():
			ready()
		case <-ctx.Done():
		}
	}()
	go h.updateBackendTrackers()
	errc := make(chan error, 1)
	go func() { errc <- h.group.Run(ctx, h.events) }()
	for {
		select {
		case err := <-errc:
			return err
		case ev := <-h.events:
			h.route(ctx, ev)
		}
	}
}

func (h *healthChecks) onResult(ev health.Event) {
	k, ok := h.key(ev.Name)
	if !ok {
		return
	}
	up := ev.Status != health.Down
	switch k.kind {
	case checkServer:
		if ev.Changed {
			h.log.Info().Str("component", "health").Str("backend", k.backend).Str("server", k.server).
				Str("status", ev.Status.String()).Str("detail", ev.Result.Detail).Msg("server health changed")
		}
		h.proxy.SetHealth(k.backend, k.server, up)
		h.updateBackendTrackers()
		if ev.Changed {
			h.notify()
		}
	case checkScript:
		detail := ev.Result.Detail
		if detail == "" {
			detail = ev.Status.String()
		}
		h.trk.set(k.track, up, detail)
	}
}

// updateBackendTrackers re-evaluates every "backends" tracker from the
// proxy's view of healthy servers.
func (h *healthChecks) updateBackendTrackers() {
	for _, t := range h.trk.ofType(config.TrackBackends) {
		n := h.proxy.Healthy(t.Frontend)
		h.trk.set(t.Name, n >= t.MinHealthy, fmt.Sprintf("%d healthy servers behind %s (need %d)", n, t.Frontend, t.MinHealthy))
	}
	if h.onBackends != nil {
		h.onBackends()
	}
}

// last returns the latest result of a server's check.
func (h *healthChecks) last(backend, server string) (health.Event, bool) {
	k := checkKey{kind: checkServer, backend: backend, server: server}
	ev, ok := h.group.Snapshot()[k.String()]
	return ev, ok
}
