// Command benchstorm measures how fast a new master absorbs a reconnect
// storm, vipd against keepalived + HAProxy in one run. On a lab of network
// namespaces (two LB hosts, a stand-in API server, a client host) N client
// connections are held idle through VIP:6443; the master's LB stack is
// killed (SIGKILL), so every client sees its connection end at once and
// reconnects, retrying every -retry (jittered) while the VIP has not moved.
// Measured: from the backup holding the VIP (an `ip monitor` event in its
// namespace) to all N connections re-established, each one proven end to
// end by the server's banner. Systems alternate within each repetition and
// use the same advert interval. Needs root.
//
//	go run ./integration/benchstorm -n 4000 -reps 5
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// opts are the benchmark's settings.
type opts struct {
	n        int
	reps     int
	interval time.Duration // VRRP advert interval, both systems
	retry    time.Duration // client retry interval after a failed reconnect
	limit    time.Duration // give up on a storm after this long
	only     string
	perf     string // directory for perf profiles of the new master, or ""
}

// result is one storm.
type result struct {
	Takeover time.Duration // kill -> the backup holds the VIP
	AllBack  time.Duration // takeover -> the last connection re-established
	First    time.Duration // takeover -> the first one
	Spread   time.Duration // the first one -> the last one: the storm itself
	P50, P99 time.Duration // takeover -> each connection, percentiles
	Attempts float64       // connects per client, the failed ones included
	Missing  int           // connections not back within the limit
	CPU      time.Duration // the new master's LB processes, kill to all back
	Err      string
}

var systems = []string{"vipd", "keepalived + HAProxy"}

func main() {
	if role := os.Getenv("VIPD_STORM_ROLE"); role != "" {
		os.Exit(helperMain(role))
	}
	var o opts
	flag.IntVar(&o.n, "n", 4000, "client connections (each LB host holds 2 fds per connection)")
	flag.IntVar(&o.reps, "reps", 5, "repetitions per system, alternating")
	flag.DurationVar(&o.interval, "interval", 100*time.Millisecond, "VRRP advert interval of both systems")
	flag.DurationVar(&o.retry, "retry", 50*time.Millisecond, "client retry interval after a failed reconnect (jittered ±50%)")
	flag.DurationVar(&o.limit, "limit", 60*time.Second, "give up on a storm after this long")
	flag.StringVar(&o.only, "only", "", "run only the system whose name contains this (vipd, HAProxy)")
	out := flag.String("out", "", "markdown file whose \"## Reconnect storm\" section is (re)written")
	vipdBin := flag.String("vipd", "", "vipd binary to run (default: built from this tree)")
	flag.StringVar(&o.perf, "perf", "", "record the new master's LB processes with `perf record -g` during each storm into this directory")
	flag.Parse()
	root, err := lab.PrepareBench("vbs", *vipdBin)
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(root)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	interrupted := func() bool {
		select {
		case <-stop:
			fmt.Fprintln(os.Stderr, "benchstorm: interrupted; reporting the runs so far")
			return true
		default:
			return false
		}
	}
	started := time.Now()
	res := map[string][]result{}
	done := false
	for r := 0; r < o.reps && !done; r++ {
		for i := range systems {
			sys := systems[(i+r)%len(systems)] // alternate the order
			if o.only != "" && !strings.Contains(sys, o.only) {
				continue
			}
			if done = interrupted(); done {
				break
			}
			name := fmt.Sprintf("rep%d %s", r+1, sys)
			t := lab.NewBench(name, root)
			var rr result
			t.Run(func() { rr = runOne(t, sys, o) })
			if t.Failed() {
				rr.Err = t.FirstErr()
			}
			res[sys] = append(res[sys], rr)
			fmt.Fprintf(os.Stderr, "%-32s takeover %6s all back %6s first %6s first->all %6s p50 %6s p99 %6s attempts %.2f missing %d cpu %s %s\n",
				name, ms(rr.Takeover), ms(rr.AllBack), ms(rr.First), ms(rr.Spread), ms(rr.P50), ms(rr.P99), rr.Attempts, rr.Missing, ms(rr.CPU), rr.Err)
		}
	}
	md := report(res, o, time.Since(started))
	fmt.Println(md)
	if *out != "" {
		if err := writeSection(*out, md); err != nil {
			fatal(err)
		}
		fmt.Fprintln(os.Stderr, "wrote", *out)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchstorm:", err)
	os.Exit(1)
}

// runOne builds a lab, makes lb1 (150) master over lb2 (100), holds o.n
// connections through the VIP, kills lb1's LB stack and times the storm.
func runOne(t *lab.Bench, sys string, o opts) result {
	var r result
	l := lab.NewLab(t)
	lb1, lb2, client, cp := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("client", 100), l.AddHost("cp1", 21)
	vip := l.Addr(10)
	// The same accept backlog for both systems, large enough for the storm.
	backlog := max(4096, 2*o.n)
	for _, h := range []*lab.Host{lb1, lb2, cp} {
		sysctl(t, h, "net.core.somaxconn", backlog)
		sysctl(t, h, "net.ipv4.tcp_max_syn_backlog", backlog)
	}
	startBackend(t, cp)
	target := netip.AddrPortFrom(vip, 6443)
	backend := netip.AddrPortFrom(cp.Addr, 6443)

	var kill func()
	var masterPids func() []int // the new master's LB processes
	if sys == "vipd" {
		ns := l.StartNodes(t, lab.PairOptions{VIP: vip, AdvertInterval: o.interval.String(), Backends: []*lab.Host{cp},
			Check: `{ type = "tcp", interval = "500ms", timeout = "300ms", rise = 1, fall = 2 }`},
			[]lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
		ns[0].AwaitState("MASTER", 10*time.Second)
		ns[1].AwaitState("BACKUP", 5*time.Second)
		kill = func() { ns[0].Signal(syscall.SIGKILL) }
		masterPids = func() []int { return []int{ns[1].Pid()} }
	} else {
		cfg := haproxyConfig(target, backend, o.n)
		ha1 := l.StartHAProxyConfig(t, lb1, "haproxy1", cfg)
		ha2 := l.StartHAProxyConfig(t, lb2, "haproxy2", cfg)
		adv := strconv.FormatFloat(o.interval.Seconds(), 'f', -1, 64)
		k1 := l.StartKeepalived(t, lb1, "ka1", lab.KeepalivedOptions{VIP: vip, Priority: 150, AdvertInt: adv})
		k2 := l.StartKeepalived(t, lb2, "ka2", lab.KeepalivedOptions{VIP: vip, Priority: 100, AdvertInt: adv})
		k1.AwaitLog("Entering MASTER STATE", 0, 15*time.Second)
		k2.AwaitLog("Entering BACKUP STATE", 0, 5*time.Second)
		k1.AwaitVRRPChild(5 * time.Second)
		k2.AwaitVRRPChild(5 * time.Second)
		if err := lab.WaitFor(5*time.Second, func() error { return dialOnce(t, client, target) }); err != nil {
			t.Fatalf("HAProxy on lb1: %v", err)
		}
		kill = func() {
			// The master's LB stack crashes: HAProxy and keepalived.
			ha1.Signal(syscall.SIGKILL)
			k1.Crash()
			ha1.Kill()
		}
		masterPids = func() []int { return []int{ha2.Pid(), k2.Pid(), k2.VRRPPid()} }
	}
	lab.AwaitHolder(t, vip, lb1, 5*time.Second, lb1, lb2)

	cl := startClient(t, client, target, o)
	mon := watchAddr(t, lb2, vip)
	cpu0 := cpuOf(masterPids())
	stopPerf := startPerf(t, o.perf, sys, masterPids())
	// The harness's steps take about the same time in every run; a delay
	// uniform over one advert interval puts the kill at a random phase of
	// the master's advert timer.
	<-time.After(time.Duration(rand.Int64N(int64(o.interval))))
	killed := time.Now()
	kill()
	var took time.Time
	select {
	case took = <-mon:
	case <-time.After(15 * time.Second):
		t.Fatalf("lb2 did not take the VIP within 15s")
	}
	r.Takeover = took.Sub(killed)
	back := cl.wait(t, o.limit+10*time.Second)
	r.CPU = cpuOf(masterPids()) - cpu0
	stopPerf()
	var ds []time.Duration
	attempts := 0
	for _, c := range back {
		attempts += c.Attempts
		if c.Back.IsZero() {
			r.Missing++
			continue
		}
		ds = append(ds, c.Back.Sub(took))
	}
	if len(back) > 0 {
		r.Attempts = float64(attempts) / float64(len(back))
	}
	if len(ds) == 0 {
		t.Fatalf("no client reconnected")
	}
	slices.Sort(ds)
	r.First, r.AllBack = ds[0], ds[len(ds)-1]
	r.Spread = r.AllBack - r.First
	r.P50, r.P99 = ds[len(ds)/2], ds[len(ds)*99/100]
	if r.Missing > 0 {
		t.Errorf("%d of %d clients not back within %s", r.Missing, o.n, o.limit)
	}
	return r
}

// haproxyConfig is HAProxy in `mode tcp` with room for the storm and
// timeouts longer than the run, as a keepalived + HAProxy LB is deployed.
func haproxyConfig(bind, server netip.AddrPort, n int) string {
	return fmt.Sprintf(`global
    maxconn %d

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend k8s
    bind %s
    default_backend apiservers

backend apiservers
    server cp1 %s
`, n+1000, bind, server)
}

func sysctl(t *lab.Bench, h *lab.Host, key string, v int) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", fmt.Sprintf("%s=%d", key, v)).CombinedOutput(); err != nil {
		t.Fatalf("sysctl %s in %s: %v: %s", key, h.NS, err, out)
	}
}

// dialOnce connects from h to target and reads the banner (this binary
// re-executed in h's namespace as a one-connection client).
func dialOnce(t *lab.Bench, h *lab.Host, target netip.AddrPort) error {
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", h.NS, self)
	cmd.Env = append(os.Environ(), "VIPD_STORM_ROLE=dial", "VIPD_STORM_TARGET="+target.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// watchAddr reports when addr appears on h's eth0, from `ip monitor` (an
// event, not a poll). It returns once the monitor is seen to be subscribed:
// a marker address added to h's loopback has shown up in its output.
func watchAddr(t *lab.Bench, h *lab.Host, addr netip.Addr) <-chan time.Time {
	t.Helper()
	cmd := exec.Command("ip", "-n", h.NS, "monitor", "address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	const marker = "192.0.2.254" // TEST-NET-1, on h's loopback only
	subscribed, appeared := make(chan struct{}), make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(out)
		want := " inet " + addr.String() + "/"
		for sub := subscribed; sc.Scan(); {
			line := sc.Text()
			switch {
			case sub != nil && strings.Contains(line, " inet "+marker+"/"):
				close(sub)
				sub = nil
			case strings.Contains(line, want) && !strings.HasPrefix(line, "Deleted"):
				appeared <- time.Now()
				io.Copy(io.Discard, out)
				return
			}
		}
	}()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		// Until the monitor has subscribed an add goes unseen: delete and
		// add again.
		exec.Command("ip", "-n", h.NS, "addr", "del", marker+"/32", "dev", "lo").Run()
		if b, err := exec.Command("ip", "-n", h.NS, "addr", "add", marker+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("marker address in %s: %v: %s", h.NS, err, b)
		}
		select {
		case <-subscribed:
			exec.Command("ip", "-n", h.NS, "addr", "del", marker+"/32", "dev", "lo").Run()
			return appeared
		case <-tick.C:
		case <-deadline:
			t.Fatalf("ip monitor in %s: no event after 5s", h.NS)
		}
	}
}

// startPerf runs `perf record -g` on pids into dir (when set) until the
// returned function is called.
func startPerf(t *lab.Bench, dir, sys string, pids []int) (stop func()) {
	if dir == "" {
		return func() {}
	}
	var ps []string
	for _, p := range pids {
		if p > 0 {
			ps = append(ps, strconv.Itoa(p))
		}
	}
	file := filepath.Join(dir, strings.NewReplacer(" ", "-", "+", "").Replace(t.Name())+".data")
	cmd := exec.Command("perf", "record", "-q", "-g", "-e", "cpu-clock", "-o", file, "-p", strings.Join(ps, ","))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Logf("perf: %v", err)
		return func() {}
	}
	// perf needs a moment to attach; the kill comes after a random delay
	// of up to one advert interval anyway.
	time.Sleep(200 * time.Millisecond)
	return func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}
}

// cpuOf sums the CPU time (user+system) of pids, from /proc.
func cpuOf(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ 100
}

// ---- processes in the namespaces: this binary re-executed ----

func helperMain(role string) int {
	var err error
	switch role {
	case "backend":
		err = backendMain()
	case "client":
		err = clientMain()
	case "dial":
		err = dialMain()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchstorm", role+":", err)
		return 1
	}
	return 0
}

// backendMain is the stand-in API server: it greets each connection with
// its name and a newline, then reads until EOF, until SIGTERM.
func backendMain() error {
	ln, err := net.Listen("tcp", ":6443")
	if err != nil {
		return err
	}
	banner := []byte(os.Getenv("VIPD_STORM_NAME") + "\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(banner)
				io.Copy(io.Discard, c)
			}()
		}
	}()
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}

// startBackend runs backendMain in h's namespace.
func startBackend(t *lab.Bench, h *lab.Host) {
	t.Helper()
	out := startHelper(t, h, "backend", "VIPD_STORM_NAME="+h.Name)
	if err := awaitLine(out, "ready", 10*time.Second); err != nil {
		t.Fatalf("backend in %s: %v", h.NS, err)
	}
}

// startHelper runs this binary in h's namespace with the role and env; it
// is stopped with SIGTERM (then SIGKILL) in the cleanup.
func startHelper(t *lab.Bench, h *lab.Host, role string, env ...string) *bufio.Reader {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", h.NS, self)
	cmd.Env = append(append(os.Environ(), "VIPD_STORM_ROLE="+role), env...)
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return bufio.NewReader(pipe)
}

// awaitLine reads lines from r until one equals want.
func awaitLine(r *bufio.Reader, want string, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				errc <- fmt.Errorf("before %q: %w", want, err)
				return
			}
			if strings.TrimSpace(line) == want {
				errc <- nil
				return
			}
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("no %q after %s", want, timeout)
	}
}

// connResult is one client connection's storm.
type connResult struct {
	Lost     time.Time `json:"lost"`
	Back     time.Time `json:"back"` // zero: not back within the limit
	Attempts int       `json:"attempts"`
}

// client is the storm's client process.
type client struct {
	out  *bufio.Reader
	file string
}

// startClient opens o.n connections from h to target and returns once
// every one has read the server's banner and sits idle.
func startClient(t *lab.Bench, h *lab.Host, target netip.AddrPort, o opts) *client {
	t.Helper()
	file := filepath.Join(t.TempDir(), "storm.json")
	out := startHelper(t, h, "client", "VIPD_STORM_TARGET="+target.String(), "VIPD_STORM_N="+strconv.Itoa(o.n),
		"VIPD_STORM_RETRY="+o.retry.String(), "VIPD_STORM_LIMIT="+o.limit.String(), "VIPD_STORM_OUT="+file)
	if err := awaitLine(out, "ready", 2*time.Minute); err != nil {
		t.Fatalf("client: %v", err)
	}
	return &client{out: out, file: file}
}

// wait returns every connection's result once the client reports the
// storm over (all back, or its limit).
func (c *client) wait(t *lab.Bench, timeout time.Duration) []connResult {
	t.Helper()
	if err := awaitLine(c.out, "done", timeout); err != nil {
		t.Fatalf("client: %v", err)
	}
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	var rs []connResult
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// clientMain holds N connections, then reconnects each one as soon as it
// ends, retrying every VIPD_STORM_RETRY ±50% until it has read the
// server's banner again. It prints "ready" once all N are up and "done"
// (after writing the results) once all are back or the limit passed, and
// then holds the new connections until SIGTERM.
func clientMain() error {
	target := os.Getenv("VIPD_STORM_TARGET")
	n, _ := strconv.Atoi(os.Getenv("VIPD_STORM_N"))
	retry, _ := time.ParseDuration(os.Getenv("VIPD_STORM_RETRY"))
	limit, _ := time.ParseDuration(os.Getenv("VIPD_STORM_LIMIT"))
	if n <= 0 || n > 1_000_000 || retry <= 0 || limit <= 0 {
		return errors.New("bad VIPD_STORM_N, _RETRY or _LIMIT")
	}
	conns := make([]net.Conn, n)
	// Open the connections 64 at a time: the storm is the reconnect, not
	// this.
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var c net.Conn
			var err error
			for try := 0; try < 5; try++ {
				if c, err = connect(target, 5*time.Second); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			conns[i] = c
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("opening %d connections: %w", n, firstErr)
	}
	results := make([]connResult, n)
	var backWg sync.WaitGroup
	var armed sync.WaitGroup
	armed.Add(n)
	for i := range n {
		backWg.Go(func() {
			c := conns[i]
			armed.Done()
			one := make([]byte, 1)
			c.SetReadDeadline(time.Time{})
			c.Read(one) // blocks until the connection ends
			c.Close()
			r := &results[i]
			r.Lost = time.Now()
			deadline := r.Lost.Add(limit)
			for time.Now().Before(deadline) {
				r.Attempts++
				nc, err := connect(target, 3*time.Second)
				if err == nil {
					r.Back = time.Now()
					conns[i] = nc
					return
				}
				time.Sleep(time.Duration(float64(retry) * (0.5 + rand.Float64())))
			}
		})
	}
	armed.Wait()
	fmt.Println("ready")
	backWg.Wait()
	b, err := json.Marshal(results)
	if err != nil {
		return err
	}
	if err := os.WriteFile(os.Getenv("VIPD_STORM_OUT"), b, 0o644); err != nil {
		return err
	}
	fmt.Println("done")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

// connect dials target and reads the server's banner line: the connection
// is proven end to end, through the proxy to the server.
func connect(target string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", target, timeout)
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReaderSize(c, 64).ReadString('\n')
	if err != nil || len(line) < 2 {
		c.Close()
		return nil, fmt.Errorf("banner: %q, %v", line, err)
	}
	return c, nil
}

// dialMain makes one connection and reads the banner.
func dialMain() error {
	c, err := connect(os.Getenv("VIPD_STORM_TARGET"), 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// ---- report ----

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond)/time.Millisecond)
}

type summary struct {
	runs, errs                 int
	all, first, p50, p99, take time.Duration
	spread                     time.Duration
	allMin, allMax, cpu        time.Duration
	attempts                   float64
	missing                    int
}

func summarize(rs []result) summary {
	var s summary
	var all, first, p50, p99, take, cpu, spread []time.Duration
	var att []float64
	for _, r := range rs {
		if r.Err != "" {
			s.errs++
			continue
		}
		s.runs++
		all, first, p50, p99 = append(all, r.AllBack), append(first, r.First), append(p50, r.P50), append(p99, r.P99)
		take, cpu, att = append(take, r.Takeover), append(cpu, r.CPU), append(att, r.Attempts)
		spread = append(spread, r.Spread)
		s.missing += r.Missing
	}
	if s.runs == 0 {
		return s
	}
	s.all, s.first, s.p50, s.p99, s.take, s.cpu = lab.Median(all), lab.Median(first), lab.Median(p50), lab.Median(p99), lab.Median(take), lab.Median(cpu)
	s.allMin, s.allMax = slices.Min(all), slices.Max(all)
	s.spread = lab.Median(spread)
	slices.Sort(att)
	s.attempts = att[len(att)/2]
	return s
}

func report(res map[string][]result, o opts, took time.Duration) string {
	var b strings.Builder
	kernel, kav, hav := lab.Versions()
	load, _ := os.ReadFile("/proc/loadavg")

	b.WriteString("## Reconnect storm\n\n")
	fmt.Fprintf(&b, "Command (as root, in the repository): `go run ./integration/benchstorm %s` (also `make bench-storm`)  \n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&b, "Date: %s; machine: %d CPUs (nproc), kernel %s, %s; %s, %s; load average at the end %s; whole run %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), kernel,
		runtime.Version(), kav, hav, strings.Join(strings.Fields(string(load))[:3], " "), took.Round(time.Second))
	fmt.Fprintf(&b, `Setup: network namespaces on a bridge: two LB hosts (lb1 priority 150,
lb2 100), a stand-in API server that greets each connection with a line,
and a client host holding %d connections to VIP:6443, each proven by the
greeting, idle. Both systems advertise every %s. vipd serves VIP:6443 with
its own frontend; keepalived is paired with HAProxy (`+"`mode tcp`"+`, maxconn
%d, bound to VIP:6443 on both hosts with `+"`ip_nonlocal_bind`"+`). The accept
backlog (`+"`somaxconn`"+`, `+"`tcp_max_syn_backlog`"+`) is %d on every host. The
master's LB stack is killed with SIGKILL (vipd; or HAProxy and keepalived),
so its kernel ends every client connection at once; each client reconnects
at once and, refused while the VIP is still on lb1, retries every %s ±50%%
until it has read the greeting again. "All back" is from lb2 holding the
VIP (an `+"`ip monitor`"+` event in its namespace) to the last client reading
its greeting; the new master's CPU is that of its LB processes from the
kill to the last client back. Systems alternate within each repetition.

`, o.n, o.interval, o.n+1000, max(4096, 2*o.n), o.retry)
	b.WriteString("| system | runs | all back after takeover, median (min–max) | first back | first to last back | p50 | p99 | connects per client | new master CPU | takeover | not back |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	sums := map[string]summary{}
	for _, sys := range systems {
		rs, ok := res[sys]
		if !ok {
			continue
		}
		s := summarize(rs)
		sums[sys] = s
		runs := fmt.Sprint(s.runs)
		if s.errs > 0 {
			runs += fmt.Sprintf(" (+%d failed)", s.errs)
		}
		fmt.Fprintf(&b, "| %s | %s | %s (%s–%s) | %s | %s | %s | %s | %.2f | %s | %s | %d |\n", sys, runs,
			ms(s.all), ms(s.allMin), ms(s.allMax), ms(s.first), ms(s.spread), ms(s.p50), ms(s.p99), s.attempts, ms(s.cpu), ms(s.take), s.missing)
	}
	v, vok := sums[systems[0]]
	h, hok := sums[systems[1]]
	if vok && hok && v.runs > 0 && h.runs > 0 {
		ratio := float64(v.all) / float64(h.all)
		verdict := map[bool]string{true: "met", false: "**not met**"}[v.all < h.all && v.missing == 0]
		fmt.Fprintf(&b, "\nTarget: all %d clients back in less time than HAProxy needs: vipd %s / HAProxy %s = **%.2fx** (median of %d / %d runs): %s.\n",
			o.n, ms(v.all), ms(h.all), ratio, v.runs, h.runs, verdict)
		ratio2 := func(a, b time.Duration) string {
			if b <= 0 {
				return "–"
			}
			return fmt.Sprintf("%.2fx", float64(a)/float64(b))
		}
		fmt.Fprintf(&b, "First to last client back (the storm once the first client is through): vipd %s / HAProxy %s = %s.\n",
			ms(v.spread), ms(h.spread), ratio2(v.spread, h.spread))
		fmt.Fprintf(&b, "New master's CPU for the storm (10 ms ticks): vipd %s / keepalived + HAProxy %s = %s.\n", ms(v.cpu), ms(h.cpu), ratio2(v.cpu, h.cpu))
	}
	return b.String()
}

// writeSection replaces the "## Reconnect storm" section of path (up to
// the next "## " heading), or appends it.
func writeSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	section = strings.TrimRight(section, "\n") + "\n"
	out, ok := lab.ReplaceSection(string(old), "## Reconnect storm", section+"\n")
	if !ok {
		out = strings.TrimRight(string(old), "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(strings.TrimRight(out, "\n")+"\n"), 0o644)
}
