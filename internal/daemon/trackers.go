package daemon

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/vrrp"
)

// trackers holds every tracker's verdict and turns it into each instance's
// effective priority with keepalived's weight semantics
// (vrrp.EffectivePriority). It computes and hands the result to the
// instance's runner under one lock, and the runner keeps the latest value
// it was given, so results arriving from several goroutines can never leave
// a stale priority behind.
type trackers struct {
	log    zerolog.Logger
	notify func() // a tracker or a priority changed

	mu    sync.Mutex
	list  []*trackerState
	insts map[string]*trackedInstance
}

type trackerState struct {
	cfg     config.Track
	healthy bool
	detail  string
	// pending is set from a reload that changed the tracker until its new
	// check has a result: it keeps the verdict it had, so a reload never
	// makes a failing tracker healthy for a moment (a VRRP flap).
	pending bool
	// link is the interface of an implicit own-link tracker; "" otherwise.
	link string
}

// trackedInstance is an instance's side of the trackers.
type trackedInstance struct {
	name   string
	ifname string
	base   uint8
	runner priorityTaker // nil until attached
	prio   uint8
	fault  bool
	reason string
}

// priorityTaker is the runner, as the trackers see it.
type priorityTaker interface {
	SetPriority(prio uint8, fault bool, reason string)
}

func newTrackers(cfg *config.Config, node *config.Node, log zerolog.Logger, notify func()) *trackers {
	t := &trackers{log: log, notify: notify, insts: map[string]*trackedInstance{}}
	t.list, t.insts = build(cfg, node, nil)
	for _, ti := range t.insts {
		ti.prio, ti.fault, ti.reason = t.effectiveLocked(ti)
	}
	return t
}

// build makes the tracker list and the instances for cfg, keeping the
// verdicts of old trackers: unchanged ones as they are, changed ones as
// pending until their new check reports.
func build(cfg *config.Config, node *config.Node, old []*trackerState) ([]*trackerState, map[string]*trackedInstance) {
	byName := map[string]*trackerState{}
	for _, s := range old {
		byName[s.cfg.Name] = s
	}
	var list []*trackerState
	insts := map[string]*trackedInstance{}
	links := map[string]bool{}
	for i := range cfg.Instances {
		in := &cfg.Instances[i]
		ifname := in.InterfaceFor(node)
		insts[in.Name] = &trackedInstance{name: in.Name, ifname: ifname, base: in.PriorityOf(node)}
		if links[ifname] {
			continue
		}
		// The VRRP interface itself is always tracked with weight 0, as
		// keepalived does: with its link down a node is FAULT and lets go
		// of the VIP instead of claiming MASTER on a dead port.
		links[ifname] = true
		s := &trackerState{
			cfg:  config.Track{Name: ownLinkTracker(ifname), Type: config.TrackInterface, Interface: ifname},
			link: ifname, healthy: true, detail: "link " + ifname,
		}
		if o := byName[s.cfg.Name]; o != nil {
			s.healthy, s.detail = o.healthy, o.detail
		}
		list = append(list, s)
	}
	for _, c := range cfg.Tracks {
		// Unknown counts as healthy: until the first result arrives the
		// startup hold keeps a fresh node from preempting anyway.
		s := &trackerState{cfg: c, healthy: true, detail: "no result yet"}
		if o := byName[c.Name]; o != nil {
			s.healthy, s.detail, s.pending = o.healthy, o.detail, o.pending
			if !reflect.DeepEqual(o.cfg, c) {
				s.pending = true
			}
		}
		list = append(list, s)
	}
	return list, insts
}

// applies reports whether tracker s moves instance ti's priority.
func (s *trackerState) applies(ti *trackedInstance) bool {
	if s.link != "" {
		return s.link == ti.ifname
	}
	return s.cfg.Applies(ti.name)
}

func (t *trackers) effectiveLocked(ti *trackedInstance) (uint8, bool, string) {
	states := make([]vrrp.TrackerState, 0, len(t.list))
	for _, s := range t.list {
		if s.applies(ti) {
			states = append(states, vrrp.TrackerState{Name: s.cfg.Name, Weight: s.cfg.Weight, Healthy: s.healthy})
		}
	}
	return vrrp.EffectivePriority(ti.base, states)
}

// attach gives instance name its runner and hands it the current priority.
func (t *trackers) attach(name string, r priorityTaker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ti := t.insts[name]
	if ti == nil {
		return
	}
	ti.runner = r
	ti.prio, ti.fault, ti.reason = t.effectiveLocked(ti)
	r.SetPriority(ti.prio, ti.fault, ti.reason)
}

// set records a verdict; why names the source in the log line.
func (t *trackers) set(name string, healthy bool, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false
	for _, s := range t.list {
		if s.cfg.Name != name {
			continue
		}
		changed = changed || s.healthy != healthy || s.pending
		s.healthy, s.detail, s.pending = healthy, detail, false
	}
	if changed {
		t.pushLocked("tracker " + name)
		t.notify()
	}
}

// setLink records the own link of an instance's interface.
func (t *trackers) setLink(ifname string, up bool) {
	state := map[bool]string{true: "up", false: "down"}[up]
	t.set(ownLinkTracker(ifname), up, fmt.Sprintf("link %s %s", ifname, state))
}

// pushLocked recomputes every instance's priority and hands the changed
// ones to their runners. t.mu is held.
func (t *trackers) pushLocked(why string) {
	for _, ti := range t.insts {
		prio, fault, reason := t.effectiveLocked(ti)
		if prio == ti.prio && fault == ti.fault {
			ti.reason = reason
			continue
		}
		ti.prio, ti.fault, ti.reason = prio, fault, reason
		t.log.Info().Str("component", "track").Str("instance", ti.name).Int("effective_priority", int(prio)).Bool("fault", fault).
			Msg(why + " moved the priority: " + reason)
		if ti.runner != nil {
			ti.runner.SetPriority(prio, fault, why+": "+reason)
		}
	}
}

// reset takes a reloaded config: trackers that did not change keep their
// verdict, changed ones keep it until their check reports, and the new
// priorities (a changed [[node]] priority included) go to the runners.
func (t *trackers) reset(cfg *config.Config, node *config.Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list, insts := build(cfg, node, t.list)
	for name, ti := range insts {
		if old := t.insts[name]; old != nil {
			ti.runner, ti.prio, ti.fault = old.runner, old.prio, old.fault
		}
	}
	t.list, t.insts = list, insts
	t.pushLocked("reload")
	t.notify()
}

// ofType lists the trackers of one type.
func (t *trackers) ofType(typ string) []config.Track {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []config.Track
	for _, s := range t.list {
		if s.cfg.Type == typ && s.link == "" {
			out = append(out, s.cfg)
		}
	}
	return out
}

// status lists the trackers and says why each instance's priority is what
// it is.
func (t *trackers) status() ([]control.Tracker, map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []control.Tracker
	for _, s := range t.list {
		detail := s.detail
		if s.pending {
			detail += " (kept from before the reload until the changed check reports)"
		}
		out = append(out, control.Tracker{Name: s.cfg.Name, Type: s.cfg.Type, Weight: s.cfg.Weight, Healthy: s.healthy, Detail: detail})
	}
	reasons := map[string]string{}
	for name, ti := range t.insts {
		_, _, reasons[name] = t.effectiveLocked(ti)
	}
	return out, reasons
}

// ownLinkTracker names the implicit tracker of a VRRP interface.
func ownLinkTracker(ifname string) string { return "link " + ifname }
