package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/roottest"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestMain lets a copy of the test binary act as vipd for `check --user`,
// which runs the program again as another user.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// designWithFiles is DESIGN.md's example with a CA and a track command that
// exist, in dir.
func designWithFiles(t *testing.T, dir string, caMode os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile("../../internal/config/testdata/design.toml")
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, selfSigned(t), caMode); err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "/etc/kubernetes/pki/ca.crt", ca)
	s = strings.ReplaceAll(s, "/usr/local/bin/check-something", "/bin/true")
	path := filepath.Join(dir, "vipd.toml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCheckGoodConfig(t *testing.T) {
	code, out, errs := runCLI(t, "check", "-c", designWithFiles(t, t.TempDir(), 0o644))
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "ok: 2 nodes, vrid-51: VRRPv3 vrid 51, advert 200ms") {
		t.Errorf("output %q", out)
	}
}

// TestCheckVerifiesFiles: what the file names must exist: DESIGN.md's
// example names a CA and a script this machine does not have (issue 9,
// defect 4: check said ok and the daemon ran without the check).
func TestCheckVerifiesFiles(t *testing.T) {
	code, _, errs := runCLI(t, "check", "-c", "../../internal/config/testdata/design.toml")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		`error: ../../internal/config/testdata/design.toml: [[backend]] "kube-apiserver" check: health: CA file: open /etc/kubernetes/pki/ca.crt: no such file or directory`,
		`error: ../../internal/config/testdata/design.toml: [[track]] "apiserver-local" command "/usr/local/bin/check-something": no such file or directory`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

// TestCheckAsUser: a CA only root can read passes a check run as root and
// fails `check --user nobody`, as it fails in ExecStartPre under
// User=vipd.
func TestCheckAsUser(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("SKIP: needs root (checks as nobody)")
	}
	dir, err := os.MkdirTemp("", "vipd-check-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	path := designWithFiles(t, dir, 0o600)
	self := roottest.Self(t, "vipd")
	out, err := exec.Command(self, "check", "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("as root: %v\n%s", err, out)
	}
	out, err = exec.Command(self, "check", "--user", "nobody", "-c", path).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "permission denied (checked as uid 65534 (nobody)") {
		t.Errorf("as nobody: %v\n%s", err, out)
	}
}

// TestCheckBadConfig: every error is reported as "error: FILE:LINE: ..."
// with a fix, all at once, and the exit code is 1.
func TestCheckBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte(`[vrrp]
vrid = 300
interface = "eth0"
vips = ["192.168.30.30"]
advert_intervall = "1s"

[[node]]
name = "lb1"
address = "192.168.30.21"
priority = 0
`), 0o644)
	code, _, errs := runCLI(t, "check", "-c", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"bad.toml:2:", "bad.toml:5:", "advert_interval", "bad.toml:10:"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		if !strings.HasPrefix(line, "error: "+path+":") {
			t.Errorf("line %q does not start with error: FILE:LINE:", line)
		}
	}
}

// TestCheckWarnsIneffectiveWeight: a tracker whose weight can never move
// the VIP is reported.
func TestCheckWarnsIneffectiveWeight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.toml")
	os.WriteFile(path, []byte(`[vrrp]
vrid = 51
interface = "eth0"
vips = ["192.168.30.30"]

[[node]]
name = "lb1"
address = "192.168.30.21"
priority = 150

[[node]]
name = "lb2"
address = "192.168.30.22"
priority = 100

[[track]]
name = "small"
type = "interface"
interface = "eth1"
weight = -10
`), 0o644)
	code, out, errs := runCLI(t, "check", "-c", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "warning:") || !strings.Contains(out, "can never move the VIP") {
		t.Errorf("no warning about the ineffective weight:\n%s", out)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, errs := runCLI(t, "frobnicate")
	if code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}

func TestClientWithoutDaemon(t *testing.T) {
	code, _, errs := runCLI(t, "status", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || !strings.Contains(errs, "is vipd running") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}

func TestServerUsage(t *testing.T) {
	code, _, errs := runCLI(t, "server", "drain", "nobackend")
	if code != 2 || !strings.Contains(errs, "BACKEND/SERVER") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}

// TestStatusQuotesRemoteText: text a backend or a peer sent is printed
// quoted, so escape sequences cannot repaint the table (issue 9, defect
// 9: a DOWN server showed as UP).
func TestStatusQuotesRemoteText(t *testing.T) {
	st := control.Status{
		Node: "lb1", Mode: "vrrp", Started: time.Now(),
		Peers:    []control.Peer{{Name: "lb2\x1b[2K", Addr: "10.0.0.12", State: "BACKUP", LastSeen: time.Now(), Fresh: true}},
		Trackers: []control.Tracker{{Name: "api", Type: "script", Detail: "exit 0: ok\tmore"}},
		Backends: []control.Backend{{Name: "kube-apiserver", Servers: []control.Server{
			{Name: "cp1", Addr: "10.0.0.21:6443", State: "DOWN", LastCheck: "failed: HTTP 500: \x1b[1A\x1b[2K\x1b[32mcp1 UP\x1b[0m"},
		}}},
	}
	var out bytes.Buffer
	printStatus(&out, st)
	s := out.String()
	if strings.ContainsAny(s, "\x1b\x07") {
		t.Errorf("raw control characters in the output:\n%q", s)
	}
	for _, want := range []string{`"lb2\x1b[2K"`, `"failed: HTTP 500: \x1b[1A\x1b[2K\x1b[32mcp1 UP\x1b[0m"`, `"exit 0: ok\tmore"`, "cp1"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %s:\n%s", want, s)
		}
	}
}

func TestDrainUsage(t *testing.T) {
	code, _, errs := runCLI(t, "drain", "lb1")
	if code != 2 || !strings.Contains(errs, "usage: vipd drain self [--undo]") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
	code, out, _ := runCLI(t, "help")
	if code != 0 || !strings.Contains(out, "vipd drain   self [--undo]") || !strings.Contains(out, "--bgp") {
		t.Errorf("usage lacks drain self or drill --bgp:\n%s", out)
	}
}

func TestCheckBGPConfig(t *testing.T) {
	// The example's CA, where `vipd check` can find it.
	dir := t.TempDir()
	b, err := os.ReadFile("../../examples/two-rack-bgp.toml")
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, selfSigned(t), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "two-rack-bgp.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "/etc/vipd/kubernetes-ca.crt", ca)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "check", "-c", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "ok: BGP AS 64512 announcing 1 VIPs to 2 routers") || strings.Contains(out, "warning") {
		t.Errorf("output %q", out)
	}
}

// TestStatusBGP: the BGP section of `vipd status`, with a router's text
// quoted like every other remote text.
func TestStatusBGP(t *testing.T) {
	st := control.Status{Node: "lb1", Mode: "bgp", Started: time.Now(), BGP: &control.BGP{
		ASN: 64512, RouterID: "10.1.0.21", Drained: true,
		Sessions: []control.BGPSession{{Peer: "10.1.0.1", ASN: 64500, State: "idle", LastError: "notification received: \x1b[2Kshut down"}},
		VIPs:     []control.BGPVIP{{VIP: "192.168.40.10", State: "withdrawn", Reason: "drained by the operator (vipd drain self)", Frontends: []string{"kubernetes"}}},
	}}
	var out bytes.Buffer
	printStatus(&out, st)
	s := out.String()
	for _, want := range []string{
		"BGP: AS 64512, router id 10.1.0.21, DRAINED",
		`"notification received: \x1b[2Kshut down"`,
		"192.168.40.10  WITHDRAWN  0        kubernetes  drained by the operator (vipd drain self)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("status lacks %q:\n%s", want, s)
		}
	}
	if strings.ContainsRune(s, '\x1b') {
		t.Errorf("raw escape in the output:\n%q", s)
	}
}
