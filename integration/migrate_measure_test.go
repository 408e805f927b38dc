package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// What the migration test measures at every step: failed connects and the
// gap (the prober), two holders or none (the kernel's address events) and
// streams cut.

// migStep is one step of the runbook and what clients saw during it.
type migStep struct {
	name string
	// leads says who moves the VIP: "vipd" (a planned vipd handover:
	// target 0 failed connects), "keepalived" (keepalived leaves: no
	// worse than its own graceful stop), "baseline" (keepalived alone, the
	// yardstick), "crash" (a crash rehearsal, measured only), or "" (the
	// VIP does not move: nothing may fail or be cut).
	leads    string
	from, to time.Time
	note     string

	failed int
	// split counts the failed connects whose handshake the VIP's move cut
	// in two (see splitHandshake); moves counts the VIP's moves.
	split, moves int
	gap          time.Duration
	overlap      time.Duration // longest time with two VIP holders
	unheld       time.Duration // longest time with none
	streamsCut   int
	errs         []string // what the failed connects said (at most 3)
}

// step runs one step of the runbook and records its window; settle waits
// until the VIP has one holder and a client connect after the step's
// actions got through.
func (m *migLab) step(t *testing.T, name, leads string, do func(s *migStep)) *migStep {
	t.Helper()
	s := &migStep{name: name, leads: leads, from: time.Now()}
	do(s)
	settled := time.Now()
	err := lab.WaitFor(10*time.Second, func() error {
		if h := m.watch.Holders(time.Now()); len(h) != 1 {
			return fmt.Errorf("VIP held by %v", h)
		}
		return m.gotThrough(settled)
	})
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, m.diagnose(s.from))
	}
	s.to = time.Now()
	s.streamsCut = m.renewStreams(t, s.from)
	m.steps = append(m.steps, s)
	return s
}

// gotThrough says whether a client connect started at or after since got
// through (the concurrent prober writes its samples as they end).
func (m *migLab) gotThrough(since time.Time) error {
	for _, p := range m.pr.Samples() {
		if p.OK && !p.At.Before(since) {
			return nil
		}
	}
	return fmt.Errorf("no client connect got through since %s", since.Format(time.StampMilli))
}

// diagnose says what the VIP, the client and every vipd did since from.
func (m *migLab) diagnose(from time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "VIP events since %s: %+v\n", from.Format(time.StampMilli), m.watch.Events())
	n := 0
	for _, p := range m.pr.Samples() {
		if !p.At.Before(from) && !p.OK && n < 20 {
			fmt.Fprintf(&b, "client %s: %s\n", p.At.Format(time.StampMilli), p.Err)
			n++
		}
	}
	for _, name := range m.top.nodes {
		if v := m.vipd[name]; v != nil {
			fmt.Fprintf(&b, "--- vipd %s ---\n%s", name, v.Log())
		}
	}
	return b.String()
}

// renewStreams counts the streams that ended since from, and replaces
// them (and opens the first three) with streams that have their banner.
func (m *migLab) renewStreams(t *testing.T, from time.Time) int {
	t.Helper()
	if !m.top.banner {
		return 0
	}
	// A stream learns that the VIP moved on its next exchange (every
	// 100 ms): wait until each has one after now, an echo or its end, so
	// that a cut counts in the step that caused it.
	now := time.Now()
	err := lab.WaitFor(5*time.Second, func() error {
		for i, h := range m.streams {
			ev := h.Events()
			if len(ev) == 0 {
				return fmt.Errorf("stream %d: no events", i)
			}
			// An echo read just before the end can be recorded after it.
			_, closed := h.Has("closed")
			_, failed := h.Has("error")
			if last := ev[len(ev)-1]; !closed && !failed && !last.At.After(now) {
				return fmt.Errorf("stream %d: nothing since %s: %+v", i, now.Format(time.StampMilli), ev)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cut := 0
	var keep []*lab.Holder
	for _, h := range m.streams {
		ended := false
		for _, e := range h.Events() {
			if (e.What == "closed" || e.What == "error") && !e.At.Before(from) {
				ended = true
			}
		}
		if ended {
			cut++
			h.Stop()
			continue
		}
		keep = append(keep, h)
	}
	for len(keep) < 3 {
		h := lab.Hold(t, m.client, m.target().String(), 100*time.Millisecond)
		if err := lab.WaitFor(3*time.Second, func() error {
			if _, ok := h.Has("connected"); !ok {
				return fmt.Errorf("stream not connected: %+v", h.Events())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		keep = append(keep, h)
	}
	m.streams = keep
	return cut
}

// measure fills in every step's figures from the prober's samples and the
// address events.
func (m *migLab) measure(samples []lab.ProbeSample) {
	slices.SortFunc(samples, func(a, b lab.ProbeSample) int { return a.At.Compare(b.At) })
	for _, s := range m.steps {
		var in []lab.ProbeSample
		for _, p := range samples {
			if !p.At.Before(s.from) && !p.At.After(s.to) {
				in = append(in, p)
			}
		}
		s.gap, s.failed = lab.Gap(in)
		var adds []time.Time
		for _, e := range m.watch.Events() {
			if e.Held && !e.At.Before(s.from) && !e.At.After(s.to) {
				adds = append(adds, e.At)
			}
		}
		s.moves = len(adds)
		for _, p := range in {
			if !p.OK && splitHandshake(p, adds) {
				s.split++
			}
			if !p.OK && !slices.Contains(s.errs, p.Err) && len(s.errs) < 3 {
				s.errs = append(s.errs, p.Err)
			}
		}
		s.overlap = lab.Longest(m.watch.Spans(s.from, s.to, func(n int) bool { return n >= 2 }))
		s.unheld = lab.Longest(m.watch.Spans(s.from, s.to, func(n int) bool { return n == 0 }))
	}
}

// splitHandshake reports whether a failed connect is one whose handshake
// the VIP's move cut in two: the SYN went to the old holder, the client
// learnt the new holder's MAC from its gratuitous ARP before sending the
// final ACK, and the new holder, which never saw the SYN, answered that
// ACK with a reset ("connect: connection reset by peer") within a
// millisecond of adding the VIP (traced with nft in the client's
// namespace: the reset comes from the new holder's MAC). It is rare, the
// same for any L2 VIP without connection sync, keepalived's included; it
// is not a gap, and counts apart from one.
func splitHandshake(p lab.ProbeSample, adds []time.Time) bool {
	if !strings.HasSuffix(p.Err, "connect: connection reset by peer") {
		return false
	}
	for _, at := range adds {
		if d := at.Sub(p.At); d > -5*time.Millisecond && d < 5*time.Millisecond {
			return true
		}
	}
	return false
}

func (m *migLab) table() string {
	var b strings.Builder
	b.WriteString("| step | VIP moved by | failed connects | longest gap | two holders | no holder | streams cut (of 3) |\n|---|---|---|---|---|---|---|\n")
	for _, s := range m.steps {
		leads := s.leads
		if leads == "" {
			leads = "—"
		}
		name := s.name
		if s.note != "" {
			name += " (" + s.note + ")"
		}
		streams := "—" // no banner service to hold streams on (the API port only)
		if m.top.banner {
			streams = fmt.Sprint(s.streamsCut)
		}
		failed := fmt.Sprint(s.failed)
		if s.split > 0 {
			failed += fmt.Sprintf(" (%d a split handshake)", s.split)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", name, leads, failed, ms(s.gap), ms(s.overlap), ms(s.unheld), streams)
	}
	return b.String()
}

func ms(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d < time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

// steadyFor is an observation window: the VIP monitor, the prober and
// the status are read afterwards. There is nothing to poll for.
func steadyFor(d time.Duration) { time.Sleep(d) }
