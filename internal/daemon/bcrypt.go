package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/child"
)

// A login's bcrypt comparison runs in a child process: vipd itself,
// started with BcryptHelperArg, which first lowers every thread of its own
// to nice 19. It costs tens of milliseconds of CPU, and at nice 19 it
// takes only CPU that the proxy, VRRP and the checks leave idle.
//
// It ran on a thread of vipd's own at nice 19 before. That thread held
// one of the Go scheduler's Ps for the whole comparison, and on a busy
// host the kernel left it descheduled for long stretches. A
// stop-the-world GC must stop every P, so it waited for that thread:
// with the CPUs busy, GC pauses of up to 300 ms stopped the proxy and the
// VRRP adverts with it. No thread of vipd changes its priority now, not
// even to start the helper (a thread at nice 19 holds its P through the
// fork as well); vipd waits for the helper in a system call.

// BcryptHelperArg is the argument vipd is started with to compare one
// password against one hash for a running daemon. It is not an operator
// command: main dispatches it before the command line is read.
const BcryptHelperArg = "__bcrypt-compare"

// The helper's verdict is one of these lines on stdout, with exit code 0.
// Exit code 0 alone is no verdict: a program that is not the helper
// (/bin/true, a binary without the dispatch in main) must not pass a
// login.
const (
	verdictMatch    = "vipd-bcrypt: match\n"
	verdictMismatch = "vipd-bcrypt: mismatch\n"
)

// bcryptBadInput is the helper's exit code for input it refuses.
const bcryptBadInput = 2

// bcryptHashLen is the length of every hash vipd accepts ($2a$, $2b$,
// $2y$; internal/config checks it).
const bcryptHashLen = 60

// maxPassword bounds the password a login may send; a longer one is a
// wrong one. bcrypt reads no more than the first 72 bytes.
const maxPassword = 1024

// helperNice is the helper's nice value: the lowest priority.
const helperNice = 19

// BcryptHelper is the helper's main: it lowers its priority, reads a hash
// and then a password from stdin, compares them and writes its verdict
// to stdout. If its priority cannot be lowered it says so on stderr, which
// vipd logs, and compares all the same: it still shares nothing with
// vipd's scheduler. It ignores the signals an operator sends vipd with
// `systemctl kill`, which reach every process of the unit: SIGHUP
// (reload), SIGUSR2 (hitless restart), SIGUSR1.
func BcryptHelper(stdin io.Reader, stdout, stderr io.Writer) int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	if err := lowerPriority(helperNice); err != nil {
		fmt.Fprintf(stderr, "vipd %s: %v\n", BcryptHelperArg, err)
	}
	return bcryptVerdict(stdin, stdout, stderr)
}

// bcryptVerdict is the helper's work after lowering its priority.
func bcryptVerdict(stdin io.Reader, stdout, stderr io.Writer) int {
	in, err := io.ReadAll(io.LimitReader(stdin, bcryptHashLen+maxPassword+1))
	if err != nil || len(in) < bcryptHashLen || len(in) > bcryptHashLen+maxPassword {
		fmt.Fprintf(stderr, "vipd %s: want a %d-byte bcrypt hash and a password of at most %d bytes on stdin (%d bytes, %v)\n",
			BcryptHelperArg, bcryptHashLen, maxPassword, len(in), err)
		return bcryptBadInput
	}
	switch err := bcrypt.CompareHashAndPassword(in[:bcryptHashLen], in[bcryptHashLen:]); {
	case err == nil:
		io.WriteString(stdout, verdictMatch)
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		io.WriteString(stdout, verdictMismatch)
	default:
		fmt.Fprintf(stderr, "vipd %s: %v\n", BcryptHelperArg, err)
		return bcryptBadInput
	}
	return 0
}

// errBcryptTimeout: the helper gave no verdict within its time (a host
// too busy to spare it the CPU); the login is answered "try again".
var errBcryptTimeout = errors.New("the password check took too long")

// bcryptChild compares passwords in helper processes.
type bcryptChild struct {
	// argv starts the helper: this binary (/proc/self/exe names it even
	// after a package upgrade replaced the file) and BcryptHelperArg.
	argv    []string
	timeout time.Duration
	log     zerolog.Logger
	// warned is set once a helper failed and a comparison ran in vipd;
	// complained once a helper gave its verdict but wrote to stderr.
	warned, complained atomic.Bool
}

func newBcryptChild(log zerolog.Logger) *bcryptChild {
	return &bcryptChild{argv: []string{"/proc/self/exe", BcryptHelperArg}, timeout: 10 * time.Second, log: log}
}

// compare is bcrypt.CompareHashAndPassword run in a helper. A helper that
// cannot start or gives no verdict (not a mismatch) is logged once, and
// the comparison then runs in vipd at its normal priority: a login must
// keep working, and the bcrypt slots still bound its cost. A helper that
// runs past timeout is killed and errBcryptTimeout returned.
func (b *bcryptChild) compare(hash, password []byte) error {
	if len(password) > maxPassword {
		return bcrypt.ErrMismatchedHashAndPassword // and costs no bcrypt
	}
	if len(hash) != bcryptHashLen {
		return bcrypt.CompareHashAndPassword(hash, password) // its error: config refuses such hashes
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	cmd := child.Command(ctx, b.argv)
	in := make([]byte, 0, len(hash)+len(password))
	cmd.Stdin = bytes.NewReader(append(append(in, hash...), password...))
	var stdout, stderr child.Tail
	stdout.Max, stderr.Max = 64, 512
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = []string{}
	cmd.Dir = "/"
	err := child.Start(cmd) // from a thread without ambient capabilities
	if err == nil {
		err = cmd.Wait()
	}
	if err == nil {
		var verdict error = errNoVerdict
		switch string(stdout.Bytes()) {
		case verdictMatch:
			verdict = nil
		case verdictMismatch:
			verdict = bcrypt.ErrMismatchedHashAndPassword
		}
		if verdict != errNoVerdict {
			if stderr.Written() > 0 && !b.complained.Swap(true) {
				b.log.Warn().Str("output", stderr.Lines()).
					Msg("a login's password-check helper gave its verdict but complained (logged once)")
			}
			return verdict
		}
		err = errNoVerdict
	}
	if ctx.Err() != nil {
		return errBcryptTimeout
	}
	if !b.warned.Swap(true) {
		b.log.Warn().Err(err).Str("output", stderr.Lines()).Strs("helper", b.argv).
			Msg("a login's password check could not run in its low-priority helper process, so it ran in vipd at full priority (logged once; each failing helper falls back the same way)")
	}
	return bcrypt.CompareHashAndPassword(hash, password)
}

// errNoVerdict: the helper exited 0 without a verdict line.
var errNoVerdict = errors.New("the helper exited without a verdict")

// lowerPriority sets every thread of this process to nice and to the
// SCHED_IDLE policy: a thread of any other policy that wakes up preempts
// it at once, where a nice-19 thread may still finish its slice first
// (with 16 sources keeping the bcrypt slot busy, the storm's proxied
// connect p99 was 1.23-1.69x its baseline's at nice 19 alone). Linux keeps
// a nice value and a policy per thread, and the Go runtime has started threads before
// main, so it goes through /proc/self/task until a pass finds no thread it
// had not set: a thread started meanwhile copies the nice value of the
// thread that started it, which may not have been set yet.
func lowerPriority(nice int) error {
	var done []int
	for range 10 {
		paths, err := filepath.Glob("/proc/self/task/*")
		if err != nil || len(paths) == 0 {
			return fmt.Errorf("listing this process's threads: %v", err)
		}
		var tids []int
		for _, p := range paths {
			if tid, err := strconv.Atoi(filepath.Base(p)); err == nil {
				tids = append(tids, tid)
			}
		}
		slices.Sort(tids)
		if slices.Equal(tids, done) {
			return nil
		}
		for _, tid := range tids {
			err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
			if err == nil {
				err = unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE, Nice: int32(nice)}, 0)
			}
			if err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: the thread has ended
				return fmt.Errorf("setting thread %d to SCHED_IDLE at nice %d: %w", tid, nice, err)
			}
		}
		done = tids
	}
	return fmt.Errorf("threads kept appearing while setting them to nice %d", nice)
}
