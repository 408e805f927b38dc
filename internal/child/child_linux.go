package child

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// clearThreadAmbient clears the calling thread's ambient set. EINVAL means
// a kernel without ambient capabilities (before 4.3): nothing to clear.
func clearThreadAmbient() error {
	err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	if errors.Is(err, unix.EINVAL) {
		return nil
	}
	return err
}

// DropAmbient clears the ambient capability set of every thread of the
// process (syscall.AllThreadsSyscall), so that no exec from vipd, ours or a
// library's, passes capabilities on. vipd keeps its effective and
// permitted sets. In a cgo build (the race detector is one) it returns
// ErrNotSupported; Start still clears the forking thread.
func DropAmbient() error {
	_, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0)
	switch e {
	case 0, unix.EINVAL:
		return nil
	case syscall.ENOTSUP:
		return ErrNotSupported
	}
	return e
}
