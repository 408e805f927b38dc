package health_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/health"
)

func TestCounter(t *testing.T) {
	type step struct {
		Status  string
		Changed bool
	}
	// Results are written as a string: '+' success, '-' failure.
	tests := []struct {
		name       string
		rise, fall int
		results    string
		want       []step
	}{
		{
			name: "unknown then success is up at once",
			rise: 2, fall: 3, results: "+",
			want: []step{{"UP", true}},
		},
		{
			name: "unknown then failure is down at once",
			rise: 2, fall: 3, results: "-",
			want: []step{{"DOWN", true}},
		},
		{
			name: "up goes down after fall failures",
			rise: 2, fall: 3, results: "+---",
			want: []step{{"UP", true}, {"UP", false}, {"UP", false}, {"DOWN", true}},
		},
		{
			name: "down goes up after rise successes",
			rise: 2, fall: 3, results: "-++",
			want: []step{{"DOWN", true}, {"DOWN", false}, {"UP", true}},
		},
		{
			name: "flapping while up never reaches fall",
			rise: 2, fall: 3, results: "+--+--+--",
			want: []step{
				{"UP", true},
				{"UP", false}, {"UP", false}, {"UP", false},
				{"UP", false}, {"UP", false}, {"UP", false},
				{"UP", false}, {"UP", false},
			},
		},
		{
			name: "flapping while down never reaches rise",
			rise: 3, fall: 2, results: "-++-++-",
			want: []step{
				{"DOWN", true},
				{"DOWN", false}, {"DOWN", false}, {"DOWN", false},
				{"DOWN", false}, {"DOWN", false}, {"DOWN", false},
			},
		},
		{
			name: "full cycle up down up",
			rise: 2, fall: 2, results: "+--++",
			want: []step{{"UP", true}, {"UP", false}, {"DOWN", true}, {"DOWN", false}, {"UP", true}},
		},
		{
			name: "rise and fall of one follow every result",
			rise: 1, fall: 1, results: "+-+-",
			want: []step{{"UP", true}, {"DOWN", true}, {"UP", true}, {"DOWN", true}},
		},
		{
			name: "zero rise and fall count as one",
			rise: 0, fall: 0, results: "-+-",
			want: []step{{"DOWN", true}, {"UP", true}, {"DOWN", true}},
		},
		{
			name: "streak resets after a change",
			rise: 2, fall: 2, results: "+---+",
			want: []step{{"UP", true}, {"UP", false}, {"DOWN", true}, {"DOWN", false}, {"DOWN", false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := health.Counter{Rise: tt.rise, Fall: tt.fall}
			if got := c.Status(); got != health.Unknown {
				t.Fatalf("initial Status() = %v, want UNKNOWN", got)
			}
			var got []step
			for _, r := range tt.results {
				s, changed := c.Observe(r == '+')
				if s != c.Status() {
					t.Fatalf("Observe returned %v but Status() = %v", s, c.Status())
				}
				got = append(got, step{s.String(), changed})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("results %q (-want +got):\n%s", tt.results, diff)
			}
		})
	}
}

func TestCounterStreak(t *testing.T) {
	c := health.Counter{Rise: 2, Fall: 3}
	var got []string
	for _, ok := range []bool{true, false, false, true, false} {
		s, _ := c.Observe(ok)
		got = append(got, fmt.Sprintf("%v %d", s, c.Streak()))
	}
	want := []string{"UP 0", "UP 1", "UP 2", "UP 0", "UP 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("streaks (-want +got):\n%s", diff)
	}
}

func TestStatusString(t *testing.T) {
	got := []string{health.Unknown.String(), health.Up.String(), health.Down.String(), health.Status(9).String()}
	b, err := json.Marshal(map[string]health.Status{"cp1": health.Up})
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, string(b))
	want := []string{"UNKNOWN", "UP", "DOWN", "Status(9)", `{"cp1":"UP"}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String() (-want +got):\n%s", diff)
	}
}
