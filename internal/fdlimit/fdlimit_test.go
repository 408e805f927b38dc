package fdlimit

import (
	"strings"
	"syscall"
	"testing"

	"github.com/vipd/vipd/internal/config"
)

const pair = `
[vrrp]
vrid = 51
interface = "eth0"
vips = ["192.168.30.30"]

[[node]]
name = "lb1"
address = "192.168.30.21"

[[node]]
name = "lb2"
address = "192.168.30.22"

[[frontend]]
name = "kubernetes"
port = 6443
backend = "kube-apiserver"

[[frontend]]
name = "talos"
port = 50000
backend = "talos"

[[backend]]
name = "kube-apiserver"
servers = ["192.168.30.31:6443", "192.168.30.32:6443", "192.168.30.33:6443"]

[[backend]]
name = "talos"
servers = ["192.168.30.31:50000", "192.168.30.32:50000", "192.168.30.33:50000"]
check = { type = "none" }

[[track]]
name = "script"
type = "script"
command = ["/bin/true"]
weight = -60
`

func parse(t *testing.T, extra string) *config.Config {
	t.Helper()
	c, err := config.Parse("vipd.toml", []byte(pair+extra))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBudget: the reserve counts what the config runs, and the default
// leaves it free at RLIMIT_NOFILE (issue 9, defect 1: there was no
// default, so clients took every descriptor).
func TestBudget(t *testing.T) {
	c := parse(t, "")
	b := budget(c, 1024, 2)
	// 48 + 3x2 loops + 2 binds + 2x3 checks + 3x1 script + 16 + 16
	if b.Reserved != 97 || b.Binds != 2 || b.Checks != 3 || b.Scripts != 1 {
		t.Fatalf("budget %+v", b)
	}
	if b.MaxConn != (1024-97)/3 || b.Limit() != b.MaxConn {
		t.Errorf("MaxConn %d, Limit %d; want %d", b.MaxConn, b.Limit(), (1024-97)/3)
	}
	if b.Reserved+PerConn*b.MaxConn > 1024 {
		t.Errorf("the default takes %d descriptors of 1024", b.Reserved+PerConn*b.MaxConn)
	}
	want := "RLIMIT_NOFILE 1024: 97 kept for vipd itself (48 + 3 x 2 event loops + 2 listeners + 2 x 3 checks + 3 x 1 scripts + 16 control + 16 status page connections), so [global] maxconn defaults to (1024 - 97) / 3 = 309"
	if b.String() != want {
		t.Errorf("String() = %q\nwant       %q", b.String(), want)
	}
	if w := b.Warning(); w != "" {
		t.Errorf("warning %q", w)
	}

	if b := budget(c, 150, 2); b.MaxConn != 17 {
		t.Errorf("at 150: MaxConn %d, want 17", b.MaxConn)
	}
	if b := budget(c, 64, 2); b.MaxConn != 1 || !strings.Contains(b.Warning(), "RLIMIT_NOFILE 64 is below the 97") {
		t.Errorf("at 64: MaxConn %d, warning %q", b.MaxConn, b.Warning())
	}
	b = budget(parse(t, "\n[global]\nmaxconn = 100000\n"), 1024, 2)
	if b.Limit() != 100000 || !strings.Contains(b.Warning(), "[global] maxconn = 100000 needs about 300097 file descriptors, but RLIMIT_NOFILE is 1024") {
		t.Errorf("configured: limit %d, warning %q", b.Limit(), b.Warning())
	}
}

// TestRaise: the soft limit ends at the hard limit.
func TestRaise(t *testing.T) {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	orig := lim
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig)
	lim.Cur = min(lim.Max, 256)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	got, err := Raise()
	if err != nil || got != lim.Max {
		t.Errorf("Raise() = %d, %v; want %d", got, err, lim.Max)
	}
}
