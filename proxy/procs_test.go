//go:build linux

package proxy

import (
	"runtime"
	"testing"
)

// TestRunKeepsAPIdle: while a proxy runs GOMAXPROCS is its loops plus one,
// so sysmon leaves the loops' Ps alone while they wait in epoll_wait
// (procs.go); a proxy made meanwhile derives its loops from the value
// before the raise; the last proxy to stop restores it.
func TestRunKeepsAPIdle(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	cfg := oneBackend("", newTestServer(t, "a", nil).config())

	run := func() (*Proxy, func()) {
		p, cancel, done := runProxy(t, cfg)
		return p, func() { cancel(); <-done }
	}
	p1, stop1 := run()
	waitFor(t, "GOMAXPROCS raised", func() bool { return runtime.GOMAXPROCS(0) == 3 })
	p2, stop2 := run()
	waitFor(t, "both proxies running", func() bool {
		procs.mu.Lock()
		defer procs.mu.Unlock()
		return procs.users == 2
	})
	if len(p1.loops) != 2 || len(p2.loops) != 2 {
		t.Fatalf("loops %d and %d, want 2 each (GOMAXPROCS 2 before the raise)", len(p1.loops), len(p2.loops))
	}
	stop1()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS %d while the second proxy runs, want 3", got)
	}
	stop2()
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("GOMAXPROCS %d after the last proxy stopped, want 2", got)
	}
}
