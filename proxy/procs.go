//go:build linux

package proxy

import (
	"runtime"
	"sync"
)

// The loops block in epoll_wait through the scheduler's syscall state,
// each keeping its P. With GOMAXPROCS equal to the number of loops no P is
// idle, and then sysmon takes the P of a loop that has waited longer than
// its tick (20 µs), hands it off (often waking a thread that spins and
// sleeps again) and keeps its own tick at 20 µs: under a stream of new
// connections, tens of thousands of sysmon wake-ups a second and about a
// tenth of the proxy's CPU. While a P is idle, sysmon leaves a P in a
// system call alone for 10 ms and backs off to a 10 ms tick. So while a
// proxy runs, GOMAXPROCS is at least its number of loops plus one; the
// extra P runs the daemon's other goroutines when a loop is busy.
//
// GOMAXPROCS is process-wide, so the raise is counted over every running
// proxy (tests run several) and undone when the last one stops. A change
// of GOMAXPROCS made meanwhile by someone else is overwritten then.

var procs struct {
	mu     sync.Mutex
	users  int
	base   int // GOMAXPROCS before the first running proxy raised it
	raised bool
}

// procsBase is the GOMAXPROCS the number of loops is derived from: the
// value before running proxies raised it.
func procsBase() int {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if procs.users > 0 {
		return procs.base
	}
	return runtime.GOMAXPROCS(0)
}

// holdProcs makes GOMAXPROCS at least loops+1 until release is called.
func holdProcs(loops int) (release func()) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if procs.users == 0 {
		procs.base, procs.raised = runtime.GOMAXPROCS(0), false
	}
	procs.users++
	if runtime.GOMAXPROCS(0) < loops+1 {
		runtime.GOMAXPROCS(loops + 1)
		procs.raised = true
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			procs.mu.Lock()
			defer procs.mu.Unlock()
			if procs.users--; procs.users == 0 && procs.raised {
				runtime.GOMAXPROCS(procs.base)
			}
		})
	}
}
