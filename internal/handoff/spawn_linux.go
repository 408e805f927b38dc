//go:build linux

package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// exitGrace is how long, after the child exited, the parent still reads
// what the child sent before it died (when a grandchild keeps the socket
// open, no EOF comes); and how long, after EOF, it waits for the exit
// status before it calls a live child that closed its socket ErrClosed.
const exitGrace = 200 * time.Millisecond

// Child is the parent's handle on a started child process. Its methods are
// meant for one goroutine, except Abort and Close, which may be called from
// any goroutine at any time.
type Child struct {
	spawn  Spawn
	cmd    *exec.Cmd
	sock   *sock
	hello  Hello
	exited chan struct{} // closed once the child was waited for
	state  *os.ProcessState
	step   step
	abort  sync.Once
}

// step is how far the parent got; methods out of order are ErrProtocol.
type step int

const (
	stepHello step = iota
	stepRefused
	stepSent
	stepReady
	stepGo
	stepRunning
)

// Start starts the child described by s and waits for its HELLO (within
// s.HelloTimeout and ctx). Env nil means this process's environment; any
// EnvFD in it is replaced. A HELLO whose pid is not the child's is
// ErrProtocol (MAINPID must name the process that runs). On any failure
// the child is killed and waited for before Start returns.
func Start(ctx context.Context, s Spawn) (*Child, error) {
	if s.Path == "" {
		return nil, errors.New("handoff: start: no path")
	}
	s.HelloTimeout = orDefault(s.HelloTimeout, DefaultHelloTimeout)
	s.ReadyTimeout = orDefault(s.ReadyTimeout, DefaultReadyTimeout)
	s.RunningTimeout = orDefault(s.RunningTimeout, DefaultRunningTimeout)
	deadline := time.Now().Add(s.HelloTimeout)

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("handoff: socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "handoff-parent")
	theirs := os.NewFile(uintptr(fds[1]), "handoff-child")
	sk, err := newSock(ours)
	if err != nil {
		theirs.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:       s.Path,
		Args:       s.Args,
		Env:        childEnv(s.Env),
		Stdout:     s.Stdout,
		Stderr:     s.Stderr,
		ExtraFiles: []*os.File{theirs},
		WaitDelay:  time.Second,
	}
	if len(cmd.Args) == 0 {
		cmd.Args = []string{s.Path}
	}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		sk.close()
		return nil, fmt.Errorf("handoff: start %s: %w", s.Path, err)
	}
	c := &Child{spawn: s, cmd: cmd, sock: sk, exited: make(chan struct{})}
	go c.wait()

	if err := c.awaitHello(ctx, deadline); err != nil {
		c.Abort()
		return nil, err
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// childEnv is env (nil: ours) without any EnvFD, plus EnvFD=3.
func childEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvFD+"=") {
			out = append(out, kv)
		}
	}
	return append(out, EnvFD+"=3")
}

// wait reaps the child, then gives the reader exitGrace to take what the
// child sent and ends any blocked read or write.
func (c *Child) wait() {
	c.cmd.Wait()
	c.state = c.cmd.ProcessState
	close(c.exited)
	c.sock.uc.SetDeadline(time.Now().Add(exitGrace))
}

// awaitHello waits for HELLO and checks it.
func (c *Child) awaitHello(ctx context.Context, deadline time.Time) error {
	ev, err := c.next(ctx, deadline, "HELLO")
	if err != nil {
		return err
	}
	switch ev.Kind {
	case kindHello:
	case kindRefuse:
		return c.refused(ev)
	default:
		return fmt.Errorf("%w: %v instead of HELLO", ErrProtocol, ev.Kind)
	}
	h, err := parseHello(ev.Payload)
	if err != nil {
		return err
	}
	if h.PID != c.cmd.Process.Pid {
		return fmt.Errorf("%w: HELLO from pid %d, the child is %d", ErrProtocol, h.PID, c.cmd.Process.Pid)
	}
	c.hello = h
	return nil
}

// refused turns the child's REFUSE into ErrRefused with its reason.
func (c *Child) refused(ev event) error {
	reason, err := parseReason(ev.Payload)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w by the child: %s", ErrRefused, reason)
}

// next returns the next frame, waiting at most until deadline; the end of
// the child becomes *ExitError.
func (c *Child) next(ctx context.Context, deadline time.Time, phase string) (event, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case ev, ok := <-c.sock.events:
		if ok {
			// A child sends no descriptors: the frame is refused by the
			// caller, its files closed here.
			closeFiles(ev.Files)
			ev.Files = nil
			return ev, nil
		}
		return event{}, c.ended(ctx, t.C, phase, c.sock.term)
	case <-t.C:
		return event{}, fmt.Errorf("%w: no %s within %v", ErrTimeout, phase, c.timeoutFor(phase))
	case <-ctx.Done():
		return event{}, fmt.Errorf("handoff: waiting for %s: %w", phase, context.Cause(ctx))
	}
}

// ended explains the end of the socket: the child's exit, or a live child
// that closed it.
func (c *Child) ended(ctx context.Context, timeout <-chan time.Time, phase string, err error) error {
	if !errors.Is(err, errGone) {
		return fmt.Errorf("handoff: waiting for %s: %w", phase, err)
	}
	grace := time.NewTimer(exitGrace)
	defer grace.Stop()
	select {
	case <-c.exited:
		return &ExitError{Phase: phase, State: c.state}
	case <-grace.C:
		return fmt.Errorf("%w: the child (pid %d) closed the handoff socket while we waited for %s", ErrClosed, c.PID(), phase)
	case <-timeout:
		return fmt.Errorf("%w: no %s within %v", ErrTimeout, phase, c.timeoutFor(phase))
	case <-ctx.Done():
		return fmt.Errorf("handoff: waiting for %s: %w", phase, context.Cause(ctx))
	}
}

func (c *Child) timeoutFor(phase string) time.Duration {
	switch phase {
	case "HELLO":
		return c.spawn.HelloTimeout
	case "RUNNING", "sending GO":
		return c.spawn.RunningTimeout
	}
	return c.spawn.ReadyTimeout
}

// send writes with a deadline of d from now; errors become ErrTimeout or
// *ExitError.
func (c *Child) send(phase string, d time.Duration, write func() error) error {
	c.sock.uc.SetWriteDeadline(time.Now().Add(d))
	select {
	case <-c.exited: // the watcher's deadline may just have been overwritten
		return &ExitError{Phase: phase, State: c.state}
	default:
	}
	err := write()
	if err == nil {
		return nil
	}
	if errors.Is(err, errGone) || errors.Is(err, os.ErrDeadlineExceeded) {
		grace := time.NewTimer(exitGrace)
		defer grace.Stop()
		select {
		case <-c.exited:
			return &ExitError{Phase: phase, State: c.state}
		case <-grace.C:
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %s took over %v", ErrTimeout, phase, d)
	}
	return fmt.Errorf("handoff: %s: %w", phase, err)
}

// Hello returns what the child said in its HELLO.
func (c *Child) Hello() Hello { return c.hello }

// PID returns the child's process id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Refuse tells the child that there is no common format: it waits for
// this process's end of the socket to close, then runs as a fresh daemon.
// Keep the Child until this process is about to exit: Close (or the exit)
// is the child's signal to start.
func (c *Child) Refuse(reason string) error {
	if c.step != stepHello {
		return fmt.Errorf("%w: REFUSE after the state was sent", ErrProtocol)
	}
	if err := checkText("reason", reason, MaxReason); err != nil {
		return err
	}
	c.step = stepRefused
	return c.send("sending REFUSE", c.spawn.HelloTimeout, func() error {
		return c.sock.write(kindRefuse, []byte(reason), nil)
	})
}

// Send sends the state: format (ErrVersion when the child does not read
// it), body (at most MaxBody bytes) and files (at most MaxFiles;
// duplicated for the send: the caller keeps and closes its own). It must
// finish within Spawn.ReadyTimeout and fails soon after the child exits.
func (c *Child) Send(format uint16, body []byte, files []*os.File) error {
	switch {
	case c.step != stepHello:
		return fmt.Errorf("%w: the state can be sent once, after HELLO", ErrProtocol)
	case !c.hello.Reads(format):
		return fmt.Errorf("%w: the child reads formats %v, not %d", ErrVersion, c.hello.Formats, format)
	case len(body) > MaxBody:
		return fmt.Errorf("%w: body of %d bytes, at most %d", ErrTooLarge, len(body), MaxBody)
	case len(files) > MaxFiles:
		return fmt.Errorf("%w: %d files, at most %d", ErrTooLarge, len(files), MaxFiles)
	}
	c.step = stepSent
	return c.send("sending the state", c.spawn.ReadyTimeout, func() error {
		return c.sock.writeState(format, body, files)
	})
}

// AwaitReady waits for READY, within Spawn.ReadyTimeout of the call and
// ctx. A child that declines returns ErrRefused; one that exits,
// ErrChildExited.
func (c *Child) AwaitReady(ctx context.Context) error {
	if c.step != stepSent {
		return fmt.Errorf("%w: READY awaited before the state was sent", ErrProtocol)
	}
	ev, err := c.next(ctx, time.Now().Add(c.spawn.ReadyTimeout), "READY")
	if err != nil {
		return err
	}
	switch ev.Kind {
	case kindReady:
		c.step = stepReady
		return nil
	case kindRefuse:
		return c.refused(ev)
	}
	return fmt.Errorf("%w: %v instead of READY", ErrProtocol, ev.Kind)
}

// Go tells the child to start everything.
func (c *Child) Go() error {
	if c.step != stepReady {
		return fmt.Errorf("%w: GO before READY", ErrProtocol)
	}
	c.step = stepGo
	return c.send("sending GO", c.spawn.RunningTimeout, func() error {
		return c.sock.write(kindGo, nil, nil)
	})
}

// AwaitRunning waits for RUNNING, within Spawn.RunningTimeout of the call
// and ctx.
func (c *Child) AwaitRunning(ctx context.Context) error {
	if c.step != stepGo {
		return fmt.Errorf("%w: RUNNING awaited before GO", ErrProtocol)
	}
	ev, err := c.next(ctx, time.Now().Add(c.spawn.RunningTimeout), "RUNNING")
	if err != nil {
		return err
	}
	if ev.Kind != kindRunning {
		return fmt.Errorf("%w: %v instead of RUNNING", ErrProtocol, ev.Kind)
	}
	c.step = stepRunning
	return nil
}

// Abort kills the child (SIGKILL), waits for it and closes the socket: the
// rollback. It is safe to call more than once, concurrently with the other
// methods and after the child exited.
func (c *Child) Abort() error {
	var err error
	c.abort.Do(func() {
		if kerr := c.cmd.Process.Signal(syscall.SIGKILL); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
			err = fmt.Errorf("handoff: kill pid %d: %w", c.PID(), kerr)
		}
		<-c.exited
		c.sock.close()
	})
	return err
}

// Close closes this side of the socket and leaves the child running: the
// success path, after RUNNING (or, after Refuse, just before this process
// exits).
func (c *Child) Close() error {
	if err := c.sock.close(); err != nil {
		return fmt.Errorf("handoff: close: %w", err)
	}
	return nil
}
