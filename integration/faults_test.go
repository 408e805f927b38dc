package integration

// Proof under fire (issue 5): faults injected into the network, the
// processes, the backends and the clients, each asserting that at the end
// exactly one node owns the VIP, that no process crashed, and logging the
// figure docs/reliability.md quotes. Helpers shared by faults_*_test.go
// live here.

import (
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/control"
)

// downInterval is RFC 9568's Master_Down_Interval for a backup of the
// given priority at advert interval iv: 3*iv + (256-prio)*iv/256.
func downInterval(iv time.Duration, prio int) time.Duration {
	return 3*iv + time.Duration(256-prio)*iv/256
}

// alive asserts that the node's process still runs and its status answers.
func alive(t *testing.T, n *lab.Node) control.Status {
	t.Helper()
	if !n.Running() {
		t.Fatalf("%s exited\n%s", n.Name, n.Log())
	}
	var st control.Status
	err := lab.WaitFor(3*time.Second, func() error {
		var err error
		st, err = n.Status()
		return err
	})
	if err != nil {
		t.Fatalf("%s status does not answer: %v\n%s", n.Name, err, n.Log())
	}
	return st
}

// oneMaster waits until want is the only MASTER among nodes and the only
// host holding vip, and checks every node is alive.
func oneMaster(t *testing.T, vip netip.Addr, want *lab.Node, timeout time.Duration, nodes ...*lab.Node) {
	t.Helper()
	var hosts []*lab.Host
	for _, n := range nodes {
		hosts = append(hosts, n.Host)
	}
	err := lab.WaitFor(timeout, func() error {
		var masters []string
		for _, n := range nodes {
			if n.State() == "MASTER" {
				masters = append(masters, n.Name)
			}
		}
		if len(masters) != 1 || masters[0] != want.Name {
			return fmt.Errorf("masters %v, want only %s", masters, want.Name)
		}
		if h := lab.Holders(vip, hosts...); len(h) != 1 || h[0] != want.Host.Name {
			return fmt.Errorf("VIP held by %v, want only %s", h, want.Host.Name)
		}
		return nil
	})
	if err != nil {
		var logs strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&logs, "--- %s ---\n%s\n", n.Name, tail(n.Log(), 40))
		}
		t.Fatalf("%v\n%s", err, logs.String())
	}
	for _, n := range nodes {
		alive(t, n)
	}
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// stateWatch polls every node's state every 10 ms in its own goroutine (a
// stopped node blocks only its own series) until stopped.
type stateWatch struct {
	mu     sync.Mutex
	series [][]stateSample
	stop   chan struct{}
	wg     sync.WaitGroup
}

type stateSample struct {
	at    time.Time
	state string
}

func watchStates(t *testing.T, nodes ...*lab.Node) *stateWatch {
	w := &stateWatch{series: make([][]stateSample, len(nodes)), stop: make(chan struct{})}
	deadline := time.Now().Add(15 * time.Minute)
	for i, n := range nodes {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for k := 0; k < 1_000_000 && time.Now().Before(deadline); k++ {
				s := n.State()
				w.mu.Lock()
				if s != "" {
					w.series[i] = append(w.series[i], stateSample{time.Now(), s})
				}
				w.mu.Unlock()
				select {
				case <-w.stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	t.Cleanup(w.Stop)
	return w
}

func (w *stateWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// dualMaster returns the longest and the total time during which two or
// more nodes reported MASTER (each node's state is its last sample).
func (w *stateWatch) dualMaster() (longest, total time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	type ev struct {
		at    time.Time
		node  int
		state string
	}
	var evs []ev
	for i, s := range w.series {
		for _, x := range s {
			evs = append(evs, ev{x.at, i, x.state})
		}
	}
	// insertion sort by time (a few thousand samples at most)
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].at.Before(evs[j-1].at); j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	cur := make([]string, len(w.series))
	var start time.Time
	for _, e := range evs {
		cur[e.node] = e.state
		n := 0
		for _, s := range cur {
			if s == "MASTER" {
				n++
			}
		}
		switch {
		case n >= 2 && start.IsZero():
			start = e.at
		case n < 2 && !start.IsZero():
			d := e.at.Sub(start)
			total += d
			longest = max(longest, d)
			start = time.Time{}
		}
	}
	if !start.IsZero() && len(evs) > 0 {
		d := evs[len(evs)-1].at.Sub(start)
		total += d
		longest = max(longest, d)
	}
	return longest, total
}

// instance returns the first VRRP instance of a node's status.
func instance(t *testing.T, n *lab.Node) control.Instance {
	t.Helper()
	st := alive(t, n)
	if len(st.Instances) == 0 {
		t.Fatalf("%s has no VRRP instance", n.Name)
	}
	return st.Instances[0]
}

// lastTransitionTo is the time of the node's newest transition to state.
func lastTransitionTo(t *testing.T, n *lab.Node, state string) time.Time {
	t.Helper()
	for _, r := range instance(t, n).Recent {
		if r.To == state {
			return r.At
		}
	}
	return time.Time{}
}

// neighMAC is the lladdr of addr in host's neighbour table ("" if none).
func neighMAC(h *lab.Host, addr netip.Addr) string {
	out, _ := exec.Command("ip", "-n", h.NS, "neigh", "show", addr.String()).Output()
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

// poissonTail is P(X >= k) for X ~ Poisson(mean).
func poissonTail(mean float64, k int) float64 {
	p, term := 0.0, math.Exp(-mean)
	for i := 0; i < k; i++ {
		p += term
		term *= mean / float64(i+1)
	}
	return 1 - p
}

// countLog counts the lines of log (from byte offset from) holding every
// one of subs.
func countLog(log string, from int, subs ...string) int {
	if from > len(log) {
		from = len(log)
	}
	n := 0
	for _, line := range strings.Split(log[from:], "\n") {
		ok := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			n++
		}
	}
	return n
}
