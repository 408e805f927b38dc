package daemon

import (
	"net/netip"
	"testing"

	"github.com/vipd/vipd/internal/control"
)

// TestOutrankedBy: when the master's vipd is gone, a backup leaves the
// takeover to a fresh, ready BACKUP peer that would win the election
// (higher priority, or the same and a higher address), and to no other.
func TestOutrankedBy(t *testing.T) {
	self, gone := netip.MustParseAddr("10.0.0.13"), netip.MustParseAddr("10.0.0.11")
	peer := func(name, addr, state string, prio int, ready, fresh bool) control.Peer {
		return control.Peer{Name: name, Addr: addr, Fresh: fresh,
			Instances: []control.PeerInstance{{Name: "vip", VRID: 51, State: state, EffectivePriority: prio, Ready: ready}}}
	}
	for _, tc := range []struct {
		name  string
		peers []control.Peer
		prio  int
		want  string // "" when not outranked
	}{
		{"higher backup", []control.Peer{peer("lb2", "10.0.0.12", "BACKUP", 100, true, true)}, 50, "lb2"},
		{"lower backup", []control.Peer{peer("lb2", "10.0.0.12", "BACKUP", 40, true, true)}, 50, ""},
		{"same priority, lower address", []control.Peer{peer("lb2", "10.0.0.12", "BACKUP", 50, true, true)}, 50, ""},
		{"same priority, higher address", []control.Peer{peer("lb4", "10.0.0.14", "BACKUP", 50, true, true)}, 50, "lb4"},
		{"the gone master itself", []control.Peer{peer("lb1", "10.0.0.11", "BACKUP", 150, true, true)}, 50, ""},
		{"stale beacon", []control.Peer{peer("lb2", "10.0.0.12", "BACKUP", 100, true, false)}, 50, ""},
		{"not ready", []control.Peer{peer("lb2", "10.0.0.12", "BACKUP", 100, false, true)}, 50, ""},
		{"in FAULT", []control.Peer{peer("lb2", "10.0.0.12", "FAULT", 100, true, true)}, 50, ""},
		{"another instance", []control.Peer{{Name: "lb2", Addr: "10.0.0.12", Fresh: true,
			Instances: []control.PeerInstance{{Name: "other", VRID: 52, State: "BACKUP", EffectivePriority: 100, Ready: true}}}}, 50, ""},
		{"the best of two", []control.Peer{peer("lb2", "10.0.0.12", "BACKUP", 100, true, true), peer("lb4", "10.0.0.14", "BACKUP", 120, true, true)}, 50, "lb4"},
	} {
		by, ok := outrankedBy(tc.peers, "vip", 51, tc.prio, self, gone)
		got := ""
		if ok {
			got = by.Name
		}
		if got != tc.want {
			t.Errorf("%s: outranked by %q, want %q", tc.name, got, tc.want)
		}
	}
}
