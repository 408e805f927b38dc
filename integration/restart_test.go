package integration

import (
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// restartLoad is the short run's load: 100 checksummed streams (one in
// ten half-closed each way mid-run) and a new connection every 10 ms.
func restartLoad(restarts int, sys string, onBackup bool) lab.RestartScenario {
	return lab.RestartScenario{
		System: sys, OnBackup: onBackup, Restarts: restarts,
		Dwell: time.Second, Interval: 200 * time.Millisecond,
		Streams: lab.StreamOptions{N: 100, Every: 100 * time.Millisecond, Chunk: 256,
			ProbeEvery: 10 * time.Millisecond, Drain: 10 * time.Second},
	}
}

// TestRestartUnderLoad restarts the master, then the backup, of a vipd
// pair twice each with `vipd restart` under load: no stream is cut, no
// byte lost or repeated, no new connection fails, no VRRP transition, and
// the adverts go on. The last subtest checks the harness itself: today's
// SIGTERM + start does cut the master's streams, and the harness says so.
func TestRestartUnderLoad(t *testing.T) {
	lab.RequireRoot(t)
	for _, tc := range []struct {
		name     string
		onBackup bool
	}{{"master", false}, {"backup", true}} {
		t.Run(tc.name, func(t *testing.T) {
			sc := restartLoad(2, lab.SysVipdRestart, tc.onBackup)
			r := lab.RunRestartScenario(t, sc)
			t.Logf("%s: %+v", tc.name, r)
			if r.Restarts != sc.Restarts {
				t.Fatalf("%d of %d restarts done: %s", r.Restarts, sc.Restarts, r.Err)
			}
			s := r.Streams
			if s.Streams != sc.Streams.N || s.Cut != 0 || s.LostBytes != 0 || s.DupBytes != 0 || s.Corrupt != 0 {
				t.Errorf("streams: %d of %d, %d cut (%d reset), %d bytes lost, %d duplicated, %d corrupt: %v",
					s.Streams, sc.Streams.N, s.Cut, s.Reset, s.LostBytes, s.DupBytes, s.Corrupt, s.Why)
			}
			if s.HalfClosed != sc.Streams.N/5 {
				t.Errorf("%d half-closed streams ended in order, want %d", s.HalfClosed, sc.Streams.N/5)
			}
			if r.Probe.Failed != 0 || r.Probe.Attempts < 100 {
				t.Errorf("new connections: %d of %d failed: %v", r.Probe.Failed, r.Probe.Attempts, r.Probe.Fails)
			}
			if r.Peer != 0 || r.Node != 0 || r.NodeFresh || r.WireChanges != 0 || r.Resigns != 0 {
				t.Errorf("VRRP: peer %d, node %d (counter reset %v) transitions; on the wire %d master changes, %d priority-0 adverts",
					r.Peer, r.Node, r.NodeFresh, r.WireChanges, r.Resigns)
			}
			for i, g := range r.Gaps {
				if g > 2*sc.Interval {
					t.Errorf("restart %d: adverts %s apart, interval %s", i+1, g, sc.Interval)
				}
			}
		})
	}
	t.Run("SIGTERM cuts", func(t *testing.T) {
		sc := restartLoad(1, lab.SysVipdTerm, false)
		r := lab.RunRestartScenario(t, sc)
		t.Logf("SIGTERM + start: %+v", r)
		if r.Streams.Cut == 0 {
			t.Errorf("no stream cut by SIGTERM + start of the master: the harness sees nothing")
		}
		if r.Peer == 0 || r.WireChanges == 0 {
			t.Errorf("the handover to the backup went unseen: peer %d transitions, %d master changes on the wire", r.Peer, r.WireChanges)
		}
	})
}
