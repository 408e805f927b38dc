//go:build linux

package handoff

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// writeTimeout bounds each frame a child sends; they are small, so only a
// parent that stopped reading makes one wait.
const writeTimeout = 10 * time.Second

// Parent is a child's handle on its end of the handoff socket. Its methods
// are meant for one goroutine, except Close.
type Parent struct {
	sock *sock
}

// FromEnv returns the handoff socket named by EnvFD, or nil, nil when the
// variable is unset (a normal start). It unsets the variable and marks the
// descriptor close-on-exec, so that nothing this process starts inherits
// either.
func FromEnv() (*Parent, error) {
	v, ok := os.LookupEnv(EnvFD)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("handoff: %s=%q: want a descriptor number of 3 or more", EnvFD, v)
	}
	unix.CloseOnExec(fd)
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("handoff: %s=%d: not a socket: %w", EnvFD, fd, err)
	}
	if typ != unix.SOCK_SEQPACKET {
		return nil, fmt.Errorf("%w: %s=%d: socket type %d, want SOCK_SEQPACKET", ErrProtocol, EnvFD, fd, typ)
	}
	s, err := newSock(os.NewFile(uintptr(fd), "handoff"))
	if err != nil {
		return nil, err
	}
	return &Parent{sock: s}, nil
}

// Hello says HELLO, the first thing a child sends. A zero PID is this
// process's, nil Formats are Supported().
func (p *Parent) Hello(h Hello) error {
	if h.PID == 0 {
		h.PID = os.Getpid()
	}
	if h.Formats == nil {
		h.Formats = Supported()
	}
	b, err := appendHello(nil, h)
	if err != nil {
		return err
	}
	return p.send(kindHello, b)
}

// Receive waits for the parent's answer to HELLO: a refusal (Msg.Refused)
// or the state. The parent's end closing is ErrClosed.
func (p *Parent) Receive(ctx context.Context) (Msg, error) {
	ev, err := p.next(ctx)
	if err != nil {
		return Msg{}, err
	}
	if ev.Kind == kindRefuse {
		reason, err := parseReason(ev.Payload)
		if err != nil {
			return Msg{}, err
		}
		return Msg{Refused: true, Reason: reason}, nil
	}
	var a assembler
	var files []*os.File
	for {
		done, err := a.add(ev.frame)
		if err != nil {
			closeFiles(ev.Files)
			closeFiles(files)
			return Msg{}, err
		}
		files = append(files, ev.Files...)
		if done {
			return Msg{Format: a.begin.Format, Body: a.body, Files: files}, nil
		}
		if ev, err = p.next(ctx); err != nil {
			closeFiles(files)
			return Msg{}, err
		}
	}
}

// Refuse declines the handoff (e.g. the configuration on disk is invalid):
// the parent's AwaitReady (or Start, before HELLO) returns ErrRefused with
// reason. The child should then exit.
func (p *Parent) Refuse(reason string) error {
	if err := checkText("reason", reason, MaxReason); err != nil {
		return err
	}
	return p.send(kindRefuse, []byte(reason))
}

// Ready says READY: the state is adopted.
func (p *Parent) Ready() error { return p.send(kindReady, nil) }

// AwaitGo waits for GO. ErrClosed means the parent rolled back (or died):
// the child should exit.
func (p *Parent) AwaitGo(ctx context.Context) error {
	ev, err := p.next(ctx)
	if err != nil {
		return err
	}
	if ev.Kind != kindGo {
		closeFiles(ev.Files)
		return fmt.Errorf("%w: %v instead of GO", ErrProtocol, ev.Kind)
	}
	return nil
}

// Running says RUNNING: everything is started.
func (p *Parent) Running() error { return p.send(kindRunning, nil) }

// AwaitExit waits until the parent's end of the socket closes (the parent
// exited or called Close): after a refusal, before running as a fresh
// daemon. A frame instead is ErrProtocol.
func (p *Parent) AwaitExit(ctx context.Context) error {
	select {
	case ev, ok := <-p.sock.events:
		if ok {
			closeFiles(ev.Files)
			return fmt.Errorf("%w: %v while waiting for the parent to exit", ErrProtocol, ev.Kind)
		}
		if p.sock.term == errGone {
			return nil
		}
		return fmt.Errorf("handoff: waiting for the parent to exit: %w", p.sock.term)
	case <-ctx.Done():
		return fmt.Errorf("handoff: waiting for the parent to exit: %w", context.Cause(ctx))
	}
}

// Close closes the child's end of the socket.
func (p *Parent) Close() error {
	if err := p.sock.close(); err != nil {
		return fmt.Errorf("handoff: close: %w", err)
	}
	return nil
}

// next returns the next frame from the parent.
func (p *Parent) next(ctx context.Context) (event, error) {
	select {
	case ev, ok := <-p.sock.events:
		if !ok {
			return event{}, p.sock.term
		}
		return ev, nil
	case <-ctx.Done():
		return event{}, fmt.Errorf("handoff: waiting for the parent: %w", context.Cause(ctx))
	}
}

// send writes one frame within writeTimeout.
func (p *Parent) send(k kind, payload []byte) error {
	p.sock.uc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := p.sock.write(k, payload, nil); err != nil {
		return fmt.Errorf("handoff: sending %v: %w", k, err)
	}
	return nil
}
