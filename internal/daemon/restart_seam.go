package daemon

import (
	"context"
	"os"

	"github.com/vipd/vipd/internal/handoff"
)

// Successor is the old process's handle on the new one during a hitless
// restart (*handoff.Child).
type Successor interface {
	Hello() handoff.Hello
	PID() int
	Refuse(reason string) error
	Send(format uint16, body []byte, files []*os.File) error
	AwaitReady(ctx context.Context) error
	Go() error
	AwaitRunning(ctx context.Context) error
	Abort() error
	Close() error
}

// Predecessor is the new process's side of a hitless restart
// (*handoff.Parent): set Options.Handoff and Run takes over from it.
type Predecessor interface {
	Hello(h handoff.Hello) error
	Receive(ctx context.Context) (handoff.Msg, error)
	Refuse(reason string) error
	Ready() error
	AwaitGo(ctx context.Context) error
	Running() error
	AwaitExit(ctx context.Context) error
	Close() error
}

var (
	_ Successor   = (*handoff.Child)(nil)
	_ Predecessor = (*handoff.Parent)(nil)
)
