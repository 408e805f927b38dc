package integration

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/bgp"
	"github.com/vipd/vipd/integration/lab"
)

// TestECMPRehash measures what a change in the set of announcing LBs does
// to established connections through a Linux/FRR router: 256 connections
// from 64 client addresses to the VIP, spread by the router's ECMP over
// three LBs; then one LB leaves (or joins) and every connection is probed.
// A connection the router now sends to another LB gets a reset from it.
//
// It is a measurement, not part of `make test`: run it with
//
//	VIPD_BENCH_ECMP=1 go test -count=1 -v -run '^TestECMPRehash$' ./integration/
//
// (make bench-ecmp); docs/bgp.md has the figures.
func TestECMPRehash(t *testing.T) {
	if os.Getenv("VIPD_BENCH_ECMP") == "" {
		t.Skip("SKIP: measurement; set VIPD_BENCH_ECMP=1 (make bench-ecmp)")
	}
	lab.RequireFRR(t)
	type scenario struct {
		name      string
		policy    int    // net.ipv4.fib_multipath_hash_policy on the router
		resilient string // "" = FRR's route (hash-threshold group); else the ip nexthop options
	}
	var rows []string
	for _, sc := range []scenario{
		{"FRR, L3 hash (default)", 0, ""},
		{"FRR, L4 hash", 1, ""},
		{"kernel resilient group, L4 hash", 1, "buckets 512 idle_timer 60"},
	} {
		for _, change := range []string{"leave", "join"} {
			t.Run(sc.name+" "+change, func(t *testing.T) {
				rows = append(rows, measureRehash(t, sc.policy, sc.resilient, change, sc.name))
			})
		}
	}
	t.Logf("\n| router | change | flows on staying LBs | of them broken | flows on the leaving LB | of them broken |\n|---|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

func measureRehash(t *testing.T, policy int, resilient, change, name string) string {
	r := lab.NewRouted(t, 3)
	r.Sysctl(r.Router, fmt.Sprintf("net.ipv4.fib_multipath_hash_policy=%d", policy))
	pki := lab.NewPKI(t, r.VIP)
	for _, lb := range r.LBs {
		lab.StartControlPlane(t, lb, pki) // banner with the LB's name + echo on :50000
	}
	n := r.Subnet.Addr().As4()[2]
	var sources []string
	for i := 0; i < 64; i++ {
		a := netip.AddrFrom4([4]byte{10, 79, n, byte(10 + i)})
		r.IPN(r.Client.NS, "addr", "add", a.String()+"/24", "dev", "eth0")
		sources = append(sources, a.String())
	}
	vip := r.VIPPrefix()
	all := lbAddrs(r)
	two := all[:2]

	var set func(gws []netip.Addr)
	if resilient == "" {
		rt := r.StartRouter(t, lab.RouterOptions{})
		sp := startSpeakers(t, r, rt, 0, nil)
		set = func(gws []netip.Addr) {
			for i, s := range sp {
				if contains(gws, r.LBs[i].Addr) {
					s.Announce(vip, bgp.Attrs{})
				} else {
					s.Withdraw(vip, "measurement")
				}
			}
		}
	} else {
		// FRR 8.4 cannot program resilient groups for BGP routes, so the
		// route is set by hand the way a router with resilient hashing
		// keeps it.
		for i, lb := range r.LBs {
			r.IPN(r.Router.NS, "nexthop", "add", "id", fmt.Sprint(i+1), "via", lb.Addr.String(), "dev", lb.Name)
		}
		set = func(gws []netip.Addr) {
			var ids []string
			for i, lb := range r.LBs {
				if contains(gws, lb.Addr) {
					ids = append(ids, fmt.Sprint(i+1))
				}
			}
			args := append([]string{"nexthop", "replace", "id", "100", "group", strings.Join(ids, "/"), "type", "resilient"}, strings.Fields(resilient)...)
			r.IPN(r.Router.NS, args...)
			r.IPN(r.Router.NS, "route", "replace", vip.String(), "nhid", "100")
		}
	}
	before, after := all, two
	if change == "join" {
		before, after = two, all
	}
	set(before)
	lab.AwaitNextHops(t, r.Router, vip, 10*time.Second, before...)

	flows := lab.StartFlows(t, r.Client, netip.AddrPortFrom(r.VIP, 50000).String(), sources, 4)
	perLB := map[string]int{}
	for _, o := range flows.Owner {
		perLB[o]++
	}
	if ok := flows.Probe(); countFalse(ok) != 0 {
		t.Fatalf("%d flows broken before any change", countFalse(ok))
	}
	set(after)
	lab.AwaitNextHops(t, r.Router, vip, 10*time.Second, after...)
	ok := flows.Probe()
	var stay, stayBroken, leave, leaveBroken int
	for i, o := range flows.Owner {
		if o == "lb3" && change == "leave" {
			leave++
			if !ok[i] {
				leaveBroken++
			}
			continue
		}
		stay++
		if !ok[i] {
			stayBroken++
		}
	}
	t.Logf("%s, lb3 %ss: flows per LB %v; staying %d (%d broken), leaving %d (%d broken)", name, change, perLB, stay, stayBroken, leave, leaveBroken)
	what := "lb3 leaves (3 -> 2)"
	leaveCols := fmt.Sprintf("%d | %d (%.0f%%)", leave, leaveBroken, pct(leaveBroken, leave))
	if change == "join" {
		what, leaveCols = "lb3 joins (2 -> 3)", "— | —"
	}
	return fmt.Sprintf("| %s | %s | %d | %d (%.0f%%) | %s |", name, what, stay, stayBroken, pct(stayBroken, stay), leaveCols)
}

func contains(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func countFalse(b []bool) int {
	n := 0
	for _, v := range b {
		if !v {
			n++
		}
	}
	return n
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
