package daemon

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// atLowPriority runs f on an OS thread of its own at nice 19, so that a
// bcrypt comparison (tens of ms of CPU) takes only CPU that the proxy,
// VRRP and the checks leave idle. The thread is never unlocked: it ends
// with the goroutine, and no other goroutine runs at its priority.
func atLowPriority(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19) // this thread only (Linux)
		done <- f()
	}()
	return <-done
}
