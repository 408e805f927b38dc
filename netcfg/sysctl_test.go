package netcfg

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSysctls(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "net", "ipv4", "conf", "eth0.100")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "promote_secondaries")
	if err := os.WriteFile(file, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := procSysctls{root: root}
	name := InterfaceSysctl("eth0.100", "promote_secondaries")
	if got, err := s.Get(name); err != nil || got != "0" {
		t.Fatalf("Get(%s) = %q, %v; want 0", name, got, err)
	}
	if err := s.Set(name, "1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(name); err != nil || got != "1" {
		t.Errorf("after Set: Get = %q, %v; want 1", got, err)
	}
	// Idempotent: an unwritable file holding the value is left alone.
	if err := os.Chmod(file, 0o444); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root ignores the mode bits
		if err := s.Set(name, "1"); err != nil {
			t.Errorf("Set to current value: %v", err)
		}
	}
	for _, bad := range []string{"net/../../etc/passwd", "net//x", ""} {
		if _, err := s.Get(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Get(%q) = %v, want ErrInvalidConfig", bad, err)
		}
	}
	if _, err := s.Get("net.ipv4.missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Get(missing) = %v, want ErrNotExist", err)
	}
}
