package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestBeaconTextCleaned: a peer's name and state come off the wire; their
// control characters never reach the status (issue 9, defect 9).
func TestBeaconTextCleaned(t *testing.T) {
	p := newPeerTable()
	p.update(netip.MustParseAddr("10.0.0.12"), beacon{V: 1, Node: "lb2\x1b[2K\x1b[1Glb9 MASTER\r", State: "BACKUP\x1b[0m", Prio: 100}, time.Now())
	got := p.list(time.Now())
	if len(got) != 1 || strings.ContainsAny(got[0].Name+got[0].State, "\x1b\r") {
		t.Fatalf("peers %+v", got)
	}
	if got[0].State != "BACKUP[0m" || !strings.HasPrefix(got[0].Name, "lb2") {
		t.Errorf("peer %q / %q", got[0].Name, got[0].State)
	}
}
