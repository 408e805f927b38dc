package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckGoodConfig(t *testing.T) {
	code, out, errs := runCLI(t, "check", "-c", "../../internal/config/testdata/design.toml")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "ok: 2 nodes, vrid-51: VRRPv3 vrid 51, advert 200ms") {
		t.Errorf("output %q", out)
	}
}

// TestCheckBadConfig: every error is reported as "error: FILE:LINE: ..."
// with a fix, all at once, and the exit code is 1.
func TestCheckBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte(`[vrrp]
vrid = 300
interface = "eth0"
vips = ["192.168.30.30"]
advert_intervall = "1s"

[[node]]
name = "lb1"
address = "192.168.30.21"
priority = 0
`), 0o644)
	code, _, errs := runCLI(t, "check", "-c", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"bad.toml:2:", "bad.toml:5:", "advert_interval", "bad.toml:10:"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		if !strings.HasPrefix(line, "error: "+path+":") {
			t.Errorf("line %q does not start with error: FILE:LINE:", line)
		}
	}
}

// TestCheckWarnsIneffectiveWeight: a tracker whose weight can never move
// the VIP is reported.
func TestCheckWarnsIneffectiveWeight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.toml")
	os.WriteFile(path, []byte(`[vrrp]
vrid = 51
interface = "eth0"
vips = ["192.168.30.30"]

[[node]]
name = "lb1"
address = "192.168.30.21"
priority = 150

[[node]]
name = "lb2"
address = "192.168.30.22"
priority = 100

[[track]]
name = "small"
type = "interface"
interface = "eth1"
weight = -10
`), 0o644)
	code, out, errs := runCLI(t, "check", "-c", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "warning:") || !strings.Contains(out, "can never move the VIP") {
		t.Errorf("no warning about the ineffective weight:\n%s", out)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, errs := runCLI(t, "frobnicate")
	if code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}

func TestClientWithoutDaemon(t *testing.T) {
	code, _, errs := runCLI(t, "status", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || !strings.Contains(errs, "is vipd running") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}

func TestServerUsage(t *testing.T) {
	code, _, errs := runCLI(t, "server", "drain", "nobackend")
	if code != 2 || !strings.Contains(errs, "BACKEND/SERVER") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}
