package healthtest_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/health/healthtest"
)

func TestFakeClock(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := healthtest.NewFakeClock(start)
	t1 := c.NewTimer(time.Second)
	t2 := c.NewTimer(3 * time.Second)
	t3 := c.NewTimer(2 * time.Second)
	if next, ok := c.Next(); !ok || !next.Equal(start.Add(time.Second)) {
		t.Errorf("Next() = %v, %v; want start+1s", next, ok)
	}
	if !t3.Stop() {
		t.Fatal("Stop of a pending timer = false")
	}
	if t3.Stop() {
		t.Fatal("second Stop = true")
	}
	fired := func() []string {
		var got []string
		for name, tm := range map[string]interface{ C() <-chan time.Time }{"t1": t1, "t2": t2, "t3": t3} {
			select {
			case at := <-tm.C():
				got = append(got, name+"@"+at.Sub(start).String())
			default:
			}
		}
		return got
	}
	c.Advance(999 * time.Millisecond)
	if diff := cmp.Diff([]string(nil), fired()); diff != "" {
		t.Errorf("before 1s (-want +got):\n%s", diff)
	}
	c.Advance(time.Millisecond)
	if diff := cmp.Diff([]string{"t1@1s"}, fired()); diff != "" {
		t.Errorf("at 1s (-want +got):\n%s", diff)
	}
	c.Advance(5 * time.Second)
	if diff := cmp.Diff([]string{"t2@6s"}, fired()); diff != "" {
		t.Errorf("at 6s (-want +got):\n%s", diff)
	}
	if got := c.Timers(); got != 0 {
		t.Errorf("Timers() = %d, want 0", got)
	}
	if _, ok := c.Next(); ok {
		t.Error("Next() with no timers reports one")
	}
	if !c.WaitTimers(0, time.Second) {
		t.Error("WaitTimers(0) = false")
	}
	if c.WaitTimers(1, 10*time.Millisecond) {
		t.Error("WaitTimers(1) with no timers = true")
	}
	now := c.NewTimer(0)
	select {
	case <-now.C():
	default:
		t.Error("NewTimer(0) did not fire at once")
	}
}
