package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/config"
)

const importData = "../../internal/importer/testdata/"

// TestImportCLI: the contract of vipd import: TOML on stdout that passes
// vipd check, exit 0; every note on stderr in the form of the output's
// comments.
func TestImportCLI(t *testing.T) {
	code, out, errs := runCLI(t, "import",
		"--keepalived", "lb1="+importData+"hapair/keepalived-lb1.conf",
		"--keepalived", "lb2="+importData+"hapair/keepalived-lb2.conf",
		"--haproxy", importData+"hapair/haproxy.cfg")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	cfg, err := config.Parse("out.toml", []byte(out))
	if err != nil {
		t.Fatalf("stdout does not pass vipd check: %v", err)
	}
	if len(cfg.Nodes) != 2 || cfg.Nodes[0].Name != "lb1" || cfg.Instances[0].Version != 2 {
		t.Errorf("nodes %+v instances %+v", cfg.Nodes, cfg.Instances)
	}
	// The same check vipd check runs, on the written file.
	path := filepath.Join(t.TempDir(), "vipd.toml")
	os.WriteFile(path, []byte(out), 0o644)
	if code, _, cerr := runCLI(t, "check", "-c", path); code != 0 {
		t.Errorf("vipd check: exit %d: %s", code, cerr)
	}
	want := "not carried over (" + importData + "hapair/haproxy.cfg:4): chroot /var/lib/haproxy:"
	if !strings.Contains(errs, want) || !strings.Contains(out, "# "+want) {
		t.Errorf("the chroot line is not named on stderr and in the output:\n%s", errs)
	}
	if !strings.Contains(errs, "chosen (") || !strings.Contains(errs, "passes vipd check") {
		t.Errorf("stderr:\n%s", errs)
	}
	// Flags may come in any order; --address works.
	code, out, errs = runCLI(t, "import", "--haproxy", importData+"kubeadm/haproxy.cfg",
		"--address", "cp1=192.168.30.31", "--keepalived", "cp1="+importData+"kubeadm/keepalived-cp1.conf")
	if code != 0 || !strings.Contains(out, `address = "192.168.30.31"`) {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
}

// TestImportCLIRefusal: something essential that cannot be translated:
// exit 1, file:line errors on stderr, nothing on stdout.
func TestImportCLIRefusal(t *testing.T) {
	code, out, errs := runCLI(t, "import", "--keepalived", "lb1="+importData+"hand/lvs.conf")
	if code != 1 || out != "" {
		t.Fatalf("exit %d stdout %q", code, out)
	}
	if !strings.Contains(errs, "error: "+importData+"hand/lvs.conf:10: virtual_server") || !strings.Contains(errs, "nothing written") {
		t.Errorf("stderr:\n%s", errs)
	}
	// A node without an address: the error names the flag.
	code, _, errs = runCLI(t, "import", "--keepalived", "cp1="+importData+"kubeadm/keepalived-cp1.conf")
	if code != 1 || !strings.Contains(errs, "--address cp1=IP") {
		t.Errorf("exit %d\n%s", code, errs)
	}
}

// TestImportCLINotValid: a translation that vipd check refuses (the VIP is
// a node's own address and it is not the owner) exits 1 with the errors at
// lines of the output, which is still printed for the operator to fix.
func TestImportCLINotValid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.conf")
	os.WriteFile(path, []byte("vrrp_instance V {\n interface eth0\n virtual_router_id 9\n unicast_src_ip 10.0.0.1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n"), 0o644)
	code, out, errs := runCLI(t, "import", "--keepalived", "lb1="+path)
	if code != 1 || !strings.Contains(out, "[vrrp]") {
		t.Fatalf("exit %d stdout %q", code, out)
	}
	if !strings.Contains(errs, "error: "+generatedName+":") || !strings.Contains(errs, "own address") || !strings.Contains(errs, "does not pass vipd check") {
		t.Errorf("stderr:\n%s", errs)
	}
}

// TestImportCLIUsage: bad flags exit 2 and say why.
func TestImportCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to import"},
		{[]string{"--keepalived", "lb1"}, "NAME=FILE"},
		{[]string{"--keepalived", "=x.conf"}, "NAME=FILE"},
		{[]string{"--address", "lb1=not-an-ip", "--haproxy", "x"}, "not an IP address"},
		{[]string{"--haproxy", "x", "--address", "lb9=10.0.0.1"}, "--address lb9"},
		{[]string{"--keepalived", "a=x", "--keepalived", "a=y"}, "given twice"},
		{[]string{"--haproxy", "x", "extra"}, "unexpected argument"},
	} {
		code, out, errs := runCLI(t, append([]string{"import"}, tc.args...)...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d stdout %q stderr %q", tc.args, code, out, errs)
		}
	}
	if code, _, errs := runCLI(t, "help"); code != 0 {
		t.Errorf("help: %d %s", code, errs)
	} else if _, out, _ := runCLI(t, "help"); !strings.Contains(out, "vipd import  --keepalived NAME=FILE") {
		t.Errorf("usage lacks import:\n%s", out)
	}
}
