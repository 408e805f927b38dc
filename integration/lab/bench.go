//go:build linux

package lab

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Bench is a testing.TB for programs that drive the lab outside `go test`
// (the benchmarks in integration/bench*). Fatal ends the function given to
// Run, as in a test; the cleanups run when it returns, last registered
// first. Methods the lab does not use panic (the embedded TB is nil).
type Bench struct {
	testing.TB
	name     string
	root     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	skipped  bool
	errs     []string
}

// NewBench returns a Bench whose temporary directories go under root.
func NewBench(name, root string) *Bench { return &Bench{name: name, root: root} }

// Run calls f on its own goroutine (Fatal ends it with runtime.Goexit) and
// then runs the cleanups.
func (t *Bench) Run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// FirstErr is the first line of the first failure, or "".
func (t *Bench) FirstErr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.errs) == 0 {
		return ""
	}
	s, _, _ := strings.Cut(t.errs[0], "\n")
	return s
}

func (t *Bench) Helper()      {}
func (t *Bench) Name() string { return t.name }
func (t *Bench) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *Bench) TempDir() string {
	d, err := os.MkdirTemp(t.root, "t")
	if err != nil {
		panic(err)
	}
	return d
}
func (t *Bench) Log(a ...any)            { fmt.Fprintln(os.Stderr, append([]any{t.name + ":"}, a...)...) }
func (t *Bench) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, t.name+": "+f+"\n", a...) }
func (t *Bench) Error(a ...any)          { t.fail(fmt.Sprint(a...)) }
func (t *Bench) Errorf(f string, a ...any) {
	t.fail(fmt.Sprintf(f, a...))
}
func (t *Bench) Fatal(a ...any)            { t.fail(fmt.Sprint(a...)); runtime.Goexit() }
func (t *Bench) Fatalf(f string, a ...any) { t.fail(fmt.Sprintf(f, a...)); runtime.Goexit() }
func (t *Bench) Fail()                     { t.fail("failed") }
func (t *Bench) FailNow()                  { t.fail("failed"); runtime.Goexit() }
func (t *Bench) Failed() bool              { t.mu.Lock(); defer t.mu.Unlock(); return t.failed }
func (t *Bench) Skip(a ...any)             { t.skip(fmt.Sprint(a...)) }
func (t *Bench) Skipf(f string, a ...any)  { t.skip(fmt.Sprintf(f, a...)) }
func (t *Bench) SkipNow()                  { t.skip("skipped") }
func (t *Bench) Skipped() bool             { t.mu.Lock(); defer t.mu.Unlock(); return t.skipped }

func (t *Bench) skip(msg string) {
	t.fail("skipped: " + msg)
	t.mu.Lock()
	t.skipped = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *Bench) fail(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
	t.errs = append(t.errs, msg)
	fmt.Fprintf(os.Stderr, "%s: %s\n", t.name, msg)
}
