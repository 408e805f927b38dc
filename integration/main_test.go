// Package integration runs real vipd processes, one per network namespace,
// on a bridge, with real stand-in control planes and clients. It needs
// root; without it every test skips with a visible SKIP line.
package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vipd/vipd/integration/lab"
)

func TestMain(m *testing.M) {
	// Helper processes: the test binary re-executed inside a namespace
	// (a prober, a stand-in apiserver) via `ip netns exec`.
	if role := os.Getenv("VIPD_TEST_HELPER"); role == "wildcard" {
		os.Exit(wildcardMain())
	} else if role == "hitless-streams" {
		os.Exit(hitlessStreamsMain())
	} else if role != "" {
		os.Exit(lab.HelperMain(role))
	}
	flag.Parse()
	if testing.Short() {
		// -short skips every test that needs the binary (SKIP lines
		// say so): nothing to build.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "vipd-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // tests run the CLI as nobody too
	lab.Bin = filepath.Join(dir, "vipd")
	build := exec.Command("go", "build", "-o", lab.Bin, "github.com/vipd/vipd/cmd/vipd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if bin := os.Getenv("VIPD_BIN"); bin != "" {
		// Another build (an older commit, for the "before" figures of
		// docs/reliability.md).
		build = exec.Command("cp", bin, lab.Bin)
	}
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build vipd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
