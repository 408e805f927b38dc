package daemon

import (
	"context"

	"github.com/vipd/vipd/health"
)

// The health side of a restart: the old process stops routing results
// (pause) and saves every check's rise/fall state and every tracker's
// verdict; the new one starts its checks from them (seed) and its
// trackers with them (restore), so the effective priorities it starts
// with are those the old one advertised and no server changes state.

// pause stops routing results until resume; a result being routed is
// finished first.
func (h *healthChecks) pause() {
	h.gateMu.Lock()
	if h.paused == nil {
		h.paused = make(chan struct{})
	}
	h.gateMu.Unlock()
	h.busy.Lock() // the result under way, if any, is done
	h.busy.Unlock()
}

func (h *healthChecks) resume() {
	h.gateMu.Lock()
	defer h.gateMu.Unlock()
	if h.paused != nil {
		close(h.paused)
		h.paused = nil
	}
}

// route waits while paused, then routes ev; false when ctx ended first.
func (h *healthChecks) route(ctx context.Context, ev health.Event) {
	h.gateMu.Lock()
	ch := h.paused
	h.gateMu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
	h.busy.Lock()
	defer h.busy.Unlock()
	h.onResult(ev)
}

// saved is every check's last state (checks with no result yet are
// left out: the new process starts them from Unknown).
func (h *healthChecks) saved() []checkSaved {
	var out []checkSaved
	for name, ev := range h.group.Snapshot() {
		if ev.Round == 0 || ev.Status == health.Unknown {
			continue
		}
		out = append(out, checkSaved{Name: name, Status: ev.Status.String(), Streak: ev.Streak, Detail: ev.Result.Detail})
	}
	return out
}

// seed starts the checks of the same name from saved states (before run)
// and tells the proxy which servers were down.
func (h *healthChecks) seed(saved []checkSaved) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range saved {
		p, ok := h.planned[s.Name]
		if !ok {
			continue
		}
		st := health.Up
		if s.Status == health.Down.String() {
			st = health.Down
		}
		p.checker.Seed = health.Seed{Status: st, Streak: s.Streak}
		if p.key.kind == checkServer {
			h.proxy.SetHealth(p.key.backend, p.key.server, st == health.Up)
		}
	}
}

// saved is every tracker's verdict.
func (t *trackers) saved() []trackerSaved {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []trackerSaved
	for _, s := range t.list {
		out = append(out, trackerSaved{Name: s.cfg.Name, Healthy: s.healthy, Detail: s.detail, Pending: s.pending})
	}
	return out
}

// restore takes the verdicts of trackers of the same name (before the
// runners are attached), so the first priority handed to a runner is the
// one the old process advertised.
func (t *trackers) restore(saved []trackerSaved) {
	t.mu.Lock()
	defer t.mu.Unlock()
	by := map[string]trackerSaved{}
	for _, s := range saved {
		by[s.Name] = s
	}
	for _, s := range t.list {
		if v, ok := by[s.cfg.Name]; ok {
			s.healthy, s.detail, s.pending = v.Healthy, v.Detail, v.Pending
		}
	}
	for _, ti := range t.insts {
		ti.prio, ti.fault, ti.reason = t.effectiveLocked(ti)
	}
}
