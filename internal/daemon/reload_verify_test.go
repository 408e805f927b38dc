package daemon

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/control"
)

// TestReloadRefusesUnbuildableCheck: a new file whose health check cannot
// be built (its CA cannot be read) is refused before anything is applied,
// and the running config stays (issue 9, defect 4: the reload said ok and
// the servers ran without a check).
func TestReloadRefusesUnbuildableCheck(t *testing.T) {
	b := &bus{conns: map[netip.Addr]*busConn{}}
	n := startNode(t, b, "lb1", "10.99.0.11", "", freePort(t))
	waitState(t, n, "MASTER")
	path := n.d.opts.ConfigPath
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(orig), `check = { type = "none" }`, `check = { type = "tls", ca = "/nonexistent/ca.crt" }`, 1)
	if bad == string(orig) {
		t.Fatal("the test config has no check to replace")
	}
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	before := n.d.config()
	_, err = n.d.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "CA file: open /nonexistent/ca.crt") {
		t.Fatalf("reload: %v", err)
	}
	if !errors.Is(err, control.ErrInvalid) {
		t.Errorf("reload error %v does not wrap control.ErrInvalid (the CLI shows it as a 400)", err)
	}
	if n.d.config() != before {
		t.Error("the running config was replaced by the refused one")
	}
}
