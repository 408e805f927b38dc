package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vipd/vipd/integration/lab"
)

// TestCheckBadConfigs: `vipd check -c BAD` on files with one kind of
// mistake each exits 1 and prints every error as "error: FILE:LINE: ..."
// naming the fix. (No root needed.) Hostile VRRP on the wire is
// TestMalformedAdverts and TestUnicast; the control socket's permissions
// are TestControlSocketPermissions.
func TestCheckBadConfigs(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: runs the vipd binary")
	}
	const vrrp = "[vrrp]\nvrid = 51\ninterface = \"eth0\"\nvips = [\"192.168.30.30\"]\n"
	const nodes = "\n[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\npriority = 150\n\n[[node]]\nname = \"lb2\"\naddress = \"192.168.30.22\"\npriority = 100\n"
	const fe = "\n[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\n"
	const be = "\n[[backend]]\nname = \"kube-apiserver\"\nservers = [\"192.168.30.31:6443\"]\n"
	cases := []struct {
		name, body string
		line       int    // a line an error must name
		fix        string // a piece of the fix the message must name
	}{
		{"typo-key", strings.Replace(vrrp, "vrid", "vird", 1) + nodes + fe + be, 2, `did you mean "vrid"`},
		{"syntax", "[vrrp]\nvrid = 51\ninterface = eth0\n" + nodes, 3, "TOML syntax"},
		{"priority-range", vrrp + strings.Replace(nodes, "150", "300", 1), 9, "use 1..254"},
		{"interval-unit", strings.Replace(vrrp, "vips", "advert_interval = 1\nvips", 1) + nodes + fe + be, 4, `write advert_interval = "1s"`},
		{"vip-hostname", strings.Replace(vrrp, "192.168.30.30", "vip.example.com", 1) + nodes + fe + be, 4, `write "192.168.30.30"`},
		{"backend-typo", vrrp + nodes + strings.Replace(fe, "kube-apiserver", "kube-apiservr", 1) + be, 19, `did you mean "kube-apiserver"`},
		{"server-no-port", vrrp + nodes + fe + strings.Replace(be, ":6443", "", 1), 23, `write "192.168.30.31:6443"`},
		{"balance", vrrp + nodes + strings.Replace(fe, "port", "balance = \"round-robin\"\nport", 1) + be, 18, `did you mean "roundrobin"`},
		{"node-as-table", vrrp + "\n[node]\nname = \"lb1\"\naddress = \"192.168.30.21\"\n" + fe + be, 6, "write [[node]]"},
		{"check-relative-ca", vrrp + nodes + fe + be + "check = { type = \"tls\", ca = \"ca.crt\" }\n", 24, `write "/etc/vipd/ca.crt"`},
		{"keepalived-habit", strings.Replace(vrrp, "vips", "nopreempt = true\nvips", 1) + nodes + fe + be, 4, "write preempt = false"},
		{"duplicate-port", vrrp + nodes + fe + strings.Replace(fe, "\"kubernetes\"", "\"k2\"", 1) + be, 23, "give one of them another port"},
	}
	dir := t.TempDir()
	prefix := regexp.MustCompile(`^error: (.+):(\d+): `)
	for _, c := range cases {
		path := filepath.Join(dir, c.name+".toml")
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(lab.Bin, "check", "-c", path).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%s: exit %v, want 1\n%s", c.name, err, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		named := false
		for _, l := range lines {
			m := prefix.FindStringSubmatch(l)
			if m == nil || m[1] != path {
				t.Errorf("%s: line %q does not start with \"error: %s:LINE: \"", c.name, l, path)
				continue
			}
			if m[2] == strconv.Itoa(c.line) {
				named = true
			}
		}
		if !named {
			t.Errorf("%s: no error names line %d\n%s", c.name, c.line, out)
		}
		if c.fix != "" && !strings.Contains(string(out), c.fix) {
			t.Errorf("%s: output does not name the fix %q:\n%s", c.name, c.fix, out)
		}
		t.Logf("%s: %s", c.name, lines[0])
	}
}
