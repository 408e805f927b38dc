package daemon

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vipd/vipd/internal/control"
)

// TestReloadRefusesUnbuildableCheck: a new file whose health check cannot
// be built (its CA cannot be read) is refused before anything is applied,
// and the running config stays (issue 9, defect 4: the reload said ok and
// the servers ran without a check).
func TestReloadRefusesUnbuildableCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, newBus(), "lb1", baseConfig(""))
		settle(time.Second)
		n.mustState("MASTER")
		bad := strings.Replace(baseConfig(""), `check = { type = "none" }`, `check = { type = "tls", ca = "/nonexistent/ca.crt" }`, 1)
		if bad == baseConfig("") {
			t.Fatal("the test config has no check to replace")
		}
		before := n.d.cur.Load()
		_, err := n.reload(t, bad)
		if err == nil || !strings.Contains(err.Error(), "CA file: open /nonexistent/ca.crt") {
			t.Fatalf("reload: %v", err)
		}
		if !errors.Is(err, control.ErrInvalid) {
			t.Errorf("reload error %v does not wrap control.ErrInvalid (the CLI shows it as a 400)", err)
		}
		if n.d.cur.Load() != before {
			t.Error("the running config was replaced by the refused one")
		}
	})
}
