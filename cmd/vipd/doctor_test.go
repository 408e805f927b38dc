package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/doctor"
)

// Bad flags exit 2 with a message; a config that does not load exits 2
// with one config finding per error, still a report under -o json.
func TestDoctorCLI(t *testing.T) {
	for _, args := range [][]string{
		{"doctor", "--listen", "0s"},
		{"doctor", "--listen", "1h"},
		{"doctor", "-o", "yaml"},
		{"doctor", "--bogus"},
	} {
		if code, _, errs := runCLI(t, args...); code != 2 || errs == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errs)
		}
	}
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte("[vrrp]\nvrid = 300\n"), 0o640)
	code, out, _ := runCLI(t, "doctor", "-c", path, "-o", "json")
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != 2 || len(r.Findings) != 3 || r.Findings[2].Check != "config" || r.Findings[2].Severity != "error" ||
		!strings.Contains(r.Findings[2].Seen, path+":2: [vrrp] vrid = 300") {
		t.Errorf("exit %d, report %+v", code, r)
	}
	code, out, _ = runCLI(t, "doctor", "-c", path)
	if code != 2 || !strings.Contains(out, "ERROR    config: "+path+":2:") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
}

// `vipd status` prints the live findings with their fix.
func TestStatusPrintsFindings(t *testing.T) {
	var b strings.Builder
	printStatus(&b, control.Status{Node: "lb1", Mode: "vrrp", Findings: []control.Finding{{Check: "sysctl", Severity: "warning",
		Seen: "net.ipv4.conf.eth0.rp_filter = 1 (strict): ...", Fix: "sysctl -w net.ipv4.conf.eth0.rp_filter=2"}}})
	if !strings.Contains(b.String(), "WARNING (sysctl): net.ipv4.conf.eth0.rp_filter = 1 (strict): ...\n  fix: sysctl -w net.ipv4.conf.eth0.rp_filter=2\n") {
		t.Errorf("status text:\n%s", b.String())
	}
}
