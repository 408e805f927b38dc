//go:build linux

package proxy

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// System calls of the connection path, made with RawSyscall.
//
// Every descriptor a loop touches is non-blocking, so none of these calls
// sleeps: they only spend CPU in the kernel (a connect or close on
// loopback runs the peer's TCP receive path too, tens of µs). Through
// syscall.Syscall each call would enter and leave the scheduler's syscall
// state, and one that lasts past a sysmon tick (20 µs) has its P taken
// away and handed off, so the loop must get a P back when it returns: a
// lock, often a futex wake-up and a context switch. RawSyscall keeps the P
// for the few µs of the call. Only epoll_wait, which does sleep, goes
// through the scheduler (loop.wait).

func rawErr(e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

func sysRead(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), rawErr(e)
}

func sysWrite(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), rawErr(e)
}

// sysClose closes fd. No socket of ours sets SO_LINGER, so a close never
// waits for unsent data.
func sysClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func sysShutdown(fd, how int) {
	unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
}

// sysSplice moves up to n bytes from in to out (one of them a pipe)
// without blocking.
func sysSplice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	return int(r), rawErr(e)
}

func sysSetsockoptInt(fd, level, opt, v int) error {
	x := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&x)), 4, 0)
	return rawErr(e)
}

func sysEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return rawErr(e)
}

// sysSocket opens a non-blocking, close-on-exec TCP socket.
func sysSocket(family int) (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}
