//go:build linux

package proxy

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Running out of file descriptors (RLIMIT_NOFILE, or the system's file
// table) must not drop clients: a connection the proxy cannot serve yet
// waits, as it does at maxconn.
//
//   - Each loop holds a spare fd (a dup of its eventfd) while it accepts.
//     When socket() for the server side fails with EMFILE or ENFILE the
//     spare is closed to make room, so a client accepted with the spare
//     held always gets its server socket (barring a race with another
//     thread).
//   - Before each accept a loop without its spare takes it back; when it
//     cannot, the process is out of fds: the loop stops accepting (clients
//     wait in the kernel backlog) and retries with the accept backoff, 5ms
//     doubling to 1s, or at once when one of its connections closes.
//   - A client whose server socket still cannot be had (another thread took
//     the freed fd) is parked with its server not tried, and retried on the
//     same schedule, before the loop accepts again. Nothing is closed for
//     lack of fds; a pipe that cannot be had falls back to copying.
//
// The warnings are rate-limited: the first, then at most one per 10s with
// the count of those left out.

// warnEvery is the rate of a rateWarn's log lines.
const warnEvery = 10 * time.Second

// rateWarn lets a warning through the first time, then at most once per
// warnEvery, counting the ones it held back.
type rateWarn struct {
	mu     sync.Mutex
	logged bool
	last   int64 // ns since Proxy.epoch
	held   int
}

// allow reports whether to log now and, if so, how many occurrences were
// held back since the last line.
func (w *rateWarn) allow(now int64) (ok bool, held int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.logged && now-w.last < int64(warnEvery) {
		w.held++
		return false, 0
	}
	w.logged, w.last = true, now
	held, w.held = w.held, 0
	return true, held
}

// outOfFds reports whether err from socket, accept4, pipe2 or dup means the
// process or the system ran out of file descriptors or socket memory: a
// reason to wait, not to drop a client.
func outOfFds(err error) bool {
	switch err {
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
		return true
	}
	return false
}

// dupSpare returns a new fd that holds a slot for later, or -1.
func dupSpare(efd int) (int, error) {
	return unix.FcntlInt(uintptr(efd), unix.F_DUPFD_CLOEXEC, 0)
}

// reserve takes the loop's spare fd back. When it cannot, the loop is out of
// fds: it stops accepting until fdRetry succeeds.
func (l *loop) reserve() bool {
	fd, err := dupSpare(l.efd)
	if err != nil {
		l.starve(err, "out of file descriptors: accepting paused, new clients wait in the backlog")
		return false
	}
	l.spare = fd
	return true
}

// serverSocket opens a non-blocking socket for a server connection. Out of
// fds, it closes the loop's spare to make room and tries once more.
func (l *loop) serverSocket(family int) (int, error) {
	for {
		fd, err := sysSocket(family)
		if err == nil || l.spare < 0 || (err != unix.EMFILE && err != unix.ENFILE) {
			return fd, err
		}
		sysClose(l.spare)
		l.spare = -1
	}
}

// park makes c wait for a server socket: it is retried by fdRetry, before
// the loop accepts again.
func (l *loop) park(c *conn, err error) {
	c.flags |= fParked
	l.parked = append(l.parked, c)
	l.starve(err, "socket for server connection: out of file descriptors, the client waits")
}

// starve records that the loop is short of fds: it stops accepting and
// schedules fdRetry with the backoff. The warning is rate-limited.
func (l *loop) starve(err error, msg string) {
	if l.fdRetryAt == 0 {
		if l.fdBo.d == 0 {
			l.p.fdShort.Add(1)
		}
		l.fdRetryAt = l.now + int64(l.fdBo.next())
	}
	if ok, held := l.p.fdWarn.allow(l.now); ok {
		l.p.log.Warn().Err(err).Int("loop", l.index).Int("parked", len(l.parked)).Int("repeated", held).
			Dur("retry", l.fdBo.d).Msg(msg)
	}
}

// fdRetry serves parked clients, then takes the spare back and resumes
// accepting. Still short, it schedules the next try, backing off.
func (l *loop) fdRetry() {
	l.fdRetryAt = 0
	parked := l.parked
	l.parked = nil
	for i, c := range parked {
		if c.flags&fClosed != 0 {
			continue
		}
		c.flags &^= fParked
		c.connect(l) // parks c again if still short
		if l.fdRetryAt != 0 {
			l.parked = append(l.parked, parked[i+1:]...)
			return
		}
	}
	if l.spare < 0 && !l.reserve() {
		return
	}
	l.fdBo.reset()
	l.p.fdShort.Add(-1)
	l.lnWork = true // listeners left ready resume
	l.p.log.Debug().Int("loop", l.index).Msg("file descriptors available again: accepting resumed")
}
