package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// The demo script (what `make demo` runs after building bin/vipd), run
// with the binary under test.
const demoScript = "../examples/demo/demo.sh"

// hostSnapshot is what the demo may leave behind: namespaces, links in
// this namespace, and processes.
type hostSnapshot struct {
	netns    map[string]bool
	links    map[string]bool
	children map[int]string // this test process's children: pid -> comm
}

func snapshot(t *testing.T) hostSnapshot {
	t.Helper()
	s := hostSnapshot{netns: map[string]bool{}, links: map[string]bool{}, children: map[int]string{}}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			s.netns[f[0]] = true
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		// "12: name@peer: <...>"
		if f := strings.SplitN(l, ": ", 3); len(f) == 3 {
			name, _, _ := strings.Cut(f[1], "@")
			s.links[name] = true
		}
	}
	self := os.Getpid()
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ")".
		i := bytes.LastIndexByte(b, ')')
		j := bytes.IndexByte(b, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:j])))
			s.children[pid] = string(b[j+1 : i])
		}
	}
	return s
}

// markedProcs lists the processes whose environment holds mark: every
// process the demo started inherits it.
func markedProcs(mark string) []int {
	var out []int
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	needle := []byte("VIPD_DEMO_MARK=" + mark + "\x00")
	for _, p := range envs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, needle) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		out = append(out, pid)
	}
	sort.Ints(out)
	return out
}

func newKeys[K comparable, V any](before, after map[K]V) []K {
	var out []K
	for k := range after {
		if _, ok := before[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// demoRun is one run of the demo script.
type demoRun struct {
	cmd  *exec.Cmd
	mark string
	mu   sync.Mutex
	out  bytes.Buffer
	seen chan string // each line, as printed (dropped when nobody reads)
	done chan error
}

func startDemo(t *testing.T, limit time.Duration) *demoRun {
	t.Helper()
	lab.RequireRoot(t)
	if testing.Short() {
		t.Skip("SKIP: the demo takes about 15 s; not with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("SKIP: the demo builds its stand-in with go, which is not on the PATH")
	}
	r := &demoRun{
		mark: fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()),
		seen: make(chan string, 1024), done: make(chan error, 1),
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	r.cmd = exec.CommandContext(ctx, "sh", demoScript)
	// On timeout: SIGTERM, so the script's trap still cleans up.
	r.cmd.Cancel = func() error { return r.cmd.Process.Signal(syscall.SIGTERM) }
	r.cmd.WaitDelay = 30 * time.Second
	r.cmd.Env = append(os.Environ(), "VIPD="+lab.Bin, "VIPD_DEMO_MARK="+r.mark)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = pw, pw
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	pid := r.cmd.Process.Pid
	t.Cleanup(func() { r.sweep(t, pid) })
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.mu.Lock()
			r.out.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			select {
			case r.seen <- sc.Text():
			default:
			}
		}
		pr.Close()
		r.done <- r.cmd.Wait()
	}()
	return r
}

func (r *demoRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// wait returns the script's exit error once it and its output are done.
func (r *demoRun) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(timeout):
		t.Fatalf("demo still running after %s\n%s", timeout, r.output())
		return nil
	}
}

// sweep removes what a failed demo may have left, so that one failure
// does not leak into the next test: only the demo's own namespaces, and
// only processes carrying its mark.
func (r *demoRun) sweep(t *testing.T, pid int) {
	for _, p := range markedProcs(r.mark) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	s := snapshot(t)
	for ns := range s.netns {
		if strings.HasPrefix(ns, fmt.Sprintf("vipd-demo-%d-", pid)) {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	}
}

// checkLeftovers compares the host before and after a demo run.
func (r *demoRun) checkLeftovers(t *testing.T, before hostSnapshot) {
	t.Helper()
	pid := r.cmd.Process.Pid
	after := snapshot(t)
	nsPrefix := fmt.Sprintf("vipd-demo-%d-", pid)
	for _, ns := range newKeys(before.netns, after.netns) {
		if strings.HasPrefix(ns, nsPrefix) {
			t.Errorf("the demo left namespace %s", ns)
		} else {
			t.Logf("new namespace %s is not the demo's (another test on this host)", ns)
		}
	}
	linkPrefix := fmt.Sprintf("vd%d", pid)
	for _, l := range newKeys(before.links, after.links) {
		if strings.HasPrefix(l, linkPrefix) || l == "br0" {
			t.Errorf("the demo left link %s in the host namespace", l)
		}
	}
	for _, c := range newKeys(before.children, after.children) {
		t.Errorf("a child process remains after the demo: pid %d (%s)", c, after.children[c])
	}
	if ps := markedProcs(r.mark); len(ps) > 0 {
		t.Errorf("processes started by the demo still run: %v", ps)
	}
	if m := reTmp.FindStringSubmatch(r.output()); m == nil {
		t.Error("the demo did not print its temporary directory")
	} else if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo left its temporary directory %s (%v)", m[1], err)
	}
}

var (
	reMaster = regexp.MustCompile(`(?m)^\s*vrid-51\s+51\s+MASTER\s`)
	reGap    = regexp.MustCompile(`client-visible gap (\d+) ms \(timers predict (\d+) ms\)`)
	reTmp    = regexp.MustCompile(`certificate for cp1-cp3 and the VIP: (/\S+)/pki`)
	reWhoami = regexp.MustCompile(`(?m)^\s*cp[123] \(you are 192\.168\.30\.21:\d+\)$`)
)

// TestDemo runs `make demo`'s script end to end: it must show a MASTER,
// the client reaching an API server through the VIP, two drills with a
// measured gap, and leave no namespace, link or process behind.
func TestDemo(t *testing.T) {
	lab.RequireRoot(t)
	before := snapshot(t)
	r := startDemo(t, 3*time.Minute)
	err := r.wait(t, 4*time.Minute)
	out := r.output()
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("demo failed: %v", err)
	}
	if !reMaster.MatchString(out) {
		t.Error("no MASTER in the status the demo printed")
	}
	if !reWhoami.MatchString(out) {
		t.Error("the client did not reach a stand-in API server through lb1's proxy")
	}
	gaps := reGap.FindAllStringSubmatch(out, -1)
	if len(gaps) != 2 {
		t.Fatalf("want two drill results with a gap in ms (planned, hard), got %q", gaps)
	}
	planned, _ := strconv.Atoi(gaps[0][1])
	hard, _ := strconv.Atoi(gaps[1][1])
	if planned > 500 || hard > 3000 {
		t.Errorf("gaps %d ms (planned) and %d ms (hard) are far beyond the 200 ms advert timers", planned, hard)
	}
	if !strings.Contains(out, "nothing of the demo is left") {
		t.Error("the demo did not report its cleanup")
	}
	r.checkLeftovers(t, before)
}

// TestDemoInterrupted stops the demo halfway (SIGTERM to the script, the
// path Ctrl-C takes through its trap) and checks that it still removes
// everything.
func TestDemoInterrupted(t *testing.T) {
	lab.RequireRoot(t)
	before := snapshot(t)
	r := startDemo(t, 2*time.Minute)
	deadline := time.After(90 * time.Second)
	for found := false; !found; {
		select {
		case line := <-r.seen:
			// The lab is complete and both vipd nodes run.
			found = strings.Contains(line, "==> 4/7")
		case err := <-r.done:
			t.Fatalf("demo ended before it was interrupted: %v\n%s", err, r.output())
		case <-deadline:
			t.Fatalf("the demo never reached its status step\n%s", r.output())
		}
	}
	if pids := markedProcs(r.mark); len(pids) < 6 {
		t.Errorf("want the script, 3 stand-ins and 2 vipd running before the interrupt, found %v", pids)
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	err := r.wait(t, time.Minute)
	out := r.output()
	t.Logf("demo output:\n%s", out)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want status 130\n%s", err, out)
	}
	if !strings.Contains(out, "demo: interrupted") || !strings.Contains(out, "nothing of the demo is left") {
		t.Errorf("no interrupt and cleanup message:\n%s", out)
	}
	r.checkLeftovers(t, before)
}
