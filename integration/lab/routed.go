//go:build linux

package lab

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// Routed is a routed lab for BGP mode: an FRR router namespace between
// load-balancer namespaces that each sit on their own subnet (as in two
// racks), a client namespace on a third, and the stand-in control planes
// on the Lab's bridge segment behind the router:
//
//	client 10.79.N.2 ── rt ──┬── lb1 10.78.N.6   (10.78.N.4/30)
//	                         ├── lb2 10.78.N.10  (10.78.N.8/30)
//	                         ├── lb3 10.78.N.14  (10.78.N.12/30)
//	                         └── br0 10.77.N.0/24: cp1..cp3 .31-.33
//
// N is the Lab's subnet number, so parallel labs never share addresses.
// The VIP (10.80.N.10) is on no link: the LBs put it on their loopback and
// announce it; the router learns it only over BGP.
type Routed struct {
	*Lab
	// Router is the router's namespace; its eth0 is on the bridge at .1.
	Router *Host
	// LBs are the load-balancer hosts; LBs[i].Addr is on their own /30.
	LBs []*Host
	// Gateways[i] is the router's address on LBs[i]'s link.
	Gateways []netip.Addr
	Client   *Host
	CPs      []*Host
	VIP      netip.Addr
	// ASN is the router's ASN.
	ASN uint32
}

// NewRouted builds the namespaces and links for nLB load balancers (1..3)
// and three control-plane hosts. Nothing runs yet: start FRR with
// StartRouter and the stand-ins with StartControlPlane.
func NewRouted(t testing.TB, nLB int) *Routed {
	t.Helper()
	if nLB < 1 || nLB > 3 {
		t.Fatalf("NewRouted: %d LBs, want 1..3", nLB)
	}
	l := NewLab(t)
	n := l.Subnet.Addr().As4()[2]
	r := &Routed{Lab: l, ASN: 64500, VIP: netip.AddrFrom4([4]byte{10, 80, n, 10})}
	r.Router = l.AddHost("rt", 1)
	l.sysctl(r.Router, "net.ipv4.ip_forward=1")
	for i := 1; i <= 3; i++ {
		cp := l.AddHost(fmt.Sprintf("cp%d", i), 30+i)
		l.IPN(cp.NS, "route", "add", "default", "via", r.Router.Addr.String())
		r.CPs = append(r.CPs, cp)
	}
	for i := 1; i <= nLB; i++ {
		gw := netip.AddrFrom4([4]byte{10, 78, n, byte(4*i + 1)})
		lb := l.addRoutedHost(r.Router, fmt.Sprintf("lb%d", i), gw, netip.AddrFrom4([4]byte{10, 78, n, byte(4*i + 2)}), 30)
		// The VIP is local on every LB (loopback; this kernel may have no
		// dummy interfaces): the proxy can bind it and the LB accepts it.
		l.IPN(lb.NS, "addr", "add", r.VIP.String()+"/32", "dev", "lo")
		r.LBs = append(r.LBs, lb)
		r.Gateways = append(r.Gateways, gw)
	}
	r.Client = l.addRoutedHost(r.Router, "client", netip.AddrFrom4([4]byte{10, 79, n, 1}), netip.AddrFrom4([4]byte{10, 79, n, 2}), 24)
	return r
}

// addRoutedHost adds a namespace joined to the router by a veth pair: eth0
// at addr/bits in the host, "name" at gw/bits in the router, and a default
// route via gw.
func (l *Lab) addRoutedHost(router *Host, name string, gw, addr netip.Addr, bits int) *Host {
	l.t.Helper()
	h := &Host{Name: name, NS: "v" + name + l.ID, If: "eth0", Addr: addr}
	if len(h.NS) > 30 {
		l.t.Fatalf("namespace name %q too long", h.NS)
	}
	l.IP("netns", "add", h.NS)
	l.hosts[name] = h
	// Both ends are created directly inside their namespaces, so the
	// names cannot collide with anything on the machine.
	l.IP("link", "add", "eth0", "netns", h.NS, "type", "veth", "peer", "name", name, "netns", router.NS)
	l.IPN(h.NS, "addr", "add", fmt.Sprintf("%s/%d", addr, bits), "dev", "eth0")
	l.IPN(h.NS, "link", "set", "eth0", "up")
	l.IPN(h.NS, "link", "set", "lo", "up")
	l.IPN(router.NS, "addr", "add", fmt.Sprintf("%s/%d", gw, bits), "dev", name)
	l.IPN(router.NS, "link", "set", name, "up")
	l.IPN(h.NS, "route", "add", "default", "via", gw.String())
	return h
}

func (l *Lab) sysctl(h *Host, kv string) {
	l.t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", kv).CombinedOutput(); err != nil {
		l.t.Fatalf("sysctl %s in %s: %v: %s", kv, h.NS, err, out)
	}
}

// Sysctl sets kv ("net.ipv4.fib_multipath_hash_policy=1") in h's namespace.
func (l *Lab) Sysctl(h *Host, kv string) { l.sysctl(h, kv) }

// RouterOptions shape the router's bgpd configuration.
type RouterOptions struct {
	// HoldTime and Keepalive are the router's timers in seconds; 0 keeps
	// FRR's "datacenter" profile (9 and 3).
	HoldTime, Keepalive int
	// Password is the TCP MD5 password on every session.
	Password string
	// BFD runs bfdd and a BFD session with every LB.
	BFD bool
	// BFDInterval is bfdd's receive and transmit interval in ms (default
	// 100) with detect multiplier 3.
	BFDInterval int
	// Extra is appended to the bgpd configuration, inside "router bgp".
	Extra string
}

// LBASN is the ASN LB i (0-based) uses in the lab: one per rack, as in an
// eBGP-everywhere fabric.
func LBASN(i int) uint32 { return 64512 + uint32(i) }

// RouterConfig is the frr.conf of the router: eBGP with every LB, ECMP
// over up to 8 paths, and as-path multipath-relax so that LBs in
// different ASNs form one ECMP group.
func (r *Routed) RouterConfig(o RouterOptions) string {
	var b strings.Builder
	b.WriteString("frr defaults datacenter\nhostname rt\n!\n")
	if o.BFD {
		iv := o.BFDInterval
		if iv == 0 {
			iv = 100
		}
		b.WriteString("bfd\n profile lb\n  receive-interval " + fmt.Sprint(iv) + "\n  transmit-interval " + fmt.Sprint(iv) + "\n  detect-multiplier 3\n !\n!\n")
	}
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n", r.ASN, r.Router.Addr)
	for i, lb := range r.LBs {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n", lb.Addr, LBASN(i))
		if o.HoldTime > 0 {
			fmt.Fprintf(&b, " neighbor %s timers %d %d\n", lb.Addr, o.Keepalive, o.HoldTime)
		}
		// Reconnect at once after a reset (FRR's default waits 10 s).
		fmt.Fprintf(&b, " neighbor %s timers connect 1\n", lb.Addr)
		if o.Password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", lb.Addr, o.Password)
		}
		if o.BFD {
			fmt.Fprintf(&b, " neighbor %s bfd profile lb\n", lb.Addr)
		}
	}
	b.WriteString(o.Extra)
	b.WriteString(" address-family ipv4 unicast\n  maximum-paths 8\n")
	for _, lb := range r.LBs {
		fmt.Fprintf(&b, "  neighbor %s activate\n", lb.Addr)
	}
	b.WriteString(" exit-address-family\n!\n")
	return b.String()
}

// StartRouter runs FRR on the router with RouterConfig(o).
func (r *Routed) StartRouter(t testing.TB, o RouterOptions) *FRR {
	t.Helper()
	return r.StartFRR(t, r.Router, r.RouterConfig(o), o.BFD)
}

// VIPPrefix is the VIP as a host route.
func (r *Routed) VIPPrefix() netip.Prefix { return netip.PrefixFrom(r.VIP, 32) }
