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

// raiseThreadAmbient raises, in the calling thread's ambient set, every
// capability in both its permitted and inheritable sets (the condition
// the kernel puts on ambient capabilities). Errors are ignored: a
// capability that cannot be raised is one the successor does without.
func raiseThreadAmbient() {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return
	}
	for c := range 64 {
		d := data[c/32]
		bit := uint32(1) << (c % 32)
		if d.Permitted&bit != 0 && d.Inheritable&bit != 0 {
			unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0)
		}
	}
}
