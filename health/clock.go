package health

import "time"

// Clock is the source of time for a [Checker]. Production code uses
// [SystemClock]; tests use healthtest.FakeClock, which only moves when told
// to, so schedules and timeouts are checked without waiting real seconds.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that delivers the then-current time on its
	// channel once d has elapsed.
	NewTimer(d time.Duration) Timer
}

// Timer is the subset of *time.Timer that the scheduler needs.
type Timer interface {
	// C returns the channel the expiry time is delivered on (buffered, one
	// value).
	C() <-chan time.Time
	// Stop prevents the timer from firing. It reports whether the call
	// stopped the timer (false if it had already fired or been stopped).
	Stop() bool
}

// SystemClock is the real [Clock], backed by package time. Its zero value is
// ready to use.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a [Timer] backed by time.NewTimer.
func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }
