package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/release"
	"github.com/vipd/vipd/internal/release/deb"
)

// TestDebianPackage builds the packages as `make package` does and checks
// them with Debian's own tools on this machine: lintian, then dpkg -i,
// systemd-analyze verify, the installed vipd, the config's owner and
// mode, an upgrade over a modified config, dpkg -r and dpkg -P. It
// installs into this machine's real root file system, so it refuses to
// run where vipd is already installed or /etc/vipd exists, and purges the
// package (and the vipd user, if it made it) in every case.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root (installs the package with dpkg)")
	}
	if testing.Short() {
		t.Skip("SKIP: -short (installs a package into this machine)")
	}
	for _, tool := range []string{"dpkg", "dpkg-query", "lintian", "systemd-analyze", "systemctl", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s not installed (.ci/deps installs it)", tool)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "vipd").Output(); err == nil && len(out) > 0 && !strings.Contains(string(out), "not-installed") {
		t.Skipf("SKIP: a vipd package is on this machine (%s); not touching it", out)
	}
	if _, err := os.Stat("/etc/vipd"); err == nil {
		t.Skip("SKIP: /etc/vipd exists (a manual install?); not touching it")
	}

	root, version, bins := releaseBinaries(t)
	dir := t.TempDir()
	pkgs := map[string]string{}
	for _, arch := range release.Arches {
		p, err := deb.Build(context.Background(), deb.Options{
			Root: root, Version: version, Arch: arch, Binary: bins[arch], HostBinary: bins[runtime.GOARCH],
			Out: dir, Date: release.SourceDate(root),
		})
		if err != nil {
			t.Fatal(err)
		}
		debVersion, _ := release.DebVersion(version)
		if filepath.Base(p) != "vipd_"+debVersion+"_"+arch+".deb" {
			t.Errorf("package file %s", filepath.Base(p))
		}
		if out, err := exec.Command("dpkg-deb", "-f", p, "Architecture").Output(); err != nil || strings.TrimSpace(string(out)) != arch {
			t.Errorf("%s: Architecture %q %v, want %s", filepath.Base(p), out, err, arch)
		}
		pkgs[arch] = p
	}

	t.Run("lintian", func(t *testing.T) {
		for _, arch := range release.Arches {
			t.Run(arch, func(t *testing.T) {
				t.Parallel()
				lintianClean(t, pkgs[arch], arch == runtime.GOARCH)
			})
		}
	})

	_, userErr := user.Lookup("vipd")
	madeUser := userErr != nil
	t.Cleanup(func() {
		// Purge even when the test failed halfway; then the user the
		// package made (Debian keeps it on purge; this machine should
		// not).
		dpkg(t, false, "--purge", "vipd")
		if madeUser {
			exec.Command("userdel", "vipd").Run()
			exec.Command("groupdel", "vipd").Run()
		}
	})
	pkg := pkgs[runtime.GOARCH]
	dpkg(t, true, "-i", pkg)
	files := installedFiles(t)

	t.Run("installed", func(t *testing.T) {
		for _, f := range []string{deb.BinPath, deb.UnitPath, deb.ManPath, deb.BashPath, deb.ZshPath, deb.DocDir + "/copyright", deb.ExamplesDir + "/ha-pair.toml"} {
			if !files[f] {
				t.Errorf("%s not installed", f)
			}
		}
		out, err := exec.Command(deb.BinPath, "version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "vipd "+version {
			t.Errorf("vipd version: %q %v, want %q", out, err, "vipd "+version)
		}
		if out, err := exec.Command("man", "-w", "vipd").Output(); err != nil || strings.TrimSpace(string(out)) != deb.ManPath {
			t.Errorf("man -w vipd: %q %v", out, err)
		}
		conffiles, _ := exec.Command("dpkg-query", "-W", "-f=${Conffiles}", "vipd").Output()
		if !strings.Contains(string(conffiles), deb.ConfPath+" ") {
			t.Errorf("conffiles: %q, want %s", conffiles, deb.ConfPath)
		}
		// Installed but not enabled: the shipped config is an example.
		if out, _ := exec.Command("systemctl", "is-enabled", "vipd").Output(); strings.TrimSpace(string(out)) != "disabled" {
			t.Errorf("systemctl is-enabled vipd: %q, want disabled", out)
		}
	})

	t.Run("config-owner", func(t *testing.T) { checkConfig(t) })

	t.Run("systemd-analyze", func(t *testing.T) {
		verify := func(unit string) (string, error) {
			out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
			return string(out), err
		}
		if out, err := verify(deb.UnitPath); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", deb.UnitPath, err, out)
		}
		// The check has teeth here: a unit whose binary is missing fails.
		unit, _ := os.ReadFile(deb.UnitPath)
		broken := filepath.Join(t.TempDir(), "vipd-broken.service")
		os.WriteFile(broken, bytes.ReplaceAll(unit, []byte(deb.BinPath+" run"), []byte("/usr/bin/vipd-missing run")), 0o644)
		if out, err := verify(broken); err == nil {
			t.Errorf("systemd-analyze verify accepts a unit without its binary:\n%s", out)
		}
	})

	t.Run("upgrade-keeps-config", func(t *testing.T) {
		// An operator's edit survives a reinstall (postinst configure with
		// the old version: the upgrade path), and stays 0640 root:vipd.
		f, err := os.OpenFile(deb.ConfPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("# edited by the operator\n")
		f.Close()
		dpkg(t, true, "--force-confold", "-i", pkg)
		if b, _ := os.ReadFile(deb.ConfPath); !strings.HasSuffix(string(b), "# edited by the operator\n") {
			t.Error("the operator's edit was lost on upgrade")
		}
		checkConfig(t)
	})

	t.Run("remove", func(t *testing.T) {
		dpkg(t, true, "-r", "vipd")
		var left []string
		for f := range files {
			if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
				left = append(left, f)
			}
		}
		if diff := cmp.Diff([]string{deb.ConfPath}, left); diff != "" {
			t.Errorf("files left after dpkg -r (-want +got):\n%s", diff)
		}
		if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "vipd").Output(); string(out) != "deinstall ok config-files" {
			t.Errorf("status after -r: %q", out)
		}
	})

	t.Run("purge", func(t *testing.T) {
		// Reinstall, enable as an operator would, then purge: nothing of
		// vipd is left, enable links and helper state included.
		dpkg(t, true, "-i", pkg)
		if out, err := exec.Command("systemctl", "enable", "vipd").CombinedOutput(); err != nil {
			t.Fatalf("systemctl enable vipd: %v %s", err, out)
		}
		dpkg(t, true, "-P", "vipd")
		for _, p := range []string{deb.ConfPath, "/etc/vipd", "/etc/systemd/system/multi-user.target.wants/vipd.service", "/var/lib/systemd/deb-systemd-helper-enabled/vipd.service.dsh-also"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s left after dpkg -P", p)
			}
		}
		for f := range files {
			if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
				t.Errorf("%s left after dpkg -P", f)
			}
		}
		if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "vipd").CombinedOutput(); strings.Contains(string(out), "installed") || strings.Contains(string(out), "config-files") {
			t.Errorf("status after -P: %q", out)
		}
	})
}

// lintianClean runs lintian: no error and no warning (lintian's own exit
// status), and, when overrides is set, only the two overrides the package
// justifies (internal/release/deb/debian/lintian-overrides).
func lintianClean(t *testing.T, pkg string, overrides bool) {
	t.Helper()
	out, err := exec.Command("lintian", "--fail-on", "error,warning", pkg).CombinedOutput()
	if err != nil || regexp.MustCompile(`(?m)^[EW]: `).Match(out) {
		t.Errorf("lintian %s: %v\n%s", filepath.Base(pkg), err, out)
	}
	if !overrides {
		return
	}
	out, err = exec.Command("lintian", "--show-overrides", "--fail-on", "none", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("lintian --show-overrides %s: %v\n%s", filepath.Base(pkg), err, out)
	}
	got := regexp.MustCompile(`(?m)^O: (.*)$`).FindAllStringSubmatch(string(out), -1)
	var tags []string
	for _, m := range got {
		tags = append(tags, m[1])
	}
	sort.Strings(tags)
	want := []string{"vipd: non-standard-file-perm 0640 != 0644 [etc/vipd/vipd.toml]", "vipd: statically-linked-binary [usr/bin/vipd]"}
	if diff := cmp.Diff(want, tags); diff != "" {
		t.Errorf("lintian overrides of %s (-want +got):\n%s", filepath.Base(pkg), diff)
	}
}

// checkConfig: /etc/vipd/vipd.toml is 0640 root:vipd, the daemon's user
// reads it, another user does not.
func checkConfig(t *testing.T) {
	t.Helper()
	fi, err := os.Stat(deb.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup("vipd")
	if err != nil {
		t.Fatalf("no group vipd: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || st.Uid != 0 || strconv.Itoa(int(st.Gid)) != g.Gid {
		t.Errorf("%s is %o %d:%d, want 0640 root:vipd (gid %s)", deb.ConfPath, fi.Mode().Perm(), st.Uid, st.Gid, g.Gid)
	}
	asUser := func(name string) ([]byte, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return nil, err
		}
		return exec.Command("setpriv", "--reuid="+u.Uid, "--regid="+u.Gid, "--init-groups", deb.BinPath, "check", "-c", deb.ConfPath).CombinedOutput()
	}
	// User vipd reads and parses the file. The shipped example names the
	// cluster CA the operator still has to put in place, and `vipd check`
	// builds every health check, so until then it says exactly that (and
	// the unit's ExecStartPre keeps vipd from starting on the example).
	out, err := asUser("vipd")
	readable := strings.Contains(string(out), deb.ConfPath+": ok: ") ||
		strings.Contains(string(out), "CA file: open /etc/vipd/kubernetes-ca.crt: no such file or directory")
	if !readable || strings.Contains(string(out), "permission denied") {
		t.Errorf("vipd check as user vipd: %v\n%s", err, out)
	}
	if out, err := asUser("nobody"); err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("user nobody can read the config: %v\n%s", err, out)
	}
}

// installedFiles lists what the package installed (dpkg -L).
func installedFiles(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("dpkg", "-L", "vipd").Output()
	if err != nil {
		t.Fatalf("dpkg -L vipd: %v", err)
	}
	files := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if f != "/." {
			files[f] = true
		}
	}
	return files
}

// dpkgLocked matches dpkg's complaint when apt or another dpkg holds the
// lock (someone else installing packages on this shared machine).
var dpkgLocked = regexp.MustCompile(`(?i)lock`)

// dpkg runs dpkg, waiting up to a minute for its lock; with must set a
// failure fails the test.
func dpkg(t *testing.T, must bool, args ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if dpkgLocked.Match(out) && time.Now().Before(deadline) {
			time.Sleep(time.Second)
			continue
		}
		if must {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		return
	}
}
