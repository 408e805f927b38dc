package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestBuildOffLinux: built for another OS (a laptop), the module's
// portable packages (config, import, vrrp, health, handoff...) compile,
// and the Linux-only ones stop the build with one clear message each
// (proxy: epoll, splice; integration/lab: network namespaces) instead of a
// page of undefined names. Every package that fails must fail only because
// it is, or imports, one of those two.
func TestBuildOffLinux(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: cross-builds the module (-short)")
	}
	for _, goos := range []string{"darwin"} { // FreeBSD builds too (checked by hand); one OS keeps make test short
		cmd := exec.Command("go", "build", "./...")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("GOOS=%s go build ./... succeeded: the Linux-only packages lost their build constraint", goos)
		}
		var errs []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.HasPrefix(line, "#") {
				continue // the "# package" headers
			}
			errs = append(errs, line)
		}
		want := regexp.MustCompile(`^(proxy/unsupported\.go:\d+:\d+: undefined: vipd_proxy_builds_only_on_linux_epoll_splice_ip_freebind|integration/lab/unsupported\.go:\d+:\d+: undefined: vipd_integration_lab_builds_only_on_linux_network_namespaces)$`)
		for _, e := range errs {
			if !want.MatchString(e) {
				t.Errorf("GOOS=%s: unexpected build error %q (want only the two build-constraint messages):\n%s", goos, e, out)
			}
		}
		if len(slices.Compact(slices.Sorted(slices.Values(errs)))) != 2 {
			t.Errorf("GOOS=%s: want exactly the two build-constraint messages, got:\n%s", goos, out)
		}
	}
}
