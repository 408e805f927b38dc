//go:build linux

package proxy

import (
	"testing"
	"time"
)

// TestCommandWhileRunStarts: a command given to a loop while Run is
// starting it runs, and a Run cancelled at once returns. A command that
// came after a loop goroutine took ownership and before it said it was
// running used to wait for the loop to stop, forever: Listen right after
// Run (the daemon on becoming MASTER) could hang, and so could Run's own
// stop. The window is a few instructions wide; this caught it under
// `go test -race -cpu 1,2,4 -count 20 -run TestCommandWhileRunStarts`.
func TestCommandWhileRunStarts(t *testing.T) {
	cfg := oneBackend("", newTestServer(t, "a", nil).config())
	within := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not done within 5s", what)
		}
	}
	for i := range 300 {
		p, cancel, done := runProxy(t, cfg)
		if i%2 == 0 {
			within("a command while Run starts", func() { p.CloseConns() })
		}
		cancel()
		within("Run after cancel", func() { <-done })
	}
}
