package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vipd/vipd/internal/doctor"
)

// doctorEnv is the host as the live checks see it: eth0 up with the node's
// address, sysctls from n.sysctls (0 when unset), every route by eth0.
func (n *testNode) doctorEnv() doctor.Env {
	addr := map[string]string{"lb1": "10.99.0.11/24", "lb2": "10.99.0.12/24"}[n.name]
	if addr == "" {
		addr = "10.99.0.13/24"
	}
	none := errors.New("not in the unit tests")
	return doctor.Env{
		Links: func() ([]doctor.Link, error) {
			return []doctor.Link{{Name: "eth0", AdminUp: true, OperUp: true, Addrs: []doctor.Addr{{Prefix: netip.MustParsePrefix(addr)}}}}, nil
		},
		RouteIf: func(netip.Addr) (string, error) { return "eth0", nil },
		Sysctl: func(name string) (string, error) {
			if v, ok := n.sysctls.Load(name); ok {
				return v.(string), nil
			}
			if strings.Contains(name, "arp_announce") {
				return "2", nil
			}
			return "0", nil
		},
		Command: func(context.Context, string, ...string) ([]byte, error) { return nil, none },
	}
}

// Status carries doctor's live subset: a sysctl that weakens takeover
// shows within liveEvery, and goes when it is fixed.
func TestStatusLiveFindings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n := newNode(t, b, "lb1", baseConfig(""))
		n.sysctls.Store("net/ipv4/conf/eth0/rp_filter", "1")
		n.start()
		settle(time.Second)
		fs := n.d.Status().Findings
		if len(fs) != 1 || fs[0].Check != "sysctl" || fs[0].Severity != "warning" || !strings.Contains(fs[0].Seen, "net.ipv4.conf.eth0.rp_filter = 1 (strict)") {
			t.Fatalf("findings %+v, want the rp_filter warning", fs)
		}
		n.sysctls.Store("net/ipv4/conf/eth0/rp_filter", "2")
		settle(liveEvery)
		if fs := n.d.Status().Findings; len(fs) != 0 {
			t.Errorf("after the fix, findings %+v, want none", fs)
		}
	})
}
