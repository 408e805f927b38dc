package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The Checker is the runner's receive path without the runner: what vipd
// doctor judges a packet by. TestRunnerReceiveChecks covers the rules
// through the runner; this checks what a caller of the Checker alone sees.
func TestChecker(t *testing.T) {
	cfg := runnerConfig(100)
	cfg.Machine.Version = 0 // NewChecker defaults to 3, as NewRunner
	cfg.Siblings = []uint8{53}
	c := NewChecker(cfg)
	marshal := func(a Advertisement, mode ChecksumMode) []byte {
		t.Helper()
		if a.Version == 0 {
			a.Version = 3
		}
		a.Type = TypeAdvertisement
		if a.VRID == 0 {
			a.VRID = 51
		}
		if a.MaxAdvertInterval == 0 {
			a.MaxAdvertInterval = time.Second
		}
		if a.Addresses == nil {
			a.Addresses = []netip.Addr{vipA}
		}
		b, err := MarshalAdvertisement(&a, peerAddr, IPv4Group, mode)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	v := c.Check(marshal(Advertisement{Priority: 150}, ChecksumMessage), peerAddr, IPv4Group, 255)
	if v.Reason != "" || !v.Peer || v.Checksum != ChecksumMessage || v.Advert.Priority != 150 || v.Problem != (Problem{}) {
		t.Errorf("good advert: %+v; want accepted from a peer, checksum rfc9568, priority 150", v)
	}
	v = c.Check(marshal(Advertisement{Version: 2, Priority: 150}, ChecksumMessage), peerAddr, IPv4Group, 255)
	if v.Reason != DropVersion || !v.Peer || !strings.Contains(v.Problem.String(), "speaks VRRPv2; set version = 2") {
		t.Errorf("v2 advert: %+v; want a version drop with the runner's words", v)
	}
	v = c.Check(marshal(Advertisement{VRID: 53}, ChecksumPseudoHeader), peerAddr, IPv4Group, 255)
	if !v.Sibling() || v.Peer {
		t.Errorf("sibling's advert: %+v; want Sibling and not a peer", v)
	}
	v = c.Check(marshal(Advertisement{VRID: 52}, ChecksumPseudoHeader), peerAddr, IPv4Group, 255)
	if v.Sibling() || v.Reason != DropVRID || v.Peer {
		t.Errorf("other vrid: %+v; want a vrid drop, not a peer", v)
	}
}

func TestForeignProblem(t *testing.T) {
	tests := []struct {
		src   string
		known bool
		want  string
	}{
		{"10.0.0.9", false, "router 10.0.0.9 on vrid 51 is not one of the [[node]]s: another VRRP router shares this VRID on the segment; give one of them another vrid"},
		{"10.0.0.2", true, ""},
		// Over IPv6 multicast every node sends from its link-local
		// address, which no [[node]] lists.
		{"fe80::1", false, ""},
		{"fd00::9", false, "router fd00::9 on vrid 51 is not one of the [[node]]s"},
	}
	for _, tt := range tests {
		got := ForeignProblem(netip.MustParseAddr(tt.src), 51, tt.known).String()
		if tt.want == "" && got != "" || !strings.HasPrefix(got, tt.want) {
			t.Errorf("ForeignProblem(%s, known %v) = %q, want %q", tt.src, tt.known, got, tt.want)
		}
	}
}
