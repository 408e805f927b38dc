package vrrp

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Trackers adjust priority with keepalived semantics: a positive weight adds
// when healthy, a negative weight subtracts when failing, weight 0 puts the
// instance in FAULT; result clamped to 1..254; the owner (255) is never
// adjusted.
// Reference: DESIGN.md section 3
func TestTrackEffectivePriority(t *testing.T) {
	type result struct {
		Prio   uint8
		Fault  bool
		Reason string
	}
	tests := []struct {
		name     string
		base     uint8
		trackers []TrackerState
		want     result
	}{
		{"no trackers", 150, nil, result{150, false, "base 150"}},
		{"negative weight failing", 150,
			[]TrackerState{{Name: "apiserver", Weight: -60, Healthy: false}},
			result{90, false, "base 150, apiserver -60 (failing)"}},
		{"negative weight healthy", 150,
			[]TrackerState{{Name: "apiserver", Weight: -60, Healthy: true}},
			result{150, false, "base 150"}},
		{"positive weight healthy", 100,
			[]TrackerState{{Name: "eth0", Weight: 20, Healthy: true}},
			result{120, false, "base 100, eth0 +20 (healthy)"}},
		{"positive weight failing", 100,
			[]TrackerState{{Name: "eth0", Weight: 20, Healthy: false}},
			result{100, false, "base 100"}},
		{"weight 0 failing", 100,
			[]TrackerState{{Name: "link", Weight: 0, Healthy: false}, {Name: "api", Weight: -10, Healthy: false}},
			result{90, true, "base 100, link fault (failing), api -10 (failing)"}},
		{"weight 0 healthy", 100,
			[]TrackerState{{Name: "link", Weight: 0, Healthy: true}},
			result{100, false, "base 100"}},
		{"clamped low", 50,
			[]TrackerState{{Name: "a", Weight: -30}, {Name: "b", Weight: -30}},
			result{1, false, "base 50, a -30 (failing), b -30 (failing), clamped to 1"}},
		{"clamped high", 240,
			[]TrackerState{{Name: "a", Weight: 20, Healthy: true}},
			result{254, false, "base 240, a +20 (healthy), clamped to 254"}},
		{"owner not adjusted", 255,
			[]TrackerState{{Name: "a", Weight: -60}},
			result{255, false, "base 255, owner: weights ignored"}},
		{"owner can fault", 255,
			[]TrackerState{{Name: "link", Weight: 0}},
			result{255, true, "base 255, link fault (failing)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got result
			got.Prio, got.Fault, got.Reason = EffectivePriority(tt.base, tt.trackers)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("EffectivePriority (-want +got):\n%s", diff)
			}
		})
	}
}
