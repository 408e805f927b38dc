package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestManifestCommand(t *testing.T) {
	code, out, errs := runCLI(t, "manifest", "static-pod", "-c", "../../examples/control-plane-nodes.toml")
	if code != 0 || !strings.Contains(out, "kind: Pod") || !strings.Contains(errs, "warning: /proc/sys is read-only") {
		t.Errorf("static-pod: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "manifest", "-c", "../../examples/control-plane-nodes.toml", "talos", "--image", "reg.local/vipd:1")
	if code != 0 || !strings.Contains(out, "machine:") || !strings.Contains(out, "image: reg.local/vipd:1") {
		t.Errorf("talos: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

func TestManifestErrors(t *testing.T) {
	dir := t.TempDir()
	noHTTP := filepath.Join(dir, "nohttp.toml")
	os.WriteFile(noHTTP, []byte("[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [\"10.0.0.9\"]\n\n[[node]]\nname = \"a\"\naddress = \"10.0.0.1\"\n"), 0o644)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[vrrp]\nvrid = 300\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"manifest"}, 2, "usage: vipd manifest static-pod|talos"},
		{[]string{"manifest", "helm", "-c", noHTTP}, 2, "usage: vipd manifest"},
		{[]string{"manifest", "static-pod", "-c", noHTTP}, 1, "[http]"},
		{[]string{"manifest", "talos", "-c", bad}, 1, "bad.toml:2:"},
		{[]string{"manifest", "talos", "-c", filepath.Join(dir, "missing.toml")}, 1, "missing.toml"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("vipd %s: exit %d (want %d), stdout %q, stderr %q (want %q)", strings.Join(tc.args, " "), code, tc.code, out, errs, tc.want)
		}
	}
}
