package handoff

import (
	"context"
	"errors"
	"os"
)

// Child is the parent's handle on a started child process. Its methods are
// meant for one goroutine, except Abort and Close, which may be called from
// any goroutine at any time.
type Child struct{}

// Start starts the child described by s and waits for its HELLO (within
// s.HelloTimeout and ctx). On any failure the child is killed and waited
// for before Start returns.
func Start(ctx context.Context, s Spawn) (*Child, error) { return nil, errors.ErrUnsupported }

// Hello returns what the child said in its HELLO.
func (c *Child) Hello() Hello { return Hello{} }

// PID returns the child's process id.
func (c *Child) PID() int { return 0 }

// Refuse tells the child that there is no common format: it is to wait for
// this process to exit and then run as a fresh daemon.
func (c *Child) Refuse(reason string) error { return errors.ErrUnsupported }

// Send sends the state: format (ErrVersion when the child does not read
// it), body (at most MaxBody bytes) and files (at most MaxFiles; dup'ed for
// the send, the caller keeps and closes its own). It must finish within
// the ready deadline and fails at once when the child exits.
func (c *Child) Send(format uint16, body []byte, files []*os.File) error {
	return errors.ErrUnsupported
}

// AwaitReady waits for READY, within Spawn.ReadyTimeout and ctx. A child
// that declines returns ErrRefused; one that exits, ErrChildExited.
func (c *Child) AwaitReady(ctx context.Context) error { return errors.ErrUnsupported }

// Go tells the child to start everything.
func (c *Child) Go() error { return errors.ErrUnsupported }

// AwaitRunning waits for RUNNING, within Spawn.RunningTimeout and ctx.
func (c *Child) AwaitRunning(ctx context.Context) error { return errors.ErrUnsupported }

// Abort kills the child (SIGKILL) and waits for it, then closes the
// socket: the rollback. It is safe to call more than once and after the
// child exited.
func (c *Child) Abort() error { return errors.ErrUnsupported }

// Close closes this side of the socket and leaves the child running: the
// success path, after RUNNING (or after Refuse, so that the child sees EOF
// when this process exits).
func (c *Child) Close() error { return errors.ErrUnsupported }

// Parent is a child's handle on its end of the handoff socket.
type Parent struct{}

// FromEnv returns the handoff socket named by EnvFD, or nil, nil when the
// variable is unset (a normal start). It unsets the variable and marks the
// descriptor close-on-exec.
func FromEnv() (*Parent, error) { return nil, nil }

// Hello says HELLO; the first thing a child sends.
func (p *Parent) Hello(h Hello) error { return errors.ErrUnsupported }

// Receive waits for the parent's answer to HELLO: a refusal or the state.
func (p *Parent) Receive(ctx context.Context) (Msg, error) { return Msg{}, errors.ErrUnsupported }

// Refuse declines the handoff (e.g. the configuration on disk is invalid):
// the parent's AwaitReady returns ErrRefused with reason. The child should
// then exit.
func (p *Parent) Refuse(reason string) error { return errors.ErrUnsupported }

// Ready says READY: the state is adopted.
func (p *Parent) Ready() error { return errors.ErrUnsupported }

// AwaitGo waits for GO.
func (p *Parent) AwaitGo(ctx context.Context) error { return errors.ErrUnsupported }

// Running says RUNNING: everything is started.
func (p *Parent) Running() error { return errors.ErrUnsupported }

// AwaitExit waits until the parent's end of the socket closes (the parent
// exited or called Close): after a refusal, before running as a fresh
// daemon.
func (p *Parent) AwaitExit(ctx context.Context) error { return errors.ErrUnsupported }

// Close closes the child's end of the socket.
func (p *Parent) Close() error { return errors.ErrUnsupported }
