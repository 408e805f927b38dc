package daemon

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

// TestRestoreAdmin: the new process puts DRAIN and MAINT servers back, a
// DRAIN with the time left to the old process's deadline (so a restart
// never lengthens a drain), and ignores READY ones.
func TestRestoreAdmin(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	p := &fakeProxy{}
	restoreAdmin(p, []serverSaved{
		{Backend: "api", Server: "cp1", Admin: "drain", DrainEnds: now.Add(90 * time.Second)},
		{Backend: "api", Server: "cp2", Admin: "maint"},
		{Backend: "api", Server: "cp3", Admin: "ready"},
		{Backend: "talos", Server: "cp1", Admin: "drain"}, // from a vipd that did not send the deadline
	}, now, zerolog.Nop())
	want := []string{"api/cp1 DRAIN 1m30s left", "api/cp2 maint", "talos/cp1 drain"}
	if diff := cmp.Diff(want, p.admin); diff != "" {
		t.Errorf("proxy calls (-want +got):\n%s", diff)
	}
}
