package deb

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// stubbed are the commands the maintainer scripts run that change the
// system; the tests replace them with stubs that log their arguments.
var stubbed = []string{"systemctl", "deb-systemd-invoke", "deb-systemd-helper", "adduser", "getent", "chown", "chmod", "dpkg-statoverride", "vipd"}

// runScript runs a maintainer script as dpkg would (sh SCRIPT ARGS) with
// the system-changing commands stubbed, in a private mount namespace
// whose /run is an empty tmpfs, with /run/systemd/system present when
// systemd is to look as running. rc sets stub exit codes by "cmd arg1".
// It returns the commands run, one "cmd args" line each, and stderr.
func runScript(t *testing.T, script string, systemd bool, rc map[string]int, args ...string) ([]string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root (a mount namespace with its own /run)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("SKIP: needs unshare (util-linux)")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	for _, name := range stubbed {
		var cases strings.Builder
		for k, v := range rc {
			if cmd, arg, _ := strings.Cut(k, " "); cmd == name {
				fmt.Fprintf(&cases, "%q) exit %d ;;\n", arg, v)
			}
		}
		stub := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >> %s\ncase \"$1\" in\n%s*) exit 0 ;;\nesac\n", name, log, cases.String())
		if name == "getent" && rc["getent passwd"] == 0 {
			stub = fmt.Sprintf("#!/bin/sh\necho \"getent $*\" >> %s\necho 'vipd:x:104:108::/nonexistent:/usr/sbin/nologin'\n", log)
		}
		os.WriteFile(filepath.Join(bin, name), []byte(stub), 0o755)
	}
	body, err := scripts.ReadFile("debian/" + script)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, script)
	os.WriteFile(path, body, 0o755)
	setup := "mount -t tmpfs tmpfs /run"
	if systemd {
		setup += " && mkdir -p /run/systemd/system"
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		setup+` && PATH="$STUBS:$PATH" exec sh "$@"`, "sh", path)
	cmd.Args = append(cmd.Args, args...)
	cmd.Env = append(os.Environ(), "STUBS="+bin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", script, strings.Join(args, " "), err, out, stderr.String())
	}
	data, _ := os.ReadFile(log)
	var calls []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	return calls, stderr.String()
}

func TestPostinstFreshInstall(t *testing.T) {
	calls, _ := runScript(t, "postinst", true, map[string]int{"getent passwd": 2, "deb-systemd-helper debian-installed": 1, "dpkg-statoverride --list": 1}, "configure")
	want := []string{
		"getent passwd vipd",
		"adduser --system --group --quiet --no-create-home --home /nonexistent --shell /usr/sbin/nologin --gecos vipd daemon vipd",
		"dpkg-statoverride --list /etc/vipd/vipd.toml",
		"chown root:vipd /etc/vipd/vipd.toml",
		"chmod 0640 /etc/vipd/vipd.toml",
		"deb-systemd-helper debian-installed vipd.service",
		"deb-systemd-helper update-state vipd.service",
		"systemctl --system daemon-reload",
	}
	// Not enabled, not started: the shipped config is an example.
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("fresh install (-want +got):\n%s", diff)
	}
}

// An upgrade restarts a running vipd without a failover (vipd restart:
// the running daemon hands everything to the new binary).
func TestPostinstUpgradeRestartsHitless(t *testing.T) {
	calls, _ := runScript(t, "postinst", true, map[string]int{"getent passwd": 0, "dpkg-statoverride --list": 1}, "configure", "0.9")
	want := []string{
		"getent passwd vipd",
		"dpkg-statoverride --list /etc/vipd/vipd.toml",
		"chown root:vipd /etc/vipd/vipd.toml",
		"chmod 0640 /etc/vipd/vipd.toml",
		"deb-systemd-helper debian-installed vipd.service",
		"deb-systemd-helper --quiet was-enabled vipd.service",
		"deb-systemd-helper enable vipd.service", // an enabled unit stays enabled
		"deb-systemd-helper update-state vipd.service",
		"systemctl --system daemon-reload",
		"systemctl is-active --quiet vipd.service",
		"vipd restart -c /etc/vipd/vipd.toml", // hitless: no transition, no connection cut
	}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("upgrade (-want +got):\n%s", diff)
	}
}

// When the hitless restart rolls back (or vipd is not running), the
// upgrade restarts the unit like a drill: SIGTERM, priority 0, make
// before break.
func TestPostinstUpgradeFallsBackToTryRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		rc   map[string]int
		want []string
	}{
		{"rolled back", map[string]int{"vipd restart": 1}, []string{"systemctl is-active --quiet vipd.service", "vipd restart -c /etc/vipd/vipd.toml", "deb-systemd-invoke try-restart vipd.service"}},
		{"not running", map[string]int{"systemctl is-active": 3}, []string{"systemctl is-active --quiet vipd.service", "deb-systemd-invoke try-restart vipd.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, stderr := runScript(t, "postinst", true, tc.rc, "configure", "0.9")
			i := slices.Index(calls, "systemctl --system daemon-reload")
			if diff := cmp.Diff(tc.want, calls[i+1:]); diff != "" {
				t.Errorf("restart calls (-want +got):\n%s", diff)
			}
			if tc.rc["vipd restart"] != 0 && !strings.Contains(stderr, "did not complete") {
				t.Errorf("stderr %q: the rollback must be reported", stderr)
			}
		})
	}
}

func TestPostinstUpgradeRestartFailureIsReported(t *testing.T) {
	_, stderr := runScript(t, "postinst", true, map[string]int{"vipd restart": 1, "deb-systemd-invoke try-restart": 1}, "configure", "0.9")
	if !strings.Contains(stderr, "restart after the upgrade failed") || !strings.Contains(stderr, "journalctl -u vipd") {
		t.Errorf("stderr %q: a failed restart must be reported, and not fail the upgrade", stderr)
	}
}

func TestPostinstKeepsStatOverride(t *testing.T) {
	calls, _ := runScript(t, "postinst", true, map[string]int{"dpkg-statoverride --list": 0}, "configure", "0.9")
	for _, c := range calls {
		if strings.HasPrefix(c, "chown") || strings.HasPrefix(c, "chmod") {
			t.Errorf("%q despite a dpkg-statoverride for the config", c)
		}
	}
}

// TestScriptsWithoutSystemd: where systemd is not running (containers,
// chroots, this CI), no script asks systemctl for anything.
func TestScriptsWithoutSystemd(t *testing.T) {
	for _, tc := range [][]string{{"postinst", "configure"}, {"postinst", "configure", "0.9"}, {"prerm", "remove"}, {"prerm", "upgrade", "1.0"}, {"postrm", "remove"}, {"postrm", "purge"}} {
		calls, _ := runScript(t, tc[0], false, nil, tc[1:]...)
		for _, c := range calls {
			if strings.HasPrefix(c, "systemctl") || strings.HasPrefix(c, "deb-systemd-invoke") {
				t.Errorf("%s: %q with systemd not running", strings.Join(tc, " "), c)
			}
		}
	}
}

func TestPrermAndPostrm(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"prerm", "remove"}, []string{"deb-systemd-invoke stop vipd.service"}},
		{[]string{"prerm", "upgrade", "1.0"}, nil}, // the new postinst restarts it
		{[]string{"postrm", "remove"}, []string{"systemctl --system daemon-reload"}},
		{[]string{"postrm", "purge"}, []string{"deb-systemd-helper purge vipd.service"}},
		{[]string{"postrm", "upgrade", "1.0"}, nil},
	} {
		calls, _ := runScript(t, tc.args[0], true, nil, tc.args[1:]...)
		if diff := cmp.Diff(tc.want, calls); diff != "" {
			t.Errorf("%s (-want +got):\n%s", strings.Join(tc.args, " "), diff)
		}
	}
}

// TestScriptsNeverKill: no script signals vipd itself; stopping is
// systemd's, with the unit's KillSignal=SIGTERM (a handover).
func TestScriptsNeverKill(t *testing.T) {
	kill := regexp.MustCompile(`\b(kill|pkill|killall|start-stop-daemon)\b|SIGKILL|\s-9\b|--signal`)
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		body, _ := scripts.ReadFile("debian/" + name)
		for i, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if m := kill.FindString(line); m != "" {
				t.Errorf("%s:%d: %q", name, i+1, m)
			}
		}
	}
}

// TestUnitStopsWithSIGTERM: what `systemctl try-restart` and `stop` send
// is SIGTERM, with time for the handover before any SIGKILL.
func TestUnitStopsWithSIGTERM(t *testing.T) {
	unit, err := os.ReadFile("../../../examples/vipd.service")
	if err != nil {
		t.Fatal(err)
	}
	u := string(PackagedUnit(unit))
	if !regexp.MustCompile(`(?m)^KillSignal=SIGTERM$`).MatchString(u) {
		t.Error("the unit does not stop vipd with SIGTERM")
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)s$`).FindStringSubmatch(u)
	if m == nil {
		t.Error("no TimeoutStopSec=Ns in the unit")
	} else if n, _ := strconv.Atoi(m[1]); n < 10 {
		t.Errorf("TimeoutStopSec=%ds: the handover needs up to Down_Interval plus the exit", n)
	}
	if strings.Contains(u, "/usr/local/") || !strings.Contains(u, "ExecStart="+BinPath+" run") {
		t.Errorf("the packaged unit must run %s:\n%s", BinPath, u)
	}
}
