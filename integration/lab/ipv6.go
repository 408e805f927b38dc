//go:build linux

package lab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Subnet6 is the lab's IPv6 segment, fd77:N::/64 (ULA; N is the third
// octet of Subnet, written in hex digits as decimal reads, e.g. fd77:101::).
func (l *Lab) Subnet6() netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("fd77:%d::/64", l.Subnet.Addr().As4()[2]))
}

// Addr6 returns the address with interface identifier host on Subnet6:
// Addr6(0x10) is fd77:N::10.
func (l *Lab) Addr6(host uint16) netip.Addr {
	b := l.Subnet6().Addr().As16()
	b[14], b[15] = byte(host>>8), byte(host)
	return netip.AddrFrom16(b)
}

// EnableIPv6 adds Addr6(host)/64 to h's eth0 without duplicate address
// detection, waits until the link-local address has finished its own DAD
// (VRRP over IPv6 sends from it), and makes the new address h.Addr, the
// node address generated configs use. The IPv4 address stays.
func (l *Lab) EnableIPv6(h *Host, host uint16) netip.Addr {
	l.t.Helper()
	a := l.Addr6(host)
	l.IPN(h.NS, "-6", "addr", "add", a.String()+"/64", "dev", h.If, "nodad")
	err := WaitFor(10*time.Second, func() error {
		out, err := exec.Command("ip", "-n", h.NS, "-6", "addr", "show", "dev", h.If).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip addr: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "fe80::") || strings.Contains(string(out), "tentative") {
			return fmt.Errorf("%s: link-local address not ready:\n%s", h.Name, out)
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	h.Addr = a
	return a
}

// StartNodes6 is StartNodes for an IPv6 VIP (o.VIP) and nodes whose
// hosts went through EnableIPv6: the VIP is a /128.
func (l *Lab) StartNodes6(t testing.TB, o PairOptions, nodes []LBNode) []*Node {
	t.Helper()
	base := l.WriteConfig(t, o, nodes)
	data, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(data), o.VIP.String()+`/32"]`, o.VIP.String()+`/128"]`, 1)
	var out []*Node
	for _, n := range nodes {
		sock := filepath.Join(l.Dir(), n.Name+".sock")
		cfg := filepath.Join(l.Dir(), n.Name+".toml")
		b := body + fmt.Sprintf("\n[control]\nsocket = %q\n", sock)
		if o.PerNode != nil {
			b += o.PerNode(n.Name)
		}
		if err := os.WriteFile(cfg, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, l.StartNode(n.Host, n.Name, cfg, sock))
	}
	return out
}
