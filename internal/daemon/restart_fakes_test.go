package daemon

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/handoff"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// memHandoff is the handoff between an old and a new daemon in one
// process: the old one's Successor and the new one's Predecessor over
// channels. The new daemon is a testNode on the same bus, with the old
// one's interface addresses (the same host).
type memHandoff struct {
	t       *testing.T
	pid     int
	hello   chan handoff.Hello
	msg     chan handoff.Msg
	ready   chan struct{}
	goCh    chan struct{}
	running chan struct{}
	refused chan string   // the child gave up, with why
	exited  chan struct{} // the old process is gone (its Run returned)
	mu      sync.Mutex
	hi      handoff.Hello
	aborted bool
	child   *testNode
	cancel  context.CancelFunc
	done    chan error // the child's Run
}

func newMemHandoff(t *testing.T, pid int) *memHandoff {
	return &memHandoff{
		t: t, pid: pid, hello: make(chan handoff.Hello, 1), msg: make(chan handoff.Msg, 1),
		ready: make(chan struct{}), goCh: make(chan struct{}), running: make(chan struct{}),
		refused: make(chan string, 1), exited: make(chan struct{}), done: make(chan error, 1),
	}
}

// successorOf wires old's StartSuccessor to start a new daemon for the
// same node on b, reading cfgText (the file on disk, which may have
// changed); formats overrides what it says it reads.
func successorOf(t *testing.T, b *bus, old *testNode, cfgText string, formats []uint16) *memHandoff {
	h := newMemHandoff(t, 4242)
	old.d.os.StartSuccessor = func(ctx context.Context, s handoff.Spawn) (Successor, error) {
		if err := os.WriteFile(old.path, []byte(cfgText), 0o644); err != nil {
			t.Fatal(err)
		}
		n := blankNode(t, old.name, old.path, old.addrs)
		n.ann = old.ann
		n.build(b, func(o *Options) { o.Handoff = predecessor{h}; o.Formats = formats })
		n.d.os.ExportVRRP, n.d.os.AdoptVRRP = old.d.os.ExportVRRP, old.d.os.AdoptVRRP
		n.d.os.NotifyMainPID = old.d.os.NotifyMainPID
		h.child = n
		cctx, cancel := context.WithCancel(context.Background())
		h.cancel = cancel
		go func() {
			err := n.d.Run(cctx)
			n.done <- err // a later restart of this one waits on it
			h.done <- err
		}()
		t.Cleanup(func() {
			cancel()
			<-h.done
		})
		select {
		case h.hi = <-h.hello:
		case err := <-h.done:
			return nil, fmt.Errorf("child exited before HELLO: %v", err)
		}
		return h, nil
	}
	return h
}

// Successor side (the old daemon).

func (h *memHandoff) Hello() handoff.Hello { return h.hi }
func (h *memHandoff) PID() int             { return h.pid }
func (h *memHandoff) Refuse(reason string) error {
	h.msg <- handoff.Msg{Refused: true, Reason: reason}
	return nil
}
func (h *memHandoff) Send(format uint16, body []byte, files []*os.File) error {
	h.msg <- handoff.Msg{Format: format, Body: body, Files: append([]*os.File(nil), files...)}
	return nil
}
func (h *memHandoff) await(ctx context.Context, ch chan struct{}, d time.Duration, what string) error {
	select {
	case <-ch:
		return nil
	case why := <-h.refused:
		return fmt.Errorf("%w: %s", handoff.ErrRefused, why)
	case err := <-h.done:
		h.done <- err
		return fmt.Errorf("%w: waiting for %s: %v", handoff.ErrChildExited, what, err)
	case <-time.After(d):
		return fmt.Errorf("%w: %s", handoff.ErrTimeout, what)
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (h *memHandoff) AwaitReady(ctx context.Context) error {
	return h.await(ctx, h.ready, handoff.DefaultReadyTimeout, "READY")
}
func (h *memHandoff) Go() error { close(h.goCh); return nil }
func (h *memHandoff) AwaitRunning(ctx context.Context) error {
	return h.await(ctx, h.running, handoff.DefaultRunningTimeout, "RUNNING")
}
func (h *memHandoff) Abort() error {
	h.mu.Lock()
	h.aborted = true
	h.mu.Unlock()
	if h.cancel != nil {
		h.cancel()
	}
	return nil
}
func (h *memHandoff) Close() error { return nil }

// Predecessor side (the new daemon).

func (h *memHandoff) HelloTo(hi handoff.Hello) error { h.hello <- hi; return nil }
func (h *memHandoff) Receive(ctx context.Context) (handoff.Msg, error) {
	select {
	case m := <-h.msg:
		return m, nil
	case <-ctx.Done():
		return handoff.Msg{}, ctx.Err()
	}
}
func (h *memHandoff) Ready() error { close(h.ready); return nil }
func (h *memHandoff) AwaitGo(ctx context.Context) error {
	select {
	case <-h.goCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (h *memHandoff) Running() error { close(h.running); return nil }
func (h *memHandoff) AwaitExit(ctx context.Context) error {
	select {
	case <-h.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// predecessor is h as the new daemon's Predecessor: Hello is taken by the
// Successor side, so the two Hello methods live on different types.
type predecessor struct{ *memHandoff }

func (p predecessor) Hello(hi handoff.Hello) error { return p.HelloTo(hi) }
func (p predecessor) Refuse(reason string) error {
	p.refused <- reason
	return nil
}
func (p predecessor) Close() error { return nil }

// exportedFiles stand in for the VRRP sockets' descriptors: the new
// daemon gets a socket of its own on the bus at the same address.
func restartOS(t *testing.T, b *bus, n *testNode, notified *[]int) {
	n.d.os.ExportVRRP = func(vrrp.Conn) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		w.Close()
		return r, nil
	}
	n.d.os.AdoptVRRP = func(f *os.File, cfg netcfg.VRRPConfig) (vrrp.Conn, error) {
		return b.listen(cfg.Source), nil
	}
	var mu sync.Mutex
	n.d.os.NotifyMainPID = func(_ string, pid int) error {
		mu.Lock()
		defer mu.Unlock()
		*notified = append(*notified, pid)
		return nil
	}
}

// SetReadDeadline cuts a pending read short when t has passed.
func (c *busConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	expired := !t.IsZero() && !t.After(time.Now())
	select {
	case <-c.kick:
		if !expired {
			c.kick = make(chan struct{})
		}
	default:
		if expired {
			close(c.kick)
		}
	}
	return nil
}
