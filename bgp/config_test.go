package bgp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v4/api"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func u32(v uint32) *uint32 { return &v }

func TestCommunityRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Community
	}{
		{"64512:100", 64512<<16 | 100},
		{"0:0", 0},
		{"65535:65535", 0xFFFFFFFF},
		{"graceful-shutdown", 0xFFFF0000}, // RFC 8326 section 3
		{"no-export", 0xFFFFFF01},         // RFC 1997
		{"no-advertise", 0xFFFFFF02},
		{"no-export-subconfed", 0xFFFFFF03},
	} {
		got, err := ParseCommunity(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCommunity(%q) = %#x, %v; want %#x", tc.in, uint32(got), err, uint32(tc.want))
		}
		if s := got.String(); s != tc.in {
			t.Errorf("%#x.String() = %q, want %q", uint32(got), s, tc.in)
		}
	}
	for _, bad := range []string{"", "64512", "65536:1", "1:65536", "a:b", "-1:2", "1:2:3", "NO-EXPORT"} {
		if _, err := ParseCommunity(bad); !errors.Is(err, ErrCommunity) {
			t.Errorf("ParseCommunity(%q) = %v, want ErrCommunity", bad, err)
		}
	}
	if GracefulShutdown.String() != "graceful-shutdown" || Community(65535<<16).String() != "graceful-shutdown" {
		t.Error("65535:0 must print as graceful-shutdown")
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{
		{Address: netip.MustParseAddr("10.0.0.254"), ASN: 64500},
		{Address: netip.MustParseAddr("10.0.1.254"), ASN: 64500, HoldTime: 30 * time.Second, BFD: &BFD{MinRx: 100 * time.Millisecond}},
	}}.validate()
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		{Address: netip.MustParseAddr("10.0.0.254"), ASN: 64500, Port: 179, HoldTime: 9 * time.Second, ConnectRetry: 5 * time.Second},
		{Address: netip.MustParseAddr("10.0.1.254"), ASN: 64500, Port: 179, HoldTime: 30 * time.Second, ConnectRetry: 5 * time.Second,
			BFD: &BFD{MinRx: 100 * time.Millisecond, MinTx: 300 * time.Millisecond, Multiplier: 3}},
	}
	if diff := cmp.Diff(want, c.Peers, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("peers (-want +got):\n%s", diff)
	}
	if c.listenPort() != -1 {
		t.Errorf("no passive peer: listen port %d, want -1 (no listener)", c.listenPort())
	}
	c.Peers[1].Passive = true
	if c.listenPort() != 179 {
		t.Errorf("a passive peer: listen port %d, want 179", c.listenPort())
	}
	c.ListenPort = 1179
	if c.listenPort() != 1179 {
		t.Errorf("ListenPort 1179: got %d", c.listenPort())
	}
}

func TestConfigErrors(t *testing.T) {
	good := Peer{Address: netip.MustParseAddr("10.0.0.254"), ASN: 64500}
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"asn 0", Config{RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{good}}, "ASN 0 is reserved"},
		{"no router id", Config{ASN: 1, Peers: []Peer{good}}, "router id"},
		{"v6 router id", Config{ASN: 1, RouterID: netip.MustParseAddr("2001:db8::1"), Peers: []Peer{good}}, "IPv4"},
		{"no peers", Config{ASN: 1, RouterID: netip.MustParseAddr("10.0.0.1")}, "no peers"},
		{"dup peer", Config{ASN: 1, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{good, good}}, "listed twice"},
		{"peer asn 0", Config{ASN: 1, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{{Address: good.Address}}}, "ASN 0"},
		{"hold 1s", Config{ASN: 1, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{{Address: good.Address, ASN: 2, HoldTime: time.Second}}}, "between 3s and 65535s"},
		{"hold 3.5s", Config{ASN: 1, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{{Address: good.Address, ASN: 2, HoldTime: 3500 * time.Millisecond}}}, "whole seconds"},
		{"long password", Config{ASN: 1, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{{Address: good.Address, ASN: 2, Password: strings.Repeat("x", 81)}}}, "80 bytes"},
		{"bfd 1ms", Config{ASN: 1, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{{Address: good.Address, ASN: 2, BFD: &BFD{MinTx: time.Millisecond}}}}, "BFD interval"},
		{"multicast peer", Config{ASN: 1, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{{Address: netip.MustParseAddr("224.0.0.5"), ASN: 2}}}, "unicast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, err := New(tc.c, testLogger(t)); err == nil {
				t.Fatal("New accepted what validate refused")
			}
		})
	}
}

func TestPeerAPI(t *testing.T) {
	c, err := Config{ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.1"), Peers: []Peer{
		{Address: netip.MustParseAddr("10.0.0.254"), ASN: 64500, Password: "s3cret", HoldTime: 6 * time.Second,
			Multihop: 3, Passive: true, Port: 1179, LocalAddress: netip.MustParseAddr("10.0.0.1"),
			BFD: &BFD{MinRx: 100 * time.Millisecond, MinTx: 200 * time.Millisecond, Multiplier: 5}},
		{Address: netip.MustParseAddr("2001:db8::fe"), ASN: 64512, Multihop: 4}, // iBGP: multihop means nothing
	}}.validate()
	if err != nil {
		t.Fatal(err)
	}
	p := peerAPI(c, c.Peers[0])
	if p.Conf.NeighborAddress != "10.0.0.254" || p.Conf.PeerAsn != 64500 || p.Conf.AuthPassword != "s3cret" {
		t.Errorf("conf = %v", p.Conf)
	}
	if tc := p.Timers.Config; tc.HoldTime != 6 || tc.KeepaliveInterval != 2 || tc.ConnectRetry != 5 {
		t.Errorf("timers = %v, want hold 6 keepalive 2 (hold/3, RFC 4271 section 10) retry 5", tc)
	}
	if !p.Transport.PassiveMode || p.Transport.RemotePort != 1179 || p.Transport.LocalAddress != "10.0.0.1" {
		t.Errorf("transport = %v", p.Transport)
	}
	if p.EbgpMultihop == nil || !p.EbgpMultihop.Enabled || p.EbgpMultihop.MultihopTtl != 3 {
		t.Errorf("multihop = %v", p.EbgpMultihop)
	}
	if b := p.Bfd; b == nil || !b.Enabled || b.RequiredMinimumReceive != 100000 || b.DesiredMinimumTxInterval != 200000 || b.DetectionMultiplier != 5 {
		t.Errorf("bfd = %v, want intervals in microseconds (RFC 5880 section 4.1)", b)
	}
	if f := p.AfiSafis[0].Config.Family; len(p.AfiSafis) != 1 || f.Afi != api.Family_AFI_IP || f.Safi != api.Family_SAFI_UNICAST {
		t.Errorf("families = %v, want IPv4 unicast only", p.AfiSafis)
	}
	p6 := peerAPI(c, c.Peers[1])
	if p6.EbgpMultihop != nil || p6.Bfd != nil || p6.Transport.PassiveMode {
		t.Errorf("iBGP peer: multihop %v bfd %v passive %v", p6.EbgpMultihop, p6.Bfd, p6.Transport.PassiveMode)
	}
	if f := p6.AfiSafis[0].Config.Family; f.Afi != api.Family_AFI_IP6 {
		t.Errorf("IPv6 peer family = %v", f)
	}
}

func attrTypes(attrs []gbgp.PathAttributeInterface) map[gbgp.BGPAttrType]gbgp.PathAttributeInterface {
	m := map[gbgp.BGPAttrType]gbgp.PathAttributeInterface{}
	for _, a := range attrs {
		m[a.GetType()] = a
	}
	return m
}

func TestPathFor(t *testing.T) {
	a := Attrs{MED: u32(10), LocalPref: u32(200), Communities: []Community{64512<<16 | 7}}
	p, err := pathFor(netip.MustParsePrefix("192.0.2.10/32"), a, false)
	if err != nil {
		t.Fatal(err)
	}
	m := attrTypes(p.Attrs)
	if p.Family != gbgp.RF_IPv4_UC || p.Nlri.String() != "192.0.2.10/32" || p.Withdrawal {
		t.Errorf("path = %v %v withdraw=%v", p.Family, p.Nlri, p.Withdrawal)
	}
	if o, ok := m[gbgp.BGP_ATTR_TYPE_ORIGIN].(*gbgp.PathAttributeOrigin); !ok || o.Value != gbgp.BGP_ORIGIN_ATTR_TYPE_IGP {
		t.Errorf("origin = %v, want IGP", m[gbgp.BGP_ATTR_TYPE_ORIGIN])
	}
	if nh, ok := m[gbgp.BGP_ATTR_TYPE_NEXT_HOP].(*gbgp.PathAttributeNextHop); !ok || !nh.Value.IsUnspecified() {
		t.Errorf("next hop = %v, want 0.0.0.0 (GoBGP puts the session address there)", m[gbgp.BGP_ATTR_TYPE_NEXT_HOP])
	}
	if med, ok := m[gbgp.BGP_ATTR_TYPE_MULTI_EXIT_DISC].(*gbgp.PathAttributeMultiExitDisc); !ok || med.Value != 10 {
		t.Errorf("MED = %v", m[gbgp.BGP_ATTR_TYPE_MULTI_EXIT_DISC])
	}
	if lp, ok := m[gbgp.BGP_ATTR_TYPE_LOCAL_PREF].(*gbgp.PathAttributeLocalPref); !ok || lp.Value != 200 {
		t.Errorf("LOCAL_PREF = %v", m[gbgp.BGP_ATTR_TYPE_LOCAL_PREF])
	}
	if cs, ok := m[gbgp.BGP_ATTR_TYPE_COMMUNITIES].(*gbgp.PathAttributeCommunities); !ok || !cmp.Equal(cs.Value, []uint32{64512<<16 | 7}) {
		t.Errorf("communities = %v", m[gbgp.BGP_ATTR_TYPE_COMMUNITIES])
	}

	plain, _ := pathFor(netip.MustParsePrefix("192.0.2.10/32"), Attrs{}, false)
	if len(plain.Attrs) != 2 {
		t.Errorf("no attributes asked: got %v, want ORIGIN and NEXT_HOP only", plain.Attrs)
	}

	v6, err := pathFor(netip.MustParsePrefix("2001:db8::10/128"), Attrs{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := attrTypes(v6.Attrs)[gbgp.BGP_ATTR_TYPE_MP_REACH_NLRI]; !ok || v6.Family != gbgp.RF_IPv6_UC {
		t.Errorf("IPv6 path: family %v attrs %v, want MP_REACH_NLRI (RFC 4760)", v6.Family, v6.Attrs)
	}
}

func TestDrainingAttrs(t *testing.T) {
	a := Attrs{MED: u32(10), LocalPref: u32(200), Communities: []Community{64512<<16 | 7}}
	d := a.draining()
	if d.MED == nil || *d.MED != DrainMED || DrainMED != 4294967294 {
		t.Errorf("draining MED = %v, want 4294967294", d.MED)
	}
	if !cmp.Equal(d.Communities, []Community{64512<<16 | 7, GracefulShutdown}) {
		t.Errorf("draining communities = %v, want the node's plus graceful-shutdown (RFC 8326 section 3)", d.Communities)
	}
	if *d.LocalPref != 200 {
		t.Error("draining must keep LOCAL_PREF (the receiver lowers it, RFC 8326 section 4)")
	}
	if *a.MED != 10 || len(a.Communities) != 1 {
		t.Error("draining changed the original attributes")
	}
	twice := Attrs{Communities: []Community{GracefulShutdown}}.draining()
	if len(twice.Communities) != 1 {
		t.Errorf("graceful-shutdown listed twice: %v", twice.Communities)
	}
}

func TestPrefixStatusReasons(t *testing.T) {
	now := time.Unix(1000, 0)
	m := map[netip.Prefix]*prefixState{
		netip.MustParsePrefix("192.0.2.11/32"):   {state: Withdrawn, reason: "backends: 0 of 3 healthy", since: now},
		netip.MustParsePrefix("192.0.2.10/32"):   {state: Announced, since: now, attrs: Attrs{MED: u32(5)}},
		netip.MustParsePrefix("192.0.2.9/32"):    {state: Draining, reason: "drain self", since: now},
		netip.MustParsePrefix("2001:db8::1/128"): {state: Announced, since: now},
	}
	got := prefixStatus(m, map[bool]int{true: 2})
	want := []PrefixStatus{
		{Prefix: "192.0.2.9/32", State: Draining, Reason: "drain self", Since: now, Peers: 2, MED: u32(DrainMED), Communities: []string{"graceful-shutdown"}},
		{Prefix: "192.0.2.10/32", State: Announced, Since: now, Peers: 2, MED: u32(5)},
		{Prefix: "192.0.2.11/32", State: Withdrawn, Reason: "backends: 0 of 3 healthy", Since: now},
		{Prefix: "2001:db8::1/128", State: Announced, Reason: NoSession, Since: now},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDisconnectReason(t *testing.T) {
	if got := disconnectReason(api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED, "hold-timer-expired"); got != "hold timer expired" {
		t.Errorf("got %q", got)
	}
	if got := disconnectReason(api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED, "notification-received cease/peer deconfigured"); got != "notification received: cease/peer deconfigured" {
		t.Errorf("got %q", got)
	}
	if got := disconnectReason(api.PeerState_DISCONNECT_REASON_UNSPECIFIED, ""); got != "" {
		t.Errorf("unspecified: got %q, want empty", got)
	}
}
