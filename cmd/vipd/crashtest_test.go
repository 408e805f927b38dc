package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The crash triggers of the failover benchmark exist only in a binary
// built with -tags vipd_crashtest: the release build (make build) has none.
func TestCrashTriggersNotInRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: builds vipd twice (-short)")
	}
	dir := t.TempDir()
	marker := []byte("vipd crash test: a panic on a goroutine")
	for _, tt := range []struct {
		tags string
		want bool
	}{{"", false}, {"vipd_crashtest", true}} {
		bin := filepath.Join(dir, "vipd-"+tt.tags)
		args := []string{"build", "-trimpath", "-o", bin}
		if tt.tags != "" {
			args = append(args, "-tags", tt.tags)
		}
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(b, marker); got != tt.want {
			t.Errorf("tags %q: crash trigger in the binary = %v, want %v", tt.tags, got, tt.want)
		}
	}
}
