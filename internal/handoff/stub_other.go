//go:build !linux

package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// errOS is what every call returns off Linux.
var errOS = fmt.Errorf("handoff: only on Linux: %w", errors.ErrUnsupported)

// Child is the parent's handle on a started child process (Linux only).
type Child struct{}

// Start returns errors.ErrUnsupported off Linux.
func Start(ctx context.Context, s Spawn) (*Child, error) { return nil, errOS }

// Hello returns the zero Hello off Linux.
func (c *Child) Hello() Hello { return Hello{} }

// PID returns 0 off Linux.
func (c *Child) PID() int { return 0 }

// Refuse returns errors.ErrUnsupported off Linux.
func (c *Child) Refuse(reason string) error { return errOS }

// Send returns errors.ErrUnsupported off Linux.
func (c *Child) Send(format uint16, body []byte, files []*os.File) error { return errOS }

// AwaitReady returns errors.ErrUnsupported off Linux.
func (c *Child) AwaitReady(ctx context.Context) error { return errOS }

// Go returns errors.ErrUnsupported off Linux.
func (c *Child) Go() error { return errOS }

// AwaitRunning returns errors.ErrUnsupported off Linux.
func (c *Child) AwaitRunning(ctx context.Context) error { return errOS }

// Abort returns errors.ErrUnsupported off Linux.
func (c *Child) Abort() error { return errOS }

// Close returns errors.ErrUnsupported off Linux.
func (c *Child) Close() error { return errOS }

// Parent is a child's handle on its end of the handoff socket (Linux only).
type Parent struct{}

// FromEnv returns nil, nil when EnvFD is unset and errors.ErrUnsupported
// otherwise, off Linux.
func FromEnv() (*Parent, error) {
	if _, ok := os.LookupEnv(EnvFD); !ok {
		return nil, nil
	}
	os.Unsetenv(EnvFD)
	return nil, errOS
}

// Hello returns errors.ErrUnsupported off Linux.
func (p *Parent) Hello(h Hello) error { return errOS }

// Receive returns errors.ErrUnsupported off Linux.
func (p *Parent) Receive(ctx context.Context) (Msg, error) { return Msg{}, errOS }

// Refuse returns errors.ErrUnsupported off Linux.
func (p *Parent) Refuse(reason string) error { return errOS }

// Ready returns errors.ErrUnsupported off Linux.
func (p *Parent) Ready() error { return errOS }

// AwaitGo returns errors.ErrUnsupported off Linux.
func (p *Parent) AwaitGo(ctx context.Context) error { return errOS }

// Running returns errors.ErrUnsupported off Linux.
func (p *Parent) Running() error { return errOS }

// AwaitExit returns errors.ErrUnsupported off Linux.
func (p *Parent) AwaitExit(ctx context.Context) error { return errOS }

// Close returns errors.ErrUnsupported off Linux.
func (p *Parent) Close() error { return errOS }
