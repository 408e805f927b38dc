package netcfg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sysctls reads and writes kernel parameters. Names use the sysctl(8)
// dotted form ("net.ipv4.ip_forward") or the path form under /proc/sys
// ("net/ipv4/conf/eth0.100/arp_ignore"); use the path form, or
// InterfaceSysctl, when an interface name contains a dot.
type Sysctls interface {
	Get(name string) (string, error)
	// Set writes value unless the parameter already holds it.
	Set(name, value string) error
}

// InterfaceSysctl returns the path-form name of a per-interface IPv4
// parameter, e.g. InterfaceSysctl("eth0", "promote_secondaries"), which
// vipd wants set to 1 so that removing the node's primary address does not
// take a secondary VIP with it.
func InterfaceSysctl(ifname, key string) string {
	return "net/ipv4/conf/" + ifname + "/" + key
}

type procSysctls struct{ root string }

func (s procSysctls) path(name string) (string, error) {
	if !strings.Contains(name, "/") {
		name = strings.ReplaceAll(name, ".", "/")
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("%w: sysctl name %q", ErrInvalidConfig, name)
		}
	}
	return filepath.Join(s.root, name), nil
}

func (s procSysctls) Get(name string) (string, error) {
	p, err := s.path(name)
	if err != nil {
		return "", fmt.Errorf("netcfg: sysctl get %s: %w", name, err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("netcfg: sysctl get %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s procSysctls) Set(name, value string) error {
	cur, err := s.Get(name)
	if err != nil {
		return err
	}
	if cur == value {
		return nil
	}
	p, _ := s.path(name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("netcfg: sysctl set %s=%s: %w", name, value, err)
	}
	return nil
}
