package verify

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/roottest"
)

// base is a valid config; the tests append to it.
const base = `
[vrrp]
vrid = 51
interface = "eth0"
vips = ["192.168.30.30/32"]

[[node]]
name = "lb1"
address = "192.168.30.21"
priority = 150

[[node]]
name = "lb2"
address = "192.168.30.22"
priority = 100

[[frontend]]
name = "kubernetes"
port = 6443
backend = "kube-apiserver"
`

func parse(t *testing.T, body string) *config.Config {
	t.Helper()
	c, err := config.Parse("vipd.toml", []byte(base+body))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

func backend(check string) string {
	return "\n[[backend]]\nname = \"kube-apiserver\"\nservers = [\"192.168.30.31:6443\", \"192.168.30.32:6443\"]\ncheck = " + check + "\n"
}

// TestMissingAndUnreadableFiles: a check whose CA, certificate or key
// cannot be read fails verification, once per backend, naming the file
// (issue 9, defect 4: `vipd check` said ok and the server ran unchecked).
func TestMissingAndUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.crt")
	notPEM := filepath.Join(dir, "ca.crt")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o644)
	for _, tc := range []struct{ name, check, want string }{
		{"missing CA", `{ type = "https", path = "/readyz", ca = "` + missing + `" }`, `[[backend]] "kube-apiserver" check: health: CA file: open ` + missing + `: no such file or directory`},
		{"CA not PEM", `{ type = "tls", ca = "` + notPEM + `" }`, "no PEM certificate found"},
		{"missing client key", `{ type = "tls", insecure_skip_verify = true, client_cert = "` + notPEM + `", client_key = "` + missing + `" }`, "client certificate " + notPEM + " / key " + missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config(parse(t, backend(tc.check)), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "vipd.toml: ") {
				t.Fatalf("err %v, want it to say %q", err, tc.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("%d errors for one bad file shared by two servers:\n%v", n, err)
			}
		})
	}
	if err := Config(parse(t, backend(`{ type = "tcp" }`)), Options{}); err != nil {
		t.Errorf("tcp check: %v", err)
	}
}

// asNobody writes body as a config file and verifies it in a copy of the
// test binary running as nobody, as `vipd check` runs in ExecStartPre as
// User=vipd. It returns the path and what the helper printed.
func asNobody(t *testing.T, body func(dir string) string) (string, string, error) {
	t.Helper()
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("SKIP: needs root (runs the check as nobody)")
	}
	dir, err := os.MkdirTemp("", "vipd-verify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self := roottest.Self(t, "verify.test")
	cfgPath := filepath.Join(dir, "vipd.toml")
	os.WriteFile(cfgPath, []byte(base+body(dir)), 0o644)
	cmd := exec.Command(self, "-test.run=^TestMain$")
	cmd.Env = append(os.Environ(), "VIPD_VERIFY_CONFIG="+cfgPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	return cfgPath, string(out), err
}

func TestMain(m *testing.M) {
	if path := os.Getenv("VIPD_VERIFY_CONFIG"); path != "" {
		c, err := config.Load(path)
		if err != nil {
			println("load:", err.Error())
			os.Exit(2)
		}
		if err := Config(c, Options{}); err != nil {
			println("verify:", err.Error())
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestUnreadableAsDaemonUser: the file exists but the daemon's user
// cannot read it (a 0600 root key under /etc/kubernetes/pki): the check
// fails and says who needs access.
func TestUnreadableAsDaemonUser(t *testing.T) {
	cfgPath, out, err := asNobody(t, func(dir string) string {
		key := filepath.Join(dir, "ca.crt")
		os.WriteFile(key, []byte("secret"), 0o600)
		return backend(`{ type = "https", path = "/readyz", ca = "` + key + `" }`)
	})
	if err == nil || !strings.Contains(out, "permission denied (checked as uid 65534") {
		t.Errorf("as nobody: %v\n%s", err, out)
	}
	// Root reads it, and so passes the file check (it is not a PEM file,
	// which is the next thing it would say).
	if err := Config(mustLoad(t, cfgPath), Options{}); err == nil || strings.Contains(err.Error(), "permission denied") {
		t.Errorf("as root: %v", err)
	}
}

// TestControlGroupMembership: the daemon's user must be in [control]
// group to give the socket to it (issue 9, defect 10: chown failed at
// start while `vipd check` passed).
func TestControlGroupMembership(t *testing.T) {
	_, out, err := asNobody(t, func(string) string {
		return backend(`{ type = "tcp" }`) + "\n[control]\ngroup = \"root\"\n"
	})
	if err == nil || !strings.Contains(out, `[control] group "root": uid 65534 (nobody) is not a member`) || !strings.Contains(out, "SupplementaryGroups=root") {
		t.Errorf("nobody and group root: %v\n%s", err, out)
	}
	_, out, err = asNobody(t, func(string) string {
		return backend(`{ type = "tcp" }`) + "\n[control]\ngroup = \"nogroup\"\n"
	})
	if err != nil {
		t.Errorf("nobody and its own group nogroup: %v\n%s", err, out)
	}
}

func mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCommands: a notify or track command that does not exist or is not
// executable fails; one that exists passes.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "hook.sh")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	for _, tc := range []struct{ name, body, want string }{
		{"notify missing", "\n[notify]\ncommand = [\"/nonexistent/vipd-notify\", \"x\"]\n", `[notify] command "/nonexistent/vipd-notify": no such file or directory`},
		{"notify not executable", "\n[notify]\ncommand = [\"" + noexec + "\"]\n", `[notify] command "` + noexec + `": permission denied`},
		{"track missing", "\n[[track]]\nname = \"api\"\ntype = \"script\"\ncommand = [\"no-such-vipd-check\"]\nweight = -60\n", `[[track]] "api" command "no-such-vipd-check": executable file not found in $PATH`},
		{"fine", "\n[notify]\ncommand = [\"/bin/true\"]\n\n[[track]]\nname = \"api\"\ntype = \"script\"\ncommand = [\"true\"]\nweight = -60\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config(parse(t, backend(`{ type = "tcp" }`)+tc.body), Options{})
			if tc.want == "" {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestControlGroup: a group that does not exist fails.
func TestControlGroup(t *testing.T) {
	err := Config(parse(t, backend(`{ type = "tcp" }`)+"\n[control]\ngroup = \"no-such-vipd-group\"\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), `[control] group "no-such-vipd-group": no such group`) {
		t.Errorf("missing group: %v", err)
	}
}

// TestScriptSecurity: a hook in a directory others can write is warned
// about; one under root-only directories is not.
func TestScriptSecurity(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	hook := filepath.Join(open, "hook.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\n"), 0o755)
	var warnings []string
	err := Config(parse(t, backend(`{ type = "tcp" }`)+"\n[notify]\ncommand = [\""+hook+"\"]\n"), Options{Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "directory "+open+" is writable by everyone (mode 0777)") {
		t.Errorf("warnings %q", warnings)
	}
	warnings = nil
	Config(parse(t, backend(`{ type = "tcp" }`)+"\n[notify]\ncommand = [\"/bin/true\"]\n"), Options{Warn: func(s string) { warnings = append(warnings, s) }})
	if len(warnings) != 0 {
		t.Errorf("/bin/true: warnings %q", warnings)
	}
}
