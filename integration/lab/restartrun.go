//go:build linux

package lab

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// The restart benchmark's scenario: an HA pair in namespaces (lb1
// priority 150 holds the VIP, lb2 100), a stream server behind it, a
// client holding N checksummed streams through VIP:6443 and connecting
// anew every 10 ms, a capture of the adverts on the segment, and R
// restarts of one LB process in a row. Used by integration/benchrestart
// and TestRestartUnderLoad.

// Restart systems.
const (
	SysVipdRestart = "vipd restart"             // hitless: sockets and state to the new process
	SysVipdTerm    = "vipd SIGTERM + start"     // today's planned handover and a fresh start
	SysHAProxy     = "HAProxy reload (-x, -sf)" // keepalived untouched
	SysKeepalived  = "keepalived stop + start"  // HAProxy untouched
	// SysHAProxyHard is the seamless reload with hard-stop-after 5s: the
	// old process is stopped 5 s after the reload, connections or not.
	SysHAProxyHard = "HAProxy reload, hard-stop-after 5s"
)

// RestartScenario is one run.
type RestartScenario struct {
	System   string
	OnBackup bool          // restart lb2 (the backup) instead of lb1
	Restarts int           // in a row
	Dwell    time.Duration // traffic between restarts (and before the first)
	Interval time.Duration // advert interval of both nodes
	Streams  StreamOptions
}

// RestartResult is what one run measured.
type RestartResult struct {
	System   string `json:"system"`
	OnBackup bool   `json:"on_backup"`
	Restarts int    `json:"restarts"` // done
	// Failed counts restarts that failed (vipd: rolled back to the old
	// process); Err is the first one's error.
	Failed int `json:"failed"`
	// Streams are the joined stream figures; Probe the new connections'.
	Streams StreamTotals `json:"streams"`
	Probe   ProbeStats   `json:"probe"`
	// Peer and Node are VRRP transitions counted by the peer and by the
	// restarted node over the run (vipd: status `transitions`;
	// keepalived: "Entering ... STATE" log lines). NodeFresh says the
	// node's counter started again (a new process that inherited none).
	Peer      int  `json:"peer_transitions"`
	Node      int  `json:"node_transitions"`
	NodeFresh bool `json:"node_fresh"`
	// WireChanges and Resigns are seen in the capture over the run: the
	// sender of the adverts changing, and priority-0 adverts.
	WireChanges int      `json:"wire_changes"`
	Resigns     int      `json:"resigns"`
	WireLog     []string `json:"wire_log,omitempty"`
	// Gaps is the longest time between adverts around each restart (from
	// its start to two intervals after it is done); Steady the longest
	// between restarts (the rest of the run: the machine's noise), and
	// SteadyChanges the master changes on the wire before the first.
	Gaps          []time.Duration `json:"gaps"`
	Steady        time.Duration   `json:"steady_gap"`
	SteadyChanges int             `json:"steady_changes"`
	// Took is each restart's time: the command (vipd restart), or from
	// the signal to the node back in its role with the VIP where it was.
	Took []time.Duration `json:"took"`
	// FDs and RSS (KiB) of the restarted LB process after the first
	// restart and after the last.
	FDFirst  int   `json:"fd_first"`
	FDLast   int   `json:"fd_last"`
	RSSFirst int64 `json:"rss_first_kib"`
	RSSLast  int64 `json:"rss_last_kib"`
	// HAProxy: old processes still running after the last restart, and
	// how long the longest-lived one ran after its reload.
	OldLeft   int           `json:"old_left"`
	LingerMax time.Duration `json:"linger_max"`
	Err       string        `json:"err,omitempty"`
}

// restartable is one system's restart, set up by the system's starter.
type restartable struct {
	// restart restarts the chosen node once and returns when it is back
	// in its role; took is the figure reported.
	restart func(i int) (took time.Duration, err error)
	pid     func() int // the restarted LB process now
	// transitions of the peer and of the restarted node.
	peer func() int
	node func() int
	// old lists the reloaded-away processes (HAProxy).
	old func() []*oldProc
}

// oldProc is a process a reload replaced.
type oldProc struct {
	p      *Proc
	since  time.Time
	mu     sync.Mutex
	exited time.Time
}

// watchOld records when o's process exits (polled every 20 ms, for at
// most an hour).
func watchOld(o *oldProc) {
	go func() {
		for end := time.Now().Add(time.Hour); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if !o.p.Running() {
				o.mu.Lock()
				o.exited = time.Now()
				o.mu.Unlock()
				return
			}
		}
	}()
}

func (o *oldProc) exitedAt() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.exited
}

// RunRestartScenario builds the lab, runs sc and returns its figures.
// Failures end it through t (Fatal), as a test's would.
func RunRestartScenario(t testing.TB, sc RestartScenario) RestartResult {
	res := RestartResult{System: sc.System, OnBackup: sc.OnBackup}
	if sc.Interval <= 0 {
		sc.Interval = 200 * time.Millisecond
	}
	l := NewLab(t)
	lb1, lb2, client, cp := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("client", 100), l.AddHost("cp1", 21)
	vip := l.Addr(10)
	for _, h := range []*Host{lb1, lb2, cp} {
		sysctlW(t, h, "net.core.somaxconn", 4096)
	}
	srv := StartStreamServer(t, cp, 6443, sc.Streams)
	var sys *restartable
	switch sc.System {
	case SysVipdRestart, SysVipdTerm:
		sys = startVipdPair(t, l, sc, vip, cp)
	case SysHAProxy, SysHAProxyHard, SysKeepalived:
		sys = startKeepalivedPair(t, l, sc, vip, cp)
	default:
		t.Fatalf("unknown system %q", sc.System)
	}
	AwaitHolder(t, vip, lb1, 10*time.Second, lb1, lb2)
	capt := StartVRRPCapture(t, client)
	cli := StartStreamClient(t, client, netip.AddrPortFrom(vip, 6443), sc.Streams)
	peer0, node0 := sys.peer(), sys.node()
	time.Sleep(sc.Dwell)
	steadyFrom := time.Now().Add(-sc.Dwell)
	res.SteadyChanges, _ = MasterChanges(capt.Adverts(), 51, steadyFrom, time.Now())
	quietFrom := steadyFrom
	runFrom := time.Now()
	for i := 1; i <= sc.Restarts; i++ {
		from := time.Now()
		res.Steady = max(res.Steady, AdvertGap(capt.Adverts(), 51, quietFrom, from))
		took, err := sys.restart(i)
		if err != nil {
			// A restart that failed (vipd: rolled back) is counted and
			// the run goes on: the next one is tried as an operator would.
			res.Failed++
			if res.Err == "" {
				res.Err = fmt.Sprintf("restart %d: %v", i, err)
			}
			t.Errorf("restart %d: %v", i, err)
		} else {
			res.Restarts++
			res.Took = append(res.Took, took)
		}
		pid := sys.pid()
		if i == 1 {
			res.FDFirst, res.RSSFirst = FDCount(pid), RSSKiB(pid)
		}
		res.FDLast, res.RSSLast = FDCount(pid), RSSKiB(pid)
		if i == (sc.Restarts+1)/2 {
			Half(srv, cli)
		}
		quietFrom = time.Now().Add(2 * sc.Interval)
		time.Sleep(sc.Dwell)
		res.Gaps = append(res.Gaps, AdvertGap(capt.Adverts(), 51, from, quietFrom))
	}
	runTo := time.Now()
	res.Steady = max(res.Steady, AdvertGap(capt.Adverts(), 51, quietFrom, runTo))
	if sys.old != nil {
		for _, o := range sys.old() {
			if o.p.Running() {
				res.OldLeft++
			}
		}
	}
	rep, srvSides := EndStreams(t, srv, cli, sc.Streams.Drain)
	res.Streams = JoinStreams(rep.Streams, srvSides)
	res.Probe = rep.Probe
	if sys.old != nil {
		// The old processes end with their last connection.
		WaitFor(10*time.Second, func() error {
			for _, o := range sys.old() {
				if o.p.Running() {
					return fmt.Errorf("old %s runs", o.p.Name)
				}
			}
			return nil
		})
		for _, o := range sys.old() {
			end := o.exitedAt()
			if end.IsZero() {
				end = time.Now()
			}
			res.LingerMax = max(res.LingerMax, end.Sub(o.since))
		}
	}
	res.Peer = sys.peer() - peer0
	res.Node = sys.node() - node0
	if res.Node < 0 {
		// A new process that did not carry the counter over.
		res.Node, res.NodeFresh = res.Node+node0, true
	}
	res.WireChanges, res.Resigns = MasterChanges(capt.Adverts(), 51, runFrom, runTo)
	res.WireLog = ChangeLog(capt.Adverts(), 51, runFrom, runTo)
	return res
}
