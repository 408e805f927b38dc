package integration

// Hardening under abuse (issue 9): a connection flood at the file
// descriptor limit with the systemd watchdog on, and a bcrypt storm on
// the status page, each on a running pair. Both log the figures
// docs/reliability.md quotes; VIPD_BIN=<older build> measures the
// "before" column.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/control"
)

// notifyStandIn is systemd's notify socket for one vipd: it records when
// each WATCHDOG=1 arrives.
type notifyStandIn struct {
	conn  *net.UnixConn
	mu    sync.Mutex
	pings []time.Time
	other []string
}

func newNotifyStandIn(t *testing.T, path string) *notifyStandIn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifyStandIn{conn: c}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line == "WATCHDOG=1" {
					s.pings = append(s.pings, time.Now())
				} else {
					s.other = append(s.other, line)
				}
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

// longestGap is the longest time without a ping in [from, to], counting
// the edges.
func (s *notifyStandIn) longestGap(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, gap := from, time.Duration(0)
	for _, p := range s.pings {
		if p.Before(from) || p.After(to) {
			continue
		}
		gap = max(gap, p.Sub(last))
		last = p
	}
	return max(gap, to.Sub(last))
}

func (s *notifyStandIn) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.other {
		if l == "READY=1" {
			return true
		}
	}
	return false
}

// pageClient gets lb1's status page from inside the client's namespace.
func pageClient(from *lab.Host) *http.Client { return pageClientFrom(from) }

// pageClientFrom is pageClient whose connections come from the given
// source addresses in turn (the kernel's choice when there are none).
func pageClientFrom(from *lab.Host, srcs ...netip.Addr) *http.Client {
	var next atomic.Int64
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			var src netip.Addr
			if len(srcs) > 0 {
				src = srcs[int(next.Add(1)-1)%len(srcs)]
			}
			return lab.DialFromSource(from, src, addr, 2*time.Second)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

// TestFaultFDFloodWatchdog: lb1 runs under `prlimit --nofile=150` with a
// 2 s systemd watchdog (a stand-in notify socket), and a client opens 200
// idle connections through the VIP. Before: WATCHDOG=1 stopped for 16 s
// (a new socket per message: too many open files), `vipd status` timed
// out, the page answered nothing and net/http logged outside zerolog.
// Now: the default maxconn leaves descriptors free, so the watchdog keeps
// pinging, status and the page answer within 1 s, nothing fails over,
// and every log line is JSON.
func TestFaultFDFloodWatchdog(t *testing.T) {
	const nofile, clients = 150, 200
	var notify *notifyStandIn
	page := "\n[http]\nlisten = \":9600\"\nallow = [\"10.77.0.0/16\"]\n"
	c := newCPLabWith(t, limitedFrontend, func(name string) string {
		if name == "lb1" {
			return page
		}
		return ""
	}, func(n *lab.Node) {
		if n.Name != "lb1" {
			return
		}
		path := filepath.Join(filepath.Dir(n.LogPath), "notify.sock")
		notify = newNotifyStandIn(t, path)
		n.Env = []string{"NOTIFY_SOCKET=" + path, "WATCHDOG_USEC=2000000"}
		n.NoFile = nofile
	})
	awaitFrontend(t, c.n1, "open")
	if err := lab.WaitFor(5*time.Second, func() error {
		if !notify.ready() {
			return fmt.Errorf("no READY=1 from lb1")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	base := instance(t, c.n2).Transitions
	addr := c.vip.String() + ":7001"
	pageURL := fmt.Sprintf("http://%s:9600/api/v1/status", c.lb1.Addr)
	hc := pageClient(c.client)
	mark := len(c.n1.Log())

	var load []net.Conn
	t.Cleanup(func() { closeAll(load) })
	for i := 0; i < clients; i++ {
		conn, err := lab.DialFrom(c.client, addr, time.Second)
		if err == nil {
			load = append(load, conn)
		}
	}
	floodStart := time.Now()
	// Hold the flood for 3 watchdog periods, asking status and the page
	// meanwhile as an operator would.
	var statusWorst, pageWorst time.Duration
	statusFail, pageFail := 0, 0
	for time.Since(floodStart) < 6*time.Second {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := control.NewClient(c.n1.Socket).Status(ctx)
		cancel()
		if err != nil {
			statusFail++
		}
		statusWorst = max(statusWorst, time.Since(start))
		start = time.Now()
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("%s", resp.Status)
			}
		}
		cancel()
		if err != nil {
			pageFail++
		}
		pageWorst = max(pageWorst, time.Since(start))
		time.Sleep(200 * time.Millisecond)
	}
	floodEnd := time.Now()
	served, waiting, closed := 0, 0, 0
	for _, conn := range load {
		_, err := banner(conn, 20*time.Millisecond)
		var ne net.Error
		switch {
		case err == nil:
			served++
		case errorsAsTimeout(err, &ne):
			waiting++
		default:
			closed++
		}
	}
	stats, _ := c.n1.Stats()
	gap := notify.longestGap(floodStart, floodEnd)
	logTail := c.n1.Log()[mark:]
	raw := 0
	for _, line := range strings.Split(strings.TrimSpace(logTail), "\n") {
		var m map[string]any
		if line != "" && json.Unmarshal([]byte(line), &m) != nil {
			raw++
			if raw <= 3 {
				t.Logf("not a zerolog line: %q", line)
			}
		}
	}
	t.Logf("nofile %d, %d clients: %d served, %d waiting, %d closed; vipd %s", nofile, clients, served, waiting, closed, stats)
	t.Logf("longest time without WATCHDOG=1 under the flood: %s (pings every 1s, WatchdogSec 2s)", gap.Round(time.Millisecond))
	t.Logf("vipd status: worst %s, %d failed; page: worst %s, %d failed; lines outside zerolog: %d; EMFILE lines: %d",
		statusWorst.Round(time.Millisecond), statusFail, pageWorst.Round(time.Millisecond), pageFail, raw, countLog(logTail, 0, "too many open files"))

	if gap > 1500*time.Millisecond {
		t.Errorf("WATCHDOG=1 missing for %s under the flood; systemd would restart vipd after 2s", gap)
	}
	if statusFail > 0 || statusWorst > time.Second {
		t.Errorf("vipd status under the flood: %d failed, worst %s; want every answer within 1s", statusFail, statusWorst)
	}
	if pageFail > 0 || pageWorst > time.Second {
		t.Errorf("the page under the flood: %d failed, worst %s; want every answer within 1s", pageFail, pageWorst)
	}
	if closed > 0 {
		t.Errorf("%d clients were closed; at the limit they wait", closed)
	}
	if raw > 0 {
		t.Errorf("%d log lines outside zerolog", raw)
	}
	closeAll(load)
	load = nil
	if in := instance(t, c.n2); in.Transitions != base {
		t.Errorf("lb2 made %d transitions during the flood: %+v\n--- lb2 ---\n%s", in.Transitions-base, in.Recent, tail(c.n2.Log(), 30))
	}
	oneMaster(t, c.vip, c.n1, 5*time.Second, c.n1, c.n2)
}

func errorsAsTimeout(err error, ne *net.Error) bool {
	if e, ok := err.(net.Error); ok && e.Timeout() {
		*ne = e
		return true
	}
	return false
}

// TestBcryptStorm: 64 clients inside [http] allow send wrong passwords
// to lb1's page, each its next one 100 ms after the
// last answer (at most 640/s; before, 27/s held vipd at 150% CPU), while
// another process
// measures proxied connects (connect and the backend's banner through
// VIP:50000). Before: vipd sat at 150% CPU and the proxied connect went
// from 0.66 ms median to 552 ms (max 1.4 s), near Down_Interval. Now:
// bcrypt runs at most one or two at a time, each in a helper process at
// nice 19, the rest get 429 at once, a failing source backs off; proxied
// connect p99 stays within 2x its baseline and no VRRP transition
// happens.
//
// The baseline and the storm take turns, 500 ms each, 20 times each,
// and the prober, connecting every 5 ms, runs through all of them: about
// 1,800 connects on each side, so that p99 is not the 5th-worst sample. This machine is a VM whose
// host takes up to a third of its CPU (steal) in bursts of seconds; a
// baseline taken before the storm and compared with the storm after it
// compared two different hosts as often as it compared storm and no
// storm.
//
// The clients share the client's address, as in issue 9's report. A
// failed login makes its source wait (100 ms, doubling), so they get 8
// bcrypt checks through in 20 s and the storm is mostly one of instant
// 429s. VIPD_STORM_SOURCES=16 spreads them over 16 addresses, each with
// its own backoff: a check then waits whenever the bcrypt slot comes
// free, and the helpers run without a break (docs/reliability.md has
// that figure; it is not the default because its p99 ratio, 1.2-1.9x,
// leaves CI too little room below 2x).
func TestBcryptStorm(t *testing.T) {
	const (
		workers = 64
		turns   = 20
		turn    = 500 * time.Millisecond
		every   = 5 * time.Millisecond
		// guard drops the samples that began within it of a turn's
		// start: requests sent in the turn before are still answered. A
		// sample counts in the turn it began in, however long it took.
		guard = 50 * time.Millisecond
	)
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf("\n[http]\nlisten = \":9600\"\nallow = [\"10.77.0.0/16\"]\n\n[[http.user]]\nname = \"admin\"\npassword_hash = %q\n", hash)
	c := newCPLab(t, "", func(name string) string {
		if name == "lb1" {
			return page
		}
		return ""
	})
	awaitFrontend(t, c.n1, "talos")
	target := fmt.Sprintf("%s:50000", c.vip)
	pageURL := fmt.Sprintf("http://%s:9600/", c.lb1.Addr)
	base1, base2 := instance(t, c.n1).Transitions, instance(t, c.n2).Transitions

	var sources []netip.Addr
	n, _ := strconv.Atoi(os.Getenv("VIPD_STORM_SOURCES"))
	for i := range min(max(n, 0), 50) {
		src := c.Addr(200 + i)
		c.IPN(c.client.NS, "addr", "add", src.String()+"/24", "dev", "eth0")
		sources = append(sources, src)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var storming atomic.Bool
	var codes sync.Map
	var sent atomic.Int64
	var wg sync.WaitGroup
	hc := pageClientFrom(c.client, sources...)
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if !storming.Load() {
					select {
					case <-ctx.Done():
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
				req.SetBasicAuth("admin", "wrong"+strconv.Itoa(int(sent.Add(1))))
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					n, _ := codes.LoadOrStore(resp.StatusCode, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}

	type span struct {
		from, to time.Time
		storm    bool
	}
	var spans []span
	var cpuStorm, kidsStorm int
	var stormFor time.Duration
	p := lab.StartProberEvery(t, c.client, mustAddrPort(t, target), true, every)
	// The clients stand for hosts elsewhere, whose CPU the load balancer
	// does not share; here they share 2 CPUs with the prober, vipd and the
	// backends. At nice 19 they still send at the same rate (the request
	// count is logged), but a waking prober or backend no longer waits
	// behind them. The prober started before this, at nice 0.
	reniceSelf(t, 19)
	for i := range 2 * turns {
		storm := i%2 == 1
		storming.Store(storm)
		cpu0, kids0 := cpuTicks(t, c.n1.Pid()), childTicks(t, c.n1.Pid())
		from := time.Now()
		time.Sleep(turn)
		spans = append(spans, span{from, time.Now(), storm})
		if storm {
			cpuStorm += cpuTicks(t, c.n1.Pid()) - cpu0
			kidsStorm += childTicks(t, c.n1.Pid()) - kids0
			stormFor += time.Since(from)
		}
	}
	storming.Store(false)
	samples := p.Stop()
	cancel()
	wg.Wait()

	var baseline, storm []float64
	for _, s := range samples {
		ms := s.Ms
		if !s.OK {
			ms = 1e6 // a failure counts as the worst
		}
		for _, sp := range spans {
			if s.At.Before(sp.from.Add(guard)) || !s.At.Before(sp.to) {
				continue
			}
			if sp.storm {
				storm = append(storm, ms)
			} else {
				baseline = append(baseline, ms)
			}
		}
	}

	tally := map[int]int64{}
	codes.Range(func(k, v any) bool { tally[k.(int)] = v.(*atomic.Int64).Load(); return true })
	bp50, bp99 := percentile(baseline, 50), percentile(baseline, 99)
	sp50, sp99, smax := percentile(storm, 50), percentile(storm, 99), percentile(storm, 100)
	cpu := float64(cpuStorm) / ticksPerSecond / stormFor.Seconds() * 100
	kids := float64(kidsStorm) / ticksPerSecond / stormFor.Seconds() * 100
	t.Logf("baseline (%d turns of %s): %d proxied connects, median %.2f ms, p99 %.2f ms", turns, turn, len(baseline), bp50, bp99)
	t.Logf("storm (%d turns of %s, %d workers from %d extra addresses, %d requests, answers %v): %d proxied connects, median %.2f ms, p99 %.2f ms, max %.2f ms; vipd CPU %.0f%%, its password-check helpers %.0f%%",
		turns, turn, workers, len(sources), sent.Load(), tally, len(storm), sp50, sp99, smax, cpu, kids)
	if min(len(baseline), len(storm)) < turns*int(turn/every)/2 {
		t.Fatalf("too few samples to compare: %d in the baseline, %d in the storm", len(baseline), len(storm))
	}
	// A baseline p99 under 1 ms is the machine's noise: 2x of at least 1 ms.
	if limit := 2 * max(bp99, 1); sp99 > limit {
		t.Errorf("proxied connect p99 %.2f ms under the storm, want at most %.2f ms (2x the baseline)", sp99, limit)
	}
	if tally[http.StatusTooManyRequests] == 0 {
		t.Errorf("no 429 under the storm: %v", tally)
	}
	// The 401s came from helper processes at nice 19; a helper that failed
	// would have left its check to vipd, which logs that it did.
	if tally[http.StatusUnauthorized] == 0 || strings.Contains(c.n1.Log(), "password check could not run") {
		t.Errorf("the password checks did not run in their helper (answers %v):\n%s", tally, c.n1.Log())
	}
	if n1, n2 := instance(t, c.n1).Transitions-base1, instance(t, c.n2).Transitions-base2; n1+n2 != 0 {
		t.Errorf("VRRP transitions during the storm: lb1 %d, lb2 %d; want 0", n1, n2)
	}
	oneMaster(t, c.vip, c.n1, 2*time.Second, c.n1, c.n2)
}

// reniceSelf sets every thread of this test process to nice and back to
// 0 when the test ends (root may raise a priority again). Threads started
// meanwhile inherit it; the processes started before keep theirs.
func reniceSelf(t *testing.T, nice int) {
	t.Helper()
	set := func(n int) error {
		var done []string
		for range 10 {
			paths, _ := filepath.Glob("/proc/self/task/*")
			if slices.Equal(paths, done) {
				return nil
			}
			for _, p := range paths {
				tid, _ := strconv.Atoi(filepath.Base(p))
				if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil && err != unix.ESRCH {
					return err
				}
			}
			done = paths
		}
		return fmt.Errorf("threads kept appearing")
	}
	t.Cleanup(func() {
		if err := set(0); err != nil {
			t.Errorf("renice back to 0: %v", err)
		}
	})
	if err := set(nice); err != nil {
		t.Fatalf("renice to %d: %v", nice, err)
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// ticksPerSecond is USER_HZ, 100 on Linux.
const ticksPerSecond = 100

// percentile returns the p-th percentile (nearest rank) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
