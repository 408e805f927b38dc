package handoff_test

import (
	"context"
	"fmt"
	"os"

	"github.com/vipd/vipd/internal/handoff"
)

// The old process: start the new binary, hand over, roll back on any
// failure before RUNNING.
func ExampleStart() {
	ctx := context.Background()
	exe, _ := os.Executable()
	c, err := handoff.Start(ctx, handoff.Spawn{Path: exe, Args: os.Args, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Println("restart failed, nothing changed:", err) // errors.Is(err, handoff.ErrChildExited), ...
		return
	}
	if !c.Hello().Reads(handoff.Version) {
		c.Refuse("no common format") // then hand over to the backup and exit: the child starts on our exit
		return
	}
	var state []byte     // frozen state, encoded in format handoff.Version
	var files []*os.File // listeners, connections, ...
	rollback := func(err error) {
		c.Abort() // SIGKILL and wait; then resume what was frozen
		fmt.Println("rolled back:", err)
	}
	if err := c.Send(handoff.Version, state, files); err != nil {
		rollback(err)
		return
	}
	if err := c.AwaitReady(ctx); err != nil {
		rollback(err) // errors.Is(err, handoff.ErrRefused): the child said why
		return
	}
	if err := c.Go(); err != nil {
		rollback(err)
		return
	}
	if err := c.AwaitRunning(ctx); err != nil {
		rollback(err)
		return
	}
	c.Close() // sd_notify MAINPID=c.PID(), close our copies, exit 0
}

// The new process: find the socket, adopt, start on GO.
func ExampleFromEnv() {
	ctx := context.Background()
	p, err := handoff.FromEnv()
	if err != nil || p == nil {
		return // a normal start (or a broken handoff: exit non-zero)
	}
	if err := p.Hello(handoff.Hello{BinaryVersion: "v1.2.3"}); err != nil {
		return
	}
	msg, err := p.Receive(ctx)
	if err != nil {
		return
	}
	if msg.Refused {
		p.AwaitExit(ctx) // the old process hands over to the backup and exits
		return           // then run as a fresh daemon
	}
	// adopt msg.Body and msg.Files; on a bad configuration: p.Refuse(why)
	if err := p.Ready(); err != nil {
		return
	}
	if err := p.AwaitGo(ctx); err != nil {
		// errors.Is(err, handoff.ErrClosed): the old process rolled back.
		return // exit, closing the adopted files without shutting them down
	}
	// start everything
	p.Running()
	p.Close()
}
