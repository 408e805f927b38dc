package handoff

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// Version is the state format this binary writes. Supported lists the
// formats it reads.
const Version uint16 = 1

// Supported returns the state formats this binary reads, newest first.
func Supported() []uint16 { return []uint16{Version} }

// EnvFD names the environment variable that tells a child which file
// descriptor is its end of the handoff socket.
const EnvFD = "VIPD_HANDOFF_FD"

// Bounds of the wire format.
const (
	// MaxBody is the largest state body.
	MaxBody = 64 << 20
	// MaxFiles is the most files one handoff carries.
	MaxFiles = 1 << 17
	// MaxFilesPerMessage is the most descriptors in one SCM_RIGHTS message.
	MaxFilesPerMessage = 250
	// MaxChunk is the largest piece of body in one message.
	MaxChunk = 64 << 10
	// MaxReason is the longest refusal reason, in bytes.
	MaxReason = 4096
	// MaxBinaryVersion is the longest Hello.BinaryVersion, in bytes.
	MaxBinaryVersion = 256
	// MaxFormats is the most formats one Hello lists.
	MaxFormats = 64
)

// Default deadlines, used when a Spawn field is zero.
const (
	DefaultHelloTimeout   = 10 * time.Second
	DefaultReadyTimeout   = 10 * time.Second
	DefaultRunningTimeout = 2 * time.Second
)

// Errors, always wrapped: test with errors.Is.
var (
	// ErrVersion: a frame of an unknown wire version, or a state format
	// the child does not read.
	ErrVersion = errors.New("handoff: unsupported version")
	// ErrRefused: the other side declined the handoff (Child.Refuse or
	// Parent.Refuse); the error text carries its reason.
	ErrRefused = errors.New("handoff: refused")
	// ErrTimeout: a deadline of the protocol passed.
	ErrTimeout = errors.New("handoff: timeout")
	// ErrChildExited: the child process exited; errors.As finds an
	// *ExitError with its status.
	ErrChildExited = errors.New("handoff: child exited")
	// ErrMalformed: a frame that is not well-formed (magic, reserved bits,
	// lengths, kind, encoding).
	ErrMalformed = errors.New("handoff: malformed frame")
	// ErrTooLarge: a frame, body, file count or string over its bound.
	ErrTooLarge = errors.New("handoff: over a bound")
	// ErrProtocol: a well-formed frame the protocol does not allow here.
	ErrProtocol = errors.New("handoff: protocol violation")
	// ErrClosed: the other side closed its end of the socket, or this
	// side was closed.
	ErrClosed = errors.New("handoff: closed")
)

// ExitError reports a child that exited before the handoff finished. It
// matches ErrChildExited.
type ExitError struct {
	// Phase is what the parent was waiting for, e.g. "HELLO".
	Phase string
	// State is the child's exit status.
	State *os.ProcessState
}

// Error implements error.
func (e *ExitError) Error() string {
	return fmt.Sprintf("handoff: child exited while waiting for %s: %v", e.Phase, e.State)
}

// Is makes errors.Is(err, ErrChildExited) true.
func (e *ExitError) Is(target error) bool { return target == ErrChildExited }

// Hello is what a child says first.
type Hello struct {
	// PID is the child's process id.
	PID int
	// BinaryVersion is the child's build version, for logs.
	BinaryVersion string
	// Formats are the state formats the child reads.
	Formats []uint16
}

// Reads reports whether the child reads state format f.
func (h Hello) Reads(f uint16) bool { return slices.Contains(h.Formats, f) }

// Msg is what Parent.Receive returns: either a refusal or the state.
type Msg struct {
	// Refused is true when the parent declined (no common format); Reason
	// says why, and nothing else is set.
	Refused bool
	Reason  string
	// Format, Body and Files are the state; the caller owns the files.
	// They are close-on-exec.
	Format uint16
	Body   []byte
	Files  []*os.File
}

// Spawn says how to start a child.
type Spawn struct {
	// Path is the binary to run; Args is the full argv (Args[0] included).
	Path string
	Args []string
	// Env is the child's environment (nil: this process's); any EnvFD in
	// it is replaced by EnvFD=3.
	Env []string
	// Stdout and Stderr receive the child's output (nil: discarded).
	Stdout, Stderr io.Writer
	// Deadlines: HELLO after the start, READY after AwaitReady is called,
	// RUNNING after AwaitRunning is called. Zero means the default.
	HelloTimeout, ReadyTimeout, RunningTimeout time.Duration
}
