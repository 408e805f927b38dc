package health_test

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/health/healthtest"
)

// A check taken over from another process (hitless restart) carries on
// from its saved rise/fall state: an UP server stays UP with no event
// that says it changed, and a streak of failures keeps counting toward
// fall instead of starting again from Unknown.
func TestCheckerSeed(t *testing.T) {
	tests := []struct {
		name    string
		seed    health.Seed
		results []bool
		want    []string // status changed streak
	}{
		{"up stays up", health.Seed{Status: health.Up}, []bool{true, true}, []string{"UP false 0", "UP false 0"}},
		{"streak carries on", health.Seed{Status: health.Up, Streak: 2}, []bool{false}, []string{"DOWN true 0"}},
		{"down needs rise", health.Seed{Status: health.Down}, []bool{true, true}, []string{"DOWN false 1", "UP true 0"}},
		{"no seed", health.Seed{}, []bool{true}, []string{"UP true 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := healthtest.NewFakeClock(t0)
			out := make(chan health.Event)
			c := &health.Checker{
				Name: "cp1", Probe: scriptedProbe(tt.results...), Rise: 2, Fall: 3,
				Clock: clk, Rand: rand.New(rand.NewPCG(1, 1)), Seed: tt.seed,
			}
			startChecker(t, c, out)
			var got []string
			for i := range tt.results {
				if i > 0 {
					next, _ := clk.Next()
					clk.Advance(next.Sub(clk.Now()))
				}
				ev := recv(t, out)
				got = append(got, ev.Status.String()+" "+map[bool]string{true: "true", false: "false"}[ev.Changed]+" "+string(rune('0'+ev.Streak)))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
