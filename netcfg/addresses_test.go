package netcfg

import (
	"net"
	"net/netip"
	"slices"
	"testing"
)

// TestLocalAddrs: every address of the loopback interface is among the
// host's addresses, IPv4 ones in their 4-byte form (the daemon compares
// them with configured node addresses).
func TestLocalAddrs(t *testing.T) {
	local, err := LocalAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range local {
		if a.Is4In6() {
			t.Errorf("LocalAddrs() = %v: %s is IPv4-mapped", local, a)
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback == 0 {
			continue
		}
		as, err := ifi.Addrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			want, _ := netip.AddrFromSlice(ipn.IP)
			if !slices.Contains(local, want.Unmap()) {
				t.Errorf("LocalAddrs() = %v lacks %s of %s", local, want.Unmap(), ifi.Name)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Skip("SKIP: no loopback address to compare with")
	}
}
