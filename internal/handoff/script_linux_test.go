//go:build linux

package handoff

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests start the test binary itself as the child: TestMain sees
// scriptEnv and runs the named script instead of the tests.
const (
	scriptEnv = "HANDOFF_TEST_SCRIPT"
	bodyEnv   = "HANDOFF_TEST_BODY"  // body length the good child expects
	pairsEnv  = "HANDOFF_TEST_PAIRS" // pipe pairs the good child expects
)

// scriptLife bounds every scripted child, so that none outlives a test
// binary that crashed.
const scriptLife = 60 * time.Second

// scripts are the children's behaviours; each returns the exit code.
var scripts = map[string]func() int{
	"good":          scriptGood,
	"exit":          func() int { return 3 },
	"hang-hello":    scriptHangHello,
	"hang-running":  scriptHangRunning,
	"refuse":        scriptRefuse,
	"garbage":       scriptGarbage,
	"old-format":    scriptOldFormat,
	"exit-at-state": scriptExitAtState,
	"grandchild":    scriptGrandchild,
	"hold":          scriptHold,
	"wrong-pid":     scriptWrongPID,
	"files-back":    scriptFilesBack,
}

func TestMain(m *testing.M) {
	if name, ok := os.LookupEnv(scriptEnv); ok {
		os.Unsetenv(scriptEnv)
		script, ok := scripts[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "handoff test child: no script %q\n", name)
			os.Exit(100)
		}
		os.Exit(script())
	}
	os.Exit(m.Run())
}

// must ends a scripted child on an error, with exit code 2.
func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "handoff test child:", err)
		os.Exit(2)
	}
}

func join() (*Parent, context.Context) {
	p, err := FromEnv()
	must(err)
	if p == nil {
		must(fmt.Errorf("%s unset", EnvFD))
	}
	// The process exits when its script returns: the context needs no
	// cancel before that.
	ctx, cancel := context.WithTimeout(context.Background(), scriptLife)
	time.AfterFunc(scriptLife, cancel)
	return p, ctx
}

// scriptGood is a well-behaved child. It checks the body against pattern,
// reads "p<i>" from each received pipe's read end and writes "c<i>" into
// its write end, then goes through READY, GO and RUNNING and exits 0 when
// the parent closes its end. Anything unexpected: it refuses with why.
func scriptGood() int {
	p, ctx := join()
	must(p.Hello(Hello{BinaryVersion: "test"}))
	msg, err := p.Receive(ctx)
	must(err)
	if err := checkState(msg); err != nil {
		must(p.Refuse(err.Error()))
		return 1
	}
	must(p.Ready())
	must(p.AwaitGo(ctx))
	must(p.Running())
	must(p.AwaitExit(ctx))
	return 0
}

func checkState(msg Msg) error {
	if v := os.Getenv(EnvFD); v != "" {
		return fmt.Errorf("%s=%s still set after FromEnv", EnvFD, v)
	}
	if flags, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
		return fmt.Errorf("descriptor 3 is open without close-on-exec")
	}
	n, _ := strconv.Atoi(os.Getenv(bodyEnv))
	if msg.Format != Version || !bytes.Equal(msg.Body, pattern(n)) {
		return fmt.Errorf("state format %d with %d bytes, want %d with pattern(%d)", msg.Format, len(msg.Body), Version, n)
	}
	pairs, _ := strconv.Atoi(os.Getenv(pairsEnv))
	if len(msg.Files) != 2*pairs {
		return fmt.Errorf("%d files, want %d", len(msg.Files), 2*pairs)
	}
	for i := 0; i < pairs; i++ {
		r, w := msg.Files[2*i], msg.Files[2*i+1]
		if flags, err := unix.FcntlInt(r.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			return fmt.Errorf("file %d: flags %#x, %v: not close-on-exec", 2*i, flags, err)
		}
		got := make([]byte, 8)
		if _, err := io.ReadFull(r, got); err != nil {
			return fmt.Errorf("pair %d: read: %w", i, err)
		}
		if want := token('p', i); !bytes.Equal(got, want) {
			return fmt.Errorf("pair %d: read %q, want %q", i, got, want)
		}
		if _, err := w.Write(token('c', i)); err != nil {
			return fmt.Errorf("pair %d: write: %w", i, err)
		}
		r.Close()
		w.Close()
	}
	return nil
}

// token is the 8 bytes written into pipe pair i by side c.
func token(c byte, i int) []byte {
	return binary.BigEndian.AppendUint32([]byte{c, '-', '-', '-'}, uint32(i))
}

// scriptHangHello never says HELLO; it exits when the parent's end closes.
func scriptHangHello() int {
	p, ctx := join()
	p.AwaitExit(ctx)
	return 0
}

// scriptHangRunning says READY and receives GO but never RUNNING.
func scriptHangRunning() int {
	p, ctx := join()
	must(p.Hello(Hello{}))
	_, err := p.Receive(ctx)
	must(err)
	must(p.Ready())
	must(p.AwaitGo(ctx))
	p.AwaitExit(ctx)
	return 0
}

// scriptRefuse takes the state and declines, as a child whose
// configuration is invalid does.
func scriptRefuse() int {
	p, ctx := join()
	must(p.Hello(Hello{}))
	_, err := p.Receive(ctx)
	must(err)
	must(p.Refuse("config: invalid advert_interval"))
	return 1
}

// scriptGarbage sends a message that is no frame, then waits.
func scriptGarbage() int {
	_, err := unix.Write(3, []byte("GET / HTTP/1.1\r\n\r\n"))
	must(err)
	p, ctx := join()
	p.AwaitExit(ctx)
	return 0
}

// scriptOldFormat reads only a format the parent does not write; it
// expects REFUSE and exits 0 once the parent's end closes (7 on anything
// else).
func scriptOldFormat() int {
	p, ctx := join()
	must(p.Hello(Hello{Formats: []uint16{Version + 98}}))
	msg, err := p.Receive(ctx)
	must(err)
	if !msg.Refused || msg.Reason != "no common format" {
		return 7
	}
	must(p.AwaitExit(ctx))
	return 0
}

// scriptExitAtState dies as soon as the state arrived.
func scriptExitAtState() int {
	p, ctx := join()
	must(p.Hello(Hello{}))
	_, err := p.Receive(ctx)
	must(err)
	return 5
}

// scriptGrandchild starts a grandchild that keeps the socket open, says
// nothing and exits: the parent sees no EOF, only the exit.
func scriptGrandchild() int {
	self, err := os.Executable()
	must(err)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), scriptEnv+"=hold")
	cmd.ExtraFiles = []*os.File{os.NewFile(3, "handoff")}
	cmd.Stderr = os.Stderr
	must(cmd.Start())
	return 6
}

// scriptHold holds descriptor 3 until its other end closes.
func scriptHold() int {
	p, ctx := join()
	p.AwaitExit(ctx)
	return 0
}

// scriptWrongPID says HELLO with a pid that is not its own.
func scriptWrongPID() int {
	p, ctx := join()
	must(p.Hello(Hello{PID: os.Getppid()}))
	p.AwaitExit(ctx)
	return 0
}

// scriptFilesBack answers the state with a CHUNK carrying two descriptors
// instead of READY.
func scriptFilesBack() int {
	p, ctx := join()
	must(p.Hello(Hello{}))
	_, err := p.Receive(ctx)
	must(err)
	var pipe [2]int
	must(unix.Pipe2(pipe[:], unix.O_CLOEXEC))
	must(p.sock.write(kindChunk, []byte("x"), pipe[:]))
	p.AwaitExit(ctx)
	return 0
}
