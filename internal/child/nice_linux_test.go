package child

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// niceOf reads the nice value from a /proc/.../stat text: the 19th field,
// the 17th after the ")" that ends the command name.
func niceOf(t *testing.T, stat string) int {
	t.Helper()
	i := strings.LastIndexByte(stat, ')')
	f := strings.Fields(stat[i+1:])
	if i < 0 || len(f) < 17 {
		t.Fatalf("unexpected stat %q", stat)
	}
	n, err := strconv.Atoi(f[16])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// threadNices returns the nice value of every thread of this process but
// the main one. A goroutine that exits locked to the main thread does not
// end it: the runtime parks the thread for good instead, so it runs no
// goroutine at any nice value.
func threadNices(t *testing.T) map[string]int {
	t.Helper()
	paths, _ := filepath.Glob("/proc/self/task/*/stat")
	m := map[string]int{}
	main := fmt.Sprintf("/proc/self/task/%d/stat", os.Getpid())
	for _, p := range paths {
		if p == main {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread has just ended
		}
		m[p] = niceOf(t, string(b))
	}
	return m
}

// TestStartNice: the child runs at nice 19 from its start, and no thread
// of this process is left at nice 19 for the Go scheduler to run other
// goroutines on. Such a thread is descheduled for long stretches on a busy
// host, and a stop-the-world GC then waits for it: the whole daemon stops.
func TestStartNice(t *testing.T) {
	for p, n := range threadNices(t) {
		if n == 19 {
			t.Skipf("SKIP: thread %s already runs at nice 19", p)
		}
	}
	var tail Tail
	tail.Max = 4096
	cmd := exec.Command("/bin/cat", "/proc/self/stat")
	cmd.Stdout = &tail
	if err := StartNice(cmd, 19); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := niceOf(t, string(tail.Bytes())); n != 19 {
		t.Errorf("child at nice %d, want 19", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for p, n := range threadNices(t) {
			if n == 19 {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads of this process still at nice 19 after 5 s: %v", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
