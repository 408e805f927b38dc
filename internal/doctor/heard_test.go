package doctor

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/vrrp"
)

// What one peer's adverts say, judged by the instance's own checks.
func TestVRRPHeard(t *testing.T) {
	stranger := netip.MustParseAddr("10.0.0.40")
	tests := []struct {
		name    string
		unicast bool
		pkts    func(t *testing.T) []pkt
		want    []string // "severity: words"
	}{
		{name: "in order", pkts: func(t *testing.T) []pkt {
			return []pkt{{b: advert(t, vrrp.Advertisement{Priority: 100}, lb2.Addr, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: lb2.Addr, dst: vrrp.IPv4Group, ttl: 255}}
		}},
		{name: "a routed hop away", pkts: func(t *testing.T) []pkt {
			return []pkt{{b: advert(t, vrrp.Advertisement{Priority: 100}, lb2.Addr, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: lb2.Addr, dst: vrrp.IPv4Group, ttl: 254}}
		}, want: []string{"error: adverts from lb2 (10.0.0.12) arrive with TTL 254, not 255"}},
		{name: "other checksum form and interval", pkts: func(t *testing.T) []pkt {
			return []pkt{{b: advert(t, vrrp.Advertisement{Priority: 100, MaxAdvertInterval: time.Second}, lb2.Addr, vrrp.IPv4Group, vrrp.ChecksumMessage), src: lb2.Addr, dst: vrrp.IPv4Group, ttl: 255}}
		}, want: []string{
			"warning: lb2 (10.0.0.12) advertises every 1s, this node every 200ms",
			"warning: lb2 (10.0.0.12) sends the rfc9568 checksum form, this node pseudo-header",
		}},
		{name: "peer unicast, we multicast", pkts: func(t *testing.T) []pkt {
			return []pkt{{b: advert(t, vrrp.Advertisement{Priority: 100}, lb2.Addr, lb1.Addr, vrrp.ChecksumPseudoHeader), src: lb2.Addr, dst: lb1.Addr, ttl: 255}}
		}, want: []string{"error: lb2 (10.0.0.12) sends unicast adverts (unicast = true there), this node multicast"}},
		{name: "peer multicast, we unicast", unicast: true, pkts: func(t *testing.T) []pkt {
			return []pkt{{b: advert(t, vrrp.Advertisement{Priority: 100}, lb2.Addr, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: lb2.Addr, dst: vrrp.IPv4Group, ttl: 255}}
		}, want: []string{"error: lb2 (10.0.0.12) sends its adverts to the multicast group, and this node has unicast = true"}},
		{name: "foreign router heard in unicast mode", unicast: true, pkts: func(t *testing.T) []pkt {
			// The runner drops a stranger before it looks at the VRID;
			// doctor still tells ours from another VRID.
			return []pkt{
				{b: advert(t, vrrp.Advertisement{Priority: 100}, stranger, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: stranger, dst: vrrp.IPv4Group, ttl: 255},
				{b: advert(t, vrrp.Advertisement{Priority: 100, VRID: 60}, netip.MustParseAddr("10.0.0.41"), vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: netip.MustParseAddr("10.0.0.41"), dst: vrrp.IPv4Group, ttl: 255},
			}
		}, want: []string{"error: router 10.0.0.40 on vrid 51 is not one of the [[node]]s"}},
		{name: "wrong password", pkts: func(t *testing.T) []pkt {
			return []pkt{{b: advert(t, vrrp.Advertisement{Version: 2, Priority: 100, MaxAdvertInterval: time.Second, AuthType: 1, AuthData: [8]byte{'x'}}, lb2.Addr, vrrp.IPv4Group, vrrp.ChecksumMessage), src: lb2.Addr, dst: vrrp.IPv4Group, ttl: 255}}
		}, want: []string{"error: peer 10.0.0.12 sends a different auth_pass: this node drops its adverts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testPlan().Instances[0]
			in.Receive.Unicast = tt.unicast
			if tt.name == "wrong password" {
				in.Receive.Machine.Version, in.Receive.AuthPass, in.Receive.Machine.AdvertInterval = 2, "secret", time.Second
			}
			table := newHeardTable()
			listenVRRP(&fakeSource{pkts: tt.pkts(t)}, vrrp.NewChecker(in.Receive), in.VRID, time.Now(), table)
			fs := vrrpFindings(testPlan(), in, table.list())
			if len(fs) != len(tt.want) {
				t.Fatalf("findings %+v, want %q", fs, tt.want)
			}
			for i, w := range tt.want {
				sev, seen, _ := strings.Cut(w, ": ")
				if fs[i].Severity != sev || !strings.Contains(fs[i].Seen, seen) || fs[i].Fix == "" {
					t.Errorf("finding %+v, want %s", fs[i], w)
				}
			}
		})
	}
}
