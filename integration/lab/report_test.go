//go:build linux

package lab

import (
	"testing"
	"time"
)

func TestReplaceSection(t *testing.T) {
	doc := "# Benchmarks\n\n## Failover\n\nold\n\n## Proxy\n\nproxy\n"
	for _, tc := range []struct {
		name, heading, want string
		ok                  bool
	}{
		{"middle", "## Failover", "# Benchmarks\n\nNEW\n\n## Proxy\n\nproxy\n", true},
		{"last", "## Proxy", "# Benchmarks\n\n## Failover\n\nold\n\nNEW\n\n", true},
		{"missing", "## Reconnect storm", doc, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ReplaceSection(doc, tc.heading, "NEW\n\n")
			if got != tc.want || ok != tc.ok {
				t.Errorf("ReplaceSection(%q) = %q, %v; want %q, %v", tc.heading, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3 * ms, 1 * ms, 2 * ms}, 2 * ms},
		{[]time.Duration{4 * ms, 1 * ms, 2 * ms, 3 * ms}, 2500 * time.Microsecond},
	} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
