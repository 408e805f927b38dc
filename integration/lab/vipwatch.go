//go:build linux

package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// VIPWatch records when each host added and removed an address, from the
// kernel's own address events rather than by sampling: a make-before-break
// handover overlaps for well under a millisecond, and a sampler would see
// it by chance. One `ip -ts monitor all-nsid address` in the root
// namespace reads the events of every host from one netlink socket, so
// they arrive in the order the kernel made them, whatever the load; it
// runs at a real-time priority (when allowed) so that its timestamps are
// close to the kernel's.
type VIPWatch struct {
	t     testing.TB
	addr  netip.Addr
	hosts []*Host
	nsids map[int]string // nsid in the root namespace -> host name
	cmd   *exec.Cmd
	done  chan struct{}

	mu      sync.Mutex
	initial map[string]bool
	events  []VIPEvent
	seen    map[string]bool // the readiness marker was seen per host
}

// VIPEvent is one host adding (Held) or removing the address.
type VIPEvent struct {
	At   time.Time
	Host string
	Held bool
}

// Span is a period of time.
type Span struct{ From, To time.Time }

// Len is the span's duration.
func (s Span) Len() time.Duration { return s.To.Sub(s.From) }

// watchMarker is added to and removed from lo to learn that the monitor
// is subscribed before the initial state is read.
const watchMarker = "127.77.77.77"

// WatchVIP starts the monitor, and reads the initial holders once it is
// known to be listening. It stops in t.Cleanup.
func WatchVIP(t testing.TB, addr netip.Addr, hosts ...*Host) *VIPWatch {
	t.Helper()
	w := &VIPWatch{t: t, addr: addr, hosts: hosts, nsids: map[int]string{}, initial: map[string]bool{}, seen: map[string]bool{},
		done: make(chan struct{})}
	for _, h := range hosts {
		id, err := nsid(h.NS)
		if err != nil {
			t.Fatal(err)
		}
		w.nsids[id] = h.Name
	}
	argv := []string{"ip", "-ts", "monitor", "all-nsid", "address"}
	if chrt, err := exec.LookPath("chrt"); err == nil && exec.Command(chrt, "-f", "10", "true").Run() == nil {
		argv = append([]string{chrt, "-f", "10"}, argv...)
	}
	w.cmd = exec.Command(argv[0], argv[1:]...)
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	t.Cleanup(w.stop)
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.line(sc.Text())
		}
		w.cmd.Wait()
	}()
	// The monitor subscribes some time after its process starts: the
	// marker is added (again) until it has been reported for every host.
	err = WaitFor(5*time.Second, func() error {
		var missing []string
		for _, h := range hosts {
			w.mu.Lock()
			seen := w.seen[h.Name]
			w.mu.Unlock()
			if !seen {
				exec.Command("ip", "-n", h.NS, "addr", "del", watchMarker+"/32", "dev", "lo").Run()
				exec.Command("ip", "-n", h.NS, "addr", "add", watchMarker+"/32", "dev", "lo").Run()
				missing = append(missing, h.NS)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("address monitor does not report %v yet", missing)
		}
		return nil
	})
	for _, h := range hosts {
		exec.Command("ip", "-n", h.NS, "addr", "del", watchMarker+"/32", "dev", "lo").Run()
	}
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	for _, h := range hosts {
		w.initial[h.Name] = h.HasAddr(addr)
	}
	// Events that arrived before the initial read describe the state the
	// read already saw.
	w.events = w.events[:0]
	w.mu.Unlock()
	return w
}

// nsid returns the id the root namespace has for the named namespace,
// assigning one if there is none (it goes with the namespace).
func nsid(ns string) (int, error) {
	for range 2 {
		out, err := exec.Command("ip", "-j", "netns", "list").Output()
		if err != nil {
			return 0, fmt.Errorf("ip netns list: %w", err)
		}
		var list []struct {
			Name string `json:"name"`
			ID   *int   `json:"id"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			return 0, fmt.Errorf("ip -j netns list: %w", err)
		}
		for _, n := range list {
			if n.Name == ns && n.ID != nil {
				return *n.ID, nil
			}
		}
		if out, err := exec.Command("ip", "netns", "set", ns, "auto").CombinedOutput(); err != nil {
			return 0, fmt.Errorf("ip netns set %s auto: %v: %s", ns, err, out)
		}
	}
	return 0, fmt.Errorf("namespace %s has no nsid", ns)
}

// line parses one line of `ip -ts monitor all-nsid address`:
//
//	[2026-12-02T10:27:08.880086] [nsid 3]2: eth0    inet 10.77.1.10/32 scope global eth0
//	[2026-12-02T10:27:08.883695] [nsid 3]Deleted 2: eth0    inet 10.77.1.10/32 ...
func (w *VIPWatch) line(l string) {
	if !strings.HasPrefix(l, "[") {
		return
	}
	end := strings.IndexByte(l, ']')
	if end < 0 {
		return
	}
	at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", l[1:end], time.Local)
	if err != nil {
		return
	}
	rest := strings.TrimSpace(l[end+1:])
	var id int
	if _, err := fmt.Sscanf(rest, "[nsid %d]", &id); err != nil {
		return
	}
	host, ok := w.nsids[id]
	if !ok {
		return // another namespace on this machine
	}
	rest = rest[strings.IndexByte(rest, ']')+1:]
	f := strings.Fields(rest)
	held := len(f) == 0 || f[0] != "Deleted"
	for i, x := range f {
		if (x != "inet" && x != "inet6") || i+1 >= len(f) {
			continue
		}
		a, _, _ := strings.Cut(f[i+1], "/")
		w.mu.Lock()
		switch a {
		case watchMarker:
			w.seen[host] = true
		case w.addr.String():
			w.events = append(w.events, VIPEvent{At: at, Host: host, Held: held})
		}
		w.mu.Unlock()
	}
}

// Events returns the address events since the watch started, oldest
// first (the monitors of different hosts report in their own time).
func (w *VIPWatch) Events() []VIPEvent {
	w.mu.Lock()
	ev := append([]VIPEvent(nil), w.events...)
	w.mu.Unlock()
	slices.SortStableFunc(ev, func(a, b VIPEvent) int { return a.At.Compare(b.At) })
	return ev
}

func (w *VIPWatch) initialHeld() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	held := map[string]bool{}
	for k, v := range w.initial {
		held[k] = v
	}
	return held
}

// Holders returns the hosts holding the address at time at, as the
// events recorded so far say.
func (w *VIPWatch) Holders(at time.Time) []string {
	held := w.initialHeld()
	for _, e := range w.Events() {
		if e.At.After(at) {
			break
		}
		held[e.Host] = e.Held
	}
	var out []string
	for _, h := range w.hosts {
		if held[h.Name] {
			out = append(out, h.Name)
		}
	}
	return out
}

// Spans returns the periods within [from, to] in which the number of
// holders satisfies keep (n >= 2: two holders; n == 0: nobody).
func (w *VIPWatch) Spans(from, to time.Time, keep func(n int) bool) []Span {
	held := w.initialHeld()
	events := w.Events()
	count := func() int {
		n := 0
		for _, v := range held {
			if v {
				n++
			}
		}
		return n
	}
	var out []Span
	var open time.Time
	i := 0
	for ; i < len(events) && !events[i].At.After(from); i++ {
		held[events[i].Host] = events[i].Held
	}
	if keep(count()) {
		open = from
	}
	for ; i < len(events) && events[i].At.Before(to); i++ {
		held[events[i].Host] = events[i].Held
		switch k := keep(count()); {
		case k && open.IsZero():
			open = events[i].At
		case !k && !open.IsZero():
			out = append(out, Span{open, events[i].At})
			open = time.Time{}
		}
	}
	if !open.IsZero() {
		out = append(out, Span{open, to})
	}
	return out
}

// Longest is the longest of spans (0 when none).
func Longest(spans []Span) time.Duration {
	var d time.Duration
	for _, s := range spans {
		d = max(d, s.Len())
	}
	return d
}

func (w *VIPWatch) stop() {
	if w.cmd.Process != nil {
		w.cmd.Process.Kill()
	}
	select {
	case <-w.done:
	case <-time.After(2 * time.Second):
	}
}
