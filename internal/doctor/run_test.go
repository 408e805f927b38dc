package doctor

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/proxy"
	"github.com/vipd/vipd/vrrp"
	"golang.org/x/sys/unix"
)

// pkt is one packet a fake socket delivers.
type pkt struct {
	b        []byte
	src, dst netip.Addr
	ttl      int
}

// fakeSource delivers its packets, then reports the deadline.
type fakeSource struct{ pkts []pkt }

func (s *fakeSource) ReadFrom(b []byte) (int, netip.Addr, netip.Addr, int, error) {
	if len(s.pkts) == 0 {
		return 0, netip.Addr{}, netip.Addr{}, 0, os.ErrDeadlineExceeded
	}
	p := s.pkts[0]
	s.pkts = s.pkts[1:]
	return copy(b, p.b), p.src, p.dst, p.ttl, nil
}
func (s *fakeSource) SetReadDeadline(time.Time) error { return nil }
func (s *fakeSource) Close() error                    { return nil }

func advert(t *testing.T, a vrrp.Advertisement, src, dst netip.Addr, mode vrrp.ChecksumMode) []byte {
	t.Helper()
	if a.Version == 0 {
		a.Version = 3
	}
	a.Type = vrrp.TypeAdvertisement
	if a.VRID == 0 {
		a.VRID = 51
	}
	if a.MaxAdvertInterval == 0 {
		a.MaxAdvertInterval = 200 * time.Millisecond
	}
	if a.Addresses == nil {
		a.Addresses = []netip.Addr{netip.MustParseAddr("10.0.0.100")}
	}
	b, err := vrrp.MarshalAdvertisement(&a, src, dst, mode)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testPlan is lb1 of lb1, lb2 with one instance on eth0, a backend of two
// servers and a frontend on the VIP.
func testPlan() Plan {
	in := instance(false)
	in.Receive = vrrp.RunnerConfig{
		Machine: vrrp.Config{VRID: 51, Addr: lb1.Addr, AdvertInterval: 200 * time.Millisecond, Version: 3},
		VIPs:    []netip.Addr{netip.MustParseAddr("10.0.0.100")}, Peers: []netip.Addr{lb2.Addr},
	}
	ok := func(context.Context) health.Result { return health.Result{OK: true} }
	return Plan{
		ConfigPath: "/etc/vipd/vipd.toml", Node: lb1, Nodes: []Node{lb1, lb2}, Instances: []Instance{in}, StatusPort: 9601,
		Servers: []Server{{Backend: "kube-apiserver", Name: "cp1", Addr: netip.MustParseAddrPort("10.0.0.31:6443"), Check: "https", Probe: ok},
			{Backend: "kube-apiserver", Name: "cp2", Addr: netip.MustParseAddrPort("10.0.0.32:6443"), Check: "https", Probe: ok}},
		CheckBinds: func() error { return nil },
		Socket:     "/run/vipd/vipd.sock",
		Beacon: func(b []byte) (Beacon, bool) {
			name, masters, _ := strings.Cut(string(b), " ")
			bc := Beacon{Node: name}
			if masters == "MASTER" {
				bc.Masters = []uint8{51}
			}
			return bc, true
		},
	}
}

// testEnv is a healthy host: eth0 up with lb1's address, kernel defaults
// but arp_announce 2, no firewall, the config 0640, lb2's MAC answering
// for its address and the VIP (lb2 is MASTER), and lb2's adverts and
// beacons on the wire.
func testEnv(t *testing.T) (Env, *[]pkt, *[]pkt, *[]netcfg.Claim) {
	mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	vrrpPkts := []pkt{{b: advert(t, vrrp.Advertisement{Priority: 100}, lb2.Addr, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: lb2.Addr, dst: vrrp.IPv4Group, ttl: 255}}
	beaconPkts := []pkt{{b: []byte("lb2 MASTER"), src: lb2.Addr}}
	claims := []netcfg.Claim{{Addr: lb2.Addr, MAC: mac2, From: lb2.Addr}, {Addr: netip.MustParseAddr("10.0.0.100"), MAC: mac2}}
	env := Env{
		Links: func() ([]Link, error) {
			return []Link{{Name: "lo", AdminUp: true, OperUp: true}, {Name: "eth0", AdminUp: true, OperUp: true,
				Addrs: []Addr{{Prefix: netip.MustParsePrefix("10.0.0.11/24")}}}}, nil
		},
		RouteIf: viaEth0,
		Sysctl:  sysctlsOf(nil),
		Command: func(context.Context, string, ...string) ([]byte, error) { return nil, ErrNotInstalled },
		Stat: func(p string) (FileInfo, error) {
			if p == "/run/vipd" {
				return FileInfo{Mode: os.ModeDir | 0o755}, nil
			}
			return FileInfo{Mode: 0o640}, nil
		},
		LookupGroup: func(string) (int, error) { return 0, errors.New("unknown group") },
		LookupUser:  func(string) (int, []int, error) { return 0, nil, errors.New("unknown user") },
		ListenVRRP: func(string, bool) (PacketSource, error) {
			return &fakeSource{pkts: slices.Clone(vrrpPkts)}, nil
		},
		ListenUDP: func(uint16, bool) (PacketSource, error) {
			return &fakeSource{pkts: slices.Clone(beaconPkts)}, nil
		},
	}
	env.Probe = func(context.Context, netcfg.ProbeConfig) ([]netcfg.Claim, error) { return slices.Clone(claims), nil }
	return env, &vrrpPkts, &beaconPkts, &claims
}

// A healthy node gives no finding and exit 0, and the text says every
// check is ok.
func TestRunClean(t *testing.T) {
	env, _, _, _ := testEnv(t)
	r := Run(context.Background(), testPlan(), env, time.Millisecond)
	if len(r.Findings) != 0 || r.ExitCode() != 0 {
		t.Fatalf("findings %+v (exit %d), want none", r.Findings, r.ExitCode())
	}
	var b bytes.Buffer
	r.WriteText(&b)
	if !strings.Contains(b.String(), "ok       config, files, listener, interface, sysctl, firewall, backends, vrrp, vip-conflict, peers\n") ||
		!strings.Contains(b.String(), "0 errors, 0 warnings, 0 notes") {
		t.Errorf("text:\n%s", b.String())
	}
}

// Every check through Run with its seams: the findings, their order in
// the text (errors first) and the exit status.
func TestRunFindings(t *testing.T) {
	env, vrrpPkts, beaconPkts, claims := testEnv(t)
	plan := testPlan()
	stranger := netip.MustParseAddr("10.0.0.40")
	*vrrpPkts = []pkt{
		// lb2 on VRRPv2; a foreign router on the VRID.
		{b: advert(t, vrrp.Advertisement{Version: 2, Priority: 100, MaxAdvertInterval: time.Second}, lb2.Addr, vrrp.IPv4Group, vrrp.ChecksumMessage), src: lb2.Addr, dst: vrrp.IPv4Group, ttl: 255},
		{b: advert(t, vrrp.Advertisement{Priority: 200}, stranger, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: stranger, dst: vrrp.IPv4Group, ttl: 255},
	}
	*beaconPkts = nil
	*claims = append(*claims, netcfg.Claim{Addr: netip.MustParseAddr("10.0.0.100"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x40}})
	plan.Servers[0].Probe = func(context.Context) health.Result { return health.Result{Detail: "connection refused"} }
	plan.CheckBinds = func() error {
		return errors.Join(&proxy.BindError{Frontend: "kubernetes", Addr: netip.MustParseAddrPort("10.0.0.100:6443"), Err: unix.EADDRINUSE, Wildcard: true})
	}
	plan.Secrets = []string{"auth_pass"}
	plan.Warnings = []string{"vipd.toml:3: a warning of vipd check"}
	stat := env.Stat
	env.Stat = func(p string) (FileInfo, error) {
		fi, err := stat(p)
		if p == plan.ConfigPath {
			fi.Mode = 0o644
		}
		return fi, err
	}
	env.Sysctl = sysctlsOf(map[string]string{"net/ipv4/conf/eth0/rp_filter": "1"})
	r := Run(context.Background(), plan, env, time.Millisecond)
	var got []string
	for _, f := range r.Findings {
		got = append(got, f.Check+"/"+f.Severity)
	}
	slices.Sort(got)
	want := []string{"backends/warning", "config/warning", "files/warning", "listener/error", "sysctl/warning", "vip-conflict/error", "vrrp/error", "vrrp/error"}
	if !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v:\n%+v", got, want, r.Findings)
	}
	if r.ExitCode() != 2 {
		t.Errorf("exit %d, want 2", r.ExitCode())
	}
	var b bytes.Buffer
	r.WriteText(&b)
	text := b.String()
	if i, j := strings.Index(text, "ERROR"), strings.Index(text, "WARNING"); i < 0 || j < i {
		t.Errorf("errors do not come first:\n%s", text)
	}
	for _, s := range []string{
		"ERROR    listener: frontend \"kubernetes\": cannot listen on 10.0.0.100:6443",
		"         fix: run kube-apiserver with --bind-address=<node IP>",
		"ERROR    vrrp (api): peer 10.0.0.12 speaks VRRPv2: this node drops its adverts",
		"ERROR    vrrp (api): router 10.0.0.40 on vrid 51 is not one of the [[node]]s",
		"ERROR    vip-conflict (api): VIP 10.0.0.100 is answered (ARP probe, RFC 5227) by 02:00:00:00:00:40",
		"WARNING  backends: kube-apiserver/cp1 (10.0.0.31:6443): the https check fails from this node: connection refused",
		"         fix: nothing listens on 10.0.0.31:6443",
		"WARNING  files: /etc/vipd/vipd.toml is readable by every user (mode 0644) and holds auth_pass",
		"ok       interface, firewall, peers",
		"4 errors, 4 warnings, 0 notes",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("text lacks %q:\n%s", s, text)
		}
	}
}

// The peers check: silence with multicast hints unicast; a beacon saying
// MASTER without adverts is a filtered path; the running vipd's fresh
// peers count as heard.
func TestRunPeers(t *testing.T) {
	env, vrrpPkts, beaconPkts, _ := testEnv(t)
	*vrrpPkts, *beaconPkts = nil, nil
	plan := testPlan()
	r := Run(context.Background(), plan, env, 1500*time.Millisecond)
	if len(r.Findings) != 1 || r.Findings[0].Check != CheckPeers || r.Findings[0].Severity != SevWarning ||
		r.Findings[0].Seen != "nothing heard from lb2 (10.0.0.12) in 1.5s: no VRRP advert, no status beacon (UDP 9601)" ||
		!strings.Contains(r.Findings[0].Fix, "set unicast = true on every node") || r.ExitCode() != 1 {
		t.Errorf("silent peer: %+v", r.Findings)
	}
	*beaconPkts = []pkt{{b: []byte("lb2 MASTER"), src: lb2.Addr}}
	r = Run(context.Background(), plan, env, time.Millisecond)
	if len(r.Findings) != 1 || r.Findings[0].Severity != SevError || !strings.Contains(r.Findings[0].Seen, "lb2 says in its status beacon that it is MASTER of vrid 51") {
		t.Errorf("beacon without adverts: %+v", r.Findings)
	}
	*beaconPkts = nil
	plan.Running = &control.Status{Peers: []control.Peer{{Name: "lb2", Fresh: true}}}
	if r = Run(context.Background(), plan, env, time.Millisecond); len(r.Findings) != 0 || !r.Running {
		t.Errorf("running vipd knows lb2: %+v", r.Findings)
	}
}

// Several instances are checked each: the foreign router on the second
// VRID is that instance's finding, and each instance's socket ignores the
// other's adverts (siblings), as the runners do.
func TestRunInstances(t *testing.T) {
	env, vrrpPkts, _, _ := testEnv(t)
	plan := testPlan()
	ingress := plan.Instances[0]
	ingress.Name, ingress.VRID = "ingress", 52
	ingress.VIPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.101/32")}
	ingress.Receive.Machine.VRID, ingress.Receive.VIPs = 52, []netip.Addr{netip.MustParseAddr("10.0.0.101")}
	ingress.Receive.Siblings = []uint8{51}
	plan.Instances[0].Receive.Siblings = []uint8{52}
	plan.Instances = append(plan.Instances, ingress)
	stranger := netip.MustParseAddr("10.0.0.40")
	vip2 := []netip.Addr{netip.MustParseAddr("10.0.0.101")}
	*vrrpPkts = append(*vrrpPkts,
		pkt{b: advert(t, vrrp.Advertisement{VRID: 52, Priority: 100, Addresses: vip2}, lb2.Addr, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: lb2.Addr, dst: vrrp.IPv4Group, ttl: 255},
		pkt{b: advert(t, vrrp.Advertisement{VRID: 52, Priority: 90, Addresses: vip2}, stranger, vrrp.IPv4Group, vrrp.ChecksumPseudoHeader), src: stranger, dst: vrrp.IPv4Group, ttl: 255})
	r := Run(context.Background(), plan, env, time.Millisecond)
	if len(r.Findings) != 1 || r.Findings[0].Instance != "ingress" || !strings.Contains(r.Findings[0].Seen, "router 10.0.0.40 on vrid 52 is not one of the [[node]]s") {
		t.Errorf("findings %+v, want the foreign router on ingress only", r.Findings)
	}
}
