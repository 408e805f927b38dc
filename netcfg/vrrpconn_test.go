package netcfg

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVRRPConfigValidate(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name string
		cfg  VRRPConfig
		want []string // destinations; nil means an error
	}{
		{"multicast", VRRPConfig{Interface: "eth0"}, []string{"224.0.0.18"}},
		{"unicast", VRRPConfig{Interface: "eth0", Unicast: true, Source: a("10.0.0.1"),
			Peers: []netip.Addr{a("10.0.0.2"), a("10.0.0.3")}}, []string{"10.0.0.2", "10.0.0.3"}},
		{"no interface", VRRPConfig{}, nil},
		{"unicast without peers", VRRPConfig{Interface: "eth0", Unicast: true}, nil},
		{"multicast peer", VRRPConfig{Interface: "eth0", Unicast: true, Peers: []netip.Addr{a("224.0.0.18")}}, nil},
		{"ipv6 peer", VRRPConfig{Interface: "eth0", Unicast: true, Peers: []netip.Addr{a("2001:db8::2")}}, nil},
		{"ipv6 source", VRRPConfig{Interface: "eth0", Source: a("fe80::1")}, []string{"ff02::12"}},
		{"ipv6 flag", VRRPConfig{Interface: "eth0", IPv6: true}, []string{"ff02::12"}},
		{"ipv6 unicast", VRRPConfig{Interface: "eth0", Unicast: true, Source: a("2001:db8::1"),
			Peers: []netip.Addr{a("2001:db8::2")}}, []string{"2001:db8::2"}},
		{"ipv6 with ipv4 peer", VRRPConfig{Interface: "eth0", Unicast: true, Source: a("2001:db8::1"),
			Peers: []netip.Addr{a("10.0.0.2")}}, nil},
		{"ipv6 flag with ipv4 source", VRRPConfig{Interface: "eth0", IPv6: true, Source: a("10.0.0.1")}, nil},
		{"tos range", VRRPConfig{Interface: "eth0", TOS: 256}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsts, err := tt.cfg.validate()
			if tt.want == nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("validate() = %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range dsts {
				got = append(got, d.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("destinations (-want +got):\n%s", diff)
			}
		})
	}
}
