// Package roottest helps tests that need root to run a copy of the test
// binary as another user (nobody, with ambient capabilities or
// supplementary groups), the way systemd runs vipd as User=vipd. Go keeps
// test binaries in a directory only its owner may enter, so the copy goes
// to a fresh directory everyone may traverse.
package roottest

import (
	"os"
	"path/filepath"
	"testing"
)

// Self skips the test, saying why, unless it runs as root and without
// -short; otherwise it copies the running test binary to name in a fresh
// 0755 directory, removed at cleanup, and returns the copy's path.
func Self(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("SKIP: needs root (runs a copy of the test as another user)")
	}
	dir, err := os.MkdirTemp("", "vipd-roottest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
