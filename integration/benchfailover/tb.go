package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// ---- a testing.TB for the lab outside `go test` ----

type tb struct {
	testing.TB // nil: methods the lab does not use panic
	name       string
	root       string
	mu         sync.Mutex
	cleanups   []func()
	failed     bool
	skipped    bool
	errs       []string
}

func newTB(name, root string) *tb {
	return &tb{name: name, root: root}
}

// run calls f on its own goroutine (Fatal ends it with runtime.Goexit, as
// in a test) and then runs the cleanups, last registered first.
func (t *tb) run(f func()) {
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

func (t *tb) Helper()      {}
func (t *tb) Name() string { return t.name }
func (t *tb) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *tb) TempDir() string {
	d, err := os.MkdirTemp(t.root, "t")
	if err != nil {
		panic(err)
	}
	return d
}
func (t *tb) Log(a ...any)            { fmt.Fprintln(os.Stderr, append([]any{t.name + ":"}, a...)...) }
func (t *tb) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, t.name+": "+f+"\n", a...) }
func (t *tb) Error(a ...any)          { t.fail(fmt.Sprint(a...)) }
func (t *tb) Errorf(f string, a ...any) {
	t.fail(fmt.Sprintf(f, a...))
}
func (t *tb) Fatal(a ...any)            { t.fail(fmt.Sprint(a...)); runtime.Goexit() }
func (t *tb) Fatalf(f string, a ...any) { t.fail(fmt.Sprintf(f, a...)); runtime.Goexit() }
func (t *tb) Fail()                     { t.fail("failed") }
func (t *tb) FailNow()                  { t.fail("failed"); runtime.Goexit() }
func (t *tb) Failed() bool              { t.mu.Lock(); defer t.mu.Unlock(); return t.failed }
func (t *tb) Skip(a ...any)             { t.skip(fmt.Sprint(a...)) }
func (t *tb) Skipf(f string, a ...any)  { t.skip(fmt.Sprintf(f, a...)) }
func (t *tb) SkipNow()                  { t.skip("skipped") }
func (t *tb) Skipped() bool             { return t.skipped }

func (t *tb) skip(msg string) {
	t.fail("skipped: " + msg)
	t.skipped = true
	runtime.Goexit()
}

func (t *tb) fail(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
	t.errs = append(t.errs, msg)
	fmt.Fprintf(os.Stderr, "%s: %s\n", t.name, msg)
}

func (t *tb) firstErr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.errs) == 0 {
		return ""
	}
	s := t.errs[0]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
