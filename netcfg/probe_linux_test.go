//go:build linux

package netcfg

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestProbe: B holds an IPv4 and an IPv6 VIP; A's probes find B's MAC for
// both and nothing for two free addresses, and B learns nothing about A's
// IPv4 side from them (an ARP probe carries sender IP 0.0.0.0).
func TestProbe(t *testing.T) {
	l := newLab6(t)
	vip4, vip6 := l.addr(100), l.addr6(0x10)
	ip(t, "-n", l.nsB, "addr", "add", vip4.String()+"/32", "dev", l.ifB)
	ip(t, "-n", l.nsB, "-6", "addr", "add", vip6.String()+"/128", "dev", l.ifB, "nodad")
	ip(t, "-n", l.nsB, "-4", "neigh", "flush", "dev", l.ifB)
	runHelper(t, l.nsA, "Probe", l.env6("NC_VIP4="+vip4.String(), "NC_VIP6="+vip6.String(),
		"NC_FREE4="+l.addr(101).String(), "NC_FREE6="+l.addr6(0x11).String()))
	if out := ip(t, "-n", l.nsB, "-4", "neigh", "show", "dev", l.ifB); strings.Contains(out, l.macA) {
		t.Errorf("B learnt A's MAC from a probe:\n%s", out)
	}
}

func TestHelperProbe(t *testing.T) {
	isHelper(t)
	vip4, vip6 := envAddr(t, "NC_VIP4"), envAddr(t, "NC_VIP6")
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	claims, err := Probe(ctx, ProbeConfig{Interface: env(t, "NC_IF_A"), Rounds: 2, Gap: 100 * time.Millisecond,
		Targets: []netip.Addr{vip4, envAddr(t, "NC_FREE4"), vip6, envAddr(t, "NC_FREE6")}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range claims {
		got = append(got, fmt.Sprintf("%s %s", c.Addr, c.MAC))
	}
	slices.Sort(got)
	want := []string{vip4.String() + " " + env(t, "NC_MAC_B"), vip6.String() + " " + env(t, "NC_MAC_B")}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("claims %q, want %q", got, want)
	}
	if _, err := Probe(ctx, ProbeConfig{Interface: "ncnosuchif0", Targets: []netip.Addr{vip4}}); err == nil {
		t.Error("Probe on a missing interface: no error")
	}
}
