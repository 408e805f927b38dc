package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// Issue 13's end-to-end checks of `vipd restart` on a real HA pair: the
// hitless path with streams through the VIP, the rollback with a binary
// that exits at once and one that hangs, and the version skew fallback.
// (integration/restart_test.go and the benchmark load it harder.)

// hitlessLab is a pair with a stand-in control plane behind the VIP and a
// talos frontend (port 50000: a banner, then echo) for the streams.
type hitlessLab struct {
	*lab.Lab
	lb1, lb2, client, cp *lab.Host
	n1, n2               *lab.Node
	vip                  string
	vipAddr              netip.Addr
}

const hitlessTalos = `
[[frontend]]
name = "talos"
port = 50000
backend = "talos"

[[backend]]
name = "talos"
servers = ["%s:50000"]
check = { type = "tcp", interval = "500ms", timeout = "300ms", rise = 1, fall = 2 }
`

func newHitlessLab(t *testing.T, setup func(*lab.Node), env ...string) *hitlessLab {
	l := lab.NewLab(t)
	h := &hitlessLab{Lab: l, lb1: l.AddHost("lb1", 11), lb2: l.AddHost("lb2", 12), client: l.AddHost("client", 100), cp: l.AddHost("cp1", 31)}
	vip := l.Addr(10)
	h.vip, h.vipAddr = vip.String(), vip
	lab.StartControlPlane(t, h.cp, lab.NewPKI(t, vip))
	nodes := l.StartNodes(t, lab.PairOptions{
		VIP: vip, Backends: []*lab.Host{h.cp}, HTTP: "127.0.0.1:9600",
		Extra: fmt.Sprintf(hitlessTalos, h.cp.Addr),
		Setup: func(n *lab.Node) {
			n.Env = append(n.Env, env...)
			if setup != nil {
				setup(n)
			}
		},
	}, []lab.LBNode{lab.N("lb1", h.lb1, 150), lab.N("lb2", h.lb2, 100)})
	h.n1, h.n2 = nodes[0], nodes[1]
	h.n1.AwaitState("MASTER", 5*time.Second)
	h.n2.AwaitState("BACKUP", 2*time.Second)
	// The process a restart starts is not the lab's: stop it by pid.
	t.Cleanup(func() {
		for _, n := range nodes {
			if st, err := n.Status(); err == nil && st.PID > 0 && st.PID != n.Pid() {
				syscall.Kill(st.PID, syscall.SIGKILL)
			}
		}
	})
	return h
}

// restartCLI runs `vipd restart -o json` against n and returns the exit
// code, the result and stderr.
func restartCLI(t *testing.T, n *lab.Node) (int, map[string]any, string) {
	t.Helper()
	cmd := exec.Command(lab.Bin, "restart", "--socket", n.Socket, "-o", "json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	json.Unmarshal(out.Bytes(), &res)
	return code, res, errb.String()
}

// awaitExit waits for the lab's process of n (the old one) to exit and
// returns its error.
func awaitExit(t *testing.T, n *lab.Node, timeout time.Duration) error {
	t.Helper()
	if err := lab.WaitFor(timeout, func() error {
		if n.Running() {
			return fmt.Errorf("%s (pid %d) still runs", n.Name, n.Pid())
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, n.Log())
	}
	return n.Stop(syscall.SIGKILL, time.Second) // already gone: its exit error
}

// TestRestartHitlessMaster: `vipd restart` on the master under a few
// streams through the VIP: the new process (a new pid in status) is
// MASTER with the old one's transitions, the backup made none, the old
// process exited 0, every stream carried on with every byte in order
// both ways, and the status page's listener was handed over too.
func TestRestartHitlessMaster(t *testing.T) {
	var notify *notifyStandIn
	h := newHitlessLab(t, func(n *lab.Node) {
		if n.Name == "lb1" {
			path := filepath.Join(filepath.Dir(n.LogPath), "notify-hitless.sock")
			notify = newNotifyStandIn(t, path)
			n.Env = append(n.Env, "NOTIFY_SOCKET="+path, "WATCHDOG_USEC=1000000")
		}
	})
	before1, err := h.n1.Status()
	if err != nil {
		t.Fatal(err)
	}
	before2, _ := h.n2.Status()
	streams := startStreams(t, h.client, h.vip+":50000", 8, 6*time.Second)
	time.Sleep(1500 * time.Millisecond)

	code, res, stderr := restartCLI(t, h.n1)
	if code != 0 || res["outcome"] != "handed-over" {
		t.Fatalf("vipd restart: exit %d, %v, stderr %q\n%s", code, res, stderr, h.n1.Log())
	}
	if err := awaitExit(t, h.n1, 5*time.Second); err != nil {
		t.Errorf("the old process exited with %v, want 0", err)
	}
	after1, err := h.n1.Status()
	if err != nil {
		t.Fatalf("status after the restart: %v\n%s", err, h.n1.Log())
	}
	newPID := int(res["new_pid"].(float64))
	if after1.PID != newPID || after1.PID == before1.PID {
		t.Errorf("status pid %d, want the new process %d (old %d)", after1.PID, newPID, before1.PID)
	}
	in1 := after1.Instances[0]
	if in1.State != "MASTER" || in1.Transitions != before1.Instances[0].Transitions {
		t.Errorf("lb1 after the restart: %s with %d transitions, want MASTER with %d", in1.State, in1.Transitions, before1.Instances[0].Transitions)
	}
	if !h.lb1.HasAddr(h.vipAddr) {
		t.Error("the VIP left lb1")
	}
	r := streams.wait(t)
	t.Logf("restart: %v; streams: %+v", res, r)
	if r.Cut != 0 || r.Corrupt != 0 || r.Conns != 8 || r.Bytes == 0 {
		t.Errorf("streams: %+v, want 8 carried through with no cut and no corrupt byte", r)
	}
	after2, _ := h.n2.Status()
	if s := after2.Instances[0]; s.State != "BACKUP" || s.Transitions != before2.Instances[0].Transitions {
		t.Errorf("lb2: %s with %d transitions, want BACKUP with %d", s.State, s.Transitions, before2.Instances[0].Transitions)
	}
	page, err := exec.Command("ip", "netns", "exec", h.lb1.NS, lab.Bin, "status", "--socket", h.n1.Socket).CombinedOutput()
	if err != nil || !strings.Contains(string(page), "MASTER") {
		t.Errorf("vipd status after the restart: %v\n%s", err, page)
	}
	if !httpUp(h.lb1) {
		t.Error("the status page does not answer after the restart")
	}
	// systemd follows the new process: the old one named it (MAINPID=),
	// and the new one pings the watchdog once the old one has gone.
	exited := time.Now()
	if err := lab.WaitFor(3*time.Second, func() error {
		notify.mu.Lock()
		defer notify.mu.Unlock()
		if !slices.Contains(notify.other, fmt.Sprintf("MAINPID=%d", newPID)) {
			return fmt.Errorf("no MAINPID=%d in %q", newPID, notify.other)
		}
		if len(notify.pings) == 0 || notify.pings[len(notify.pings)-1].Before(exited) {
			return fmt.Errorf("no watchdog ping since the old process exited")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// TestRestartHitlessRollback: a binary on disk that exits at once, and
// one that hangs (no hello within 10 s), are rolled back: `vipd restart`
// exits 1 with the reason, the same process serves on as MASTER, no
// transition anywhere, streams through the VIP untouched.
func TestRestartHitlessRollback(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, script, want string
		streams            time.Duration // long enough to span the restart
	}{
		{"exits", "#!/bin/sh\nexit 3\n", "exit status 3", 3 * time.Second},
		{"hangs", "#!/bin/sh\nexec sleep 60\n", "timeout", 14 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wrapper := filepath.Join(dir, tc.name)
			if err := os.WriteFile(wrapper, []byte(tc.script), 0o755); err != nil {
				t.Fatal(err)
			}
			h := newHitlessLab(t, nil, "VIPD_RESTART_EXEC="+wrapper)
			before1, _ := h.n1.Status()
			before2, _ := h.n2.Status()
			streams := startStreams(t, h.client, h.vip+":50000", 4, tc.streams)
			time.Sleep(time.Second)
			code, res, stderr := restartCLI(t, h.n1)
			if code != 1 || res["outcome"] != "rolled-back" || !strings.Contains(fmt.Sprint(res["reason"]), tc.want) {
				t.Errorf("vipd restart: exit %d, %v, stderr %q; want 1, rolled back saying %q", code, res, stderr, tc.want)
			}
			if !h.n1.Running() {
				t.Fatalf("the old process exited\n%s", h.n1.Log())
			}
			after1, _ := h.n1.Status()
			after2, _ := h.n2.Status()
			if after1.PID != before1.PID || after1.Instances[0].State != "MASTER" || after1.Instances[0].Transitions != before1.Instances[0].Transitions {
				t.Errorf("lb1 after the rollback: pid %d %s %d transitions; want pid %d MASTER %d", after1.PID, after1.Instances[0].State,
					after1.Instances[0].Transitions, before1.PID, before1.Instances[0].Transitions)
			}
			if after2.Instances[0].Transitions != before2.Instances[0].Transitions {
				t.Errorf("lb2 made %d transitions", after2.Instances[0].Transitions-before2.Instances[0].Transitions)
			}
			if r := streams.wait(t); r.Cut != 0 || r.Corrupt != 0 || r.Conns != 4 {
				t.Errorf("streams: %+v, want 4 untouched", r)
			}
		})
	}
}

// TestRestartHitlessVersionSkew: a new binary that reads none of the old
// one's state formats (VIPD_HANDOFF_FORMATS=99) gets the planned
// handover: `vipd restart` says it is not hitless and exits 0, the old
// process hands the VIP to lb2 with priority 0 and exits 0, and the new
// one starts fresh and preempts back.
func TestRestartHitlessVersionSkew(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "vipd-skew")
	script := fmt.Sprintf("#!/bin/sh\nVIPD_HANDOFF_FORMATS=99 exec %s \"$@\"\n", lab.Bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHitlessLab(t, nil, "VIPD_RESTART_EXEC="+wrapper)
	before, _ := h.n1.Status()
	code, res, stderr := restartCLI(t, h.n1)
	if code != 0 || res["outcome"] != "planned-handover" || !strings.Contains(fmt.Sprint(res["reason"]), "formats 99") {
		t.Fatalf("vipd restart: exit %d, %v, stderr %q", code, res, stderr)
	}
	if err := awaitExit(t, h.n1, 5*time.Second); err != nil {
		t.Errorf("the old process exited with %v, want 0", err)
	}
	if !strings.Contains(h.n1.Log(), "shutdown: new master") {
		t.Errorf("no priority-0 handover:\n%s", h.n1.Log())
	}
	if err := lab.WaitFor(10*time.Second, func() error {
		st, err := h.n1.Status()
		switch {
		case err != nil:
			return err
		case st.PID == before.PID || st.PID != int(res["new_pid"].(float64)):
			return fmt.Errorf("pid %d", st.PID)
		case len(st.Instances) == 0 || st.Instances[0].State != "MASTER":
			return fmt.Errorf("not MASTER yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("the new process: %v\n%s", err, h.n1.Log())
	}
	if !strings.Contains(h.n1.Log(), "starting fresh") {
		t.Errorf("the new process does not say it started fresh:\n%s", h.n1.Log())
	}
}

// httpUp reports whether the node's status page answers in its namespace.
func httpUp(h *lab.Host) bool {
	out, err := h.Exec(context.Background(), "bash", "-c",
		`exec 3<>/dev/tcp/127.0.0.1/9600 && printf 'GET /api/v1/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && head -1 <&3`).CombinedOutput()
	return err == nil && strings.Contains(string(out), " 200 ")
}

// ---- the streams helper: checksummed echo streams through the VIP ----

type streamsResult struct {
	Conns   int      `json:"conns"`
	Cut     int      `json:"cut"`
	Corrupt int      `json:"corrupt"`
	Bytes   int64    `json:"bytes"`
	Errors  []string `json:"errors,omitempty"`
}

type streams struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startStreams runs n echo streams from h to target for d.
func startStreams(t *testing.T, h *lab.Host, target string, n int, d time.Duration) *streams {
	t.Helper()
	self, _ := os.Executable()
	s := &streams{cmd: h.Exec(context.Background(), self, "-test.run=^$")}
	s.cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=hitless-streams", "VIPD_STREAMS_TARGET="+target,
		"VIPD_STREAMS_N="+strconv.Itoa(n), "VIPD_STREAMS_FOR="+d.String())
	s.cmd.Stdout, s.cmd.Stderr = &s.out, os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	return s
}

func (s *streams) wait(t *testing.T) streamsResult {
	t.Helper()
	s.cmd.Wait()
	var r streamsResult
	if err := json.Unmarshal(s.out.Bytes(), &r); err != nil {
		t.Fatalf("streams helper: %v: %q", err, s.out.String())
	}
	return r
}

// hitlessStreamsMain is the helper: each stream reads the banner line,
// then writes pseudo-random chunks (its own seed) every 20 ms and checks
// the echo byte for byte; at the end it half-closes and reads the rest up
// to EOF. A stream that ends early is cut; a byte that differs, corrupt.
func hitlessStreamsMain() int {
	target := os.Getenv("VIPD_STREAMS_TARGET")
	n, _ := strconv.Atoi(os.Getenv("VIPD_STREAMS_N"))
	d, _ := time.ParseDuration(os.Getenv("VIPD_STREAMS_FOR"))
	var mu sync.Mutex
	res := streamsResult{Conns: n}
	fail := func(cut bool, format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if cut {
			res.Cut++
		} else {
			res.Corrupt++
		}
		res.Errors = append(res.Errors, fmt.Sprintf(format, a...))
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				fail(true, "stream %d: dial: %v", i, err)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			if _, err := br.ReadString('\n'); err != nil {
				fail(true, "stream %d: banner: %v", i, err)
				return
			}
			done := make(chan error, 1)
			go func() {
				want := rand.New(rand.NewPCG(uint64(i), 1))
				got := make([]byte, 4096)
				var total int64
				for {
					k, err := br.Read(got)
					for j := range k {
						if got[j] != byte(want.Uint32()) {
							done <- fmt.Errorf("byte %d differs", total+int64(j))
							return
						}
					}
					total += int64(k)
					mu.Lock()
					res.Bytes += int64(k)
					mu.Unlock()
					if err == io.EOF {
						done <- nil
						return
					}
					if err != nil {
						done <- fmt.Errorf("read after %d bytes: %w", total, err)
						return
					}
				}
			}()
			src := rand.New(rand.NewPCG(uint64(i), 1))
			end := time.Now().Add(d)
			buf := make([]byte, 1024)
			for time.Now().Before(end) {
				for j := range buf {
					buf[j] = byte(src.Uint32())
				}
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(buf); err != nil {
					fail(true, "stream %d: write: %v", i, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := <-done; err != nil {
				fail(!strings.Contains(err.Error(), "differs"), "stream %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// TestRestartHitlessNewInterval: the backup restarts hitless too, and a
// restart of the master with advert_interval changed in its file (a
// setting reload refuses) applies it with no transition on either node:
// the backup follows the new interval.
func TestRestartHitlessNewInterval(t *testing.T) {
	h := newHitlessLab(t, nil)
	before1, _ := h.n1.Status()
	before2, _ := h.n2.Status()
	if code, res, stderr := restartCLI(t, h.n2); code != 0 || res["outcome"] != "handed-over" {
		t.Fatalf("restart of the backup: exit %d, %v, %q\n%s", code, res, stderr, h.n2.Log())
	}
	awaitExit(t, h.n2, 5*time.Second)
	data, err := os.ReadFile(h.n1.Config)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(data), `advert_interval = "200ms"`, `advert_interval = "300ms"`, 1)
	if changed == string(data) {
		t.Fatal("no advert_interval in the config")
	}
	if err := os.WriteFile(h.n1.Config, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, res, stderr := restartCLI(t, h.n1); code != 0 || res["outcome"] != "handed-over" {
		t.Fatalf("restart of the master: exit %d, %v, %q\n%s", code, res, stderr, h.n1.Log())
	}
	awaitExit(t, h.n1, 5*time.Second)
	if err := lab.WaitFor(3*time.Second, func() error {
		st, err := h.n2.Status()
		if err != nil || st.Instances[0].MasterIntervalMs != 300 {
			return fmt.Errorf("backup follows %v ms (%v)", st.Instances, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	time.Sleep(2 * time.Second) // well past the backup's Down_Interval
	after1, _ := h.n1.Status()
	after2, _ := h.n2.Status()
	if a, b := after1.Instances[0], before1.Instances[0]; a.State != "MASTER" || a.Transitions != b.Transitions || a.AdvertIntervalMs != 300 {
		t.Errorf("lb1: %s, %d transitions, advert %v ms; want MASTER, %d, 300", a.State, a.Transitions, a.AdvertIntervalMs, b.Transitions)
	}
	if a, b := after2.Instances[0], before2.Instances[0]; a.State != "BACKUP" || a.Transitions != b.Transitions || after2.PID == before2.PID {
		t.Errorf("lb2: %s, %d transitions, pid %d; want BACKUP, %d, a new pid (was %d)", a.State, a.Transitions, after2.PID, b.Transitions, before2.PID)
	}
}
