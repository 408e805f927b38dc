//go:build linux

package netcfg

// Gratuitous ARP and unsolicited neighbour advertisements on the wire, and
// their effect on a neighbour's cache.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestAnnouncer sends a GARP burst from A and checks on B the frames on
// the wire and that B's stale neighbour entry for the VIP moved to A's MAC.
func TestAnnouncer(t *testing.T) {
	l := newLab(t)
	env := l.env("NC_VIP=" + l.addr(100).String())
	capture := startHelper(t, l.nsB, "ARPCapture", env)
	capture.awaitReady(t)
	runHelper(t, l.nsA, "ARPSend", env)
	capture.wait(t)
}

// TestAnnouncer6: B holds a stale neighbour entry for the VIP pointing at a
// bogus MAC; A's unsolicited neighbour advertisement moves it to A's MAC.
func TestAnnouncer6(t *testing.T) {
	l := newLab6(t)
	vip := l.addr6(0x10)
	ip(t, "-n", l.nsB, "-6", "neigh", "replace", vip.String(), "lladdr", "02:00:00:00:00:99", "dev", l.ifB, "nud", "stale")
	runHelper(t, l.nsA, "NASend", l.env6("NC_VIP="+vip.String()))
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := ip(t, "-n", l.nsB, "-6", "neigh", "show", vip.String(), "dev", l.ifB)
		if strings.Contains(out, l.macA) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's neighbour entry for %s did not move to %s: %q", vip, l.macA, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHelperARPCapture(t *testing.T) {
	isHelper(t)
	ifname, vip := env(t, "NC_IF_B"), envAddr(t, "NC_VIP")
	macA, err := net.ParseMAC(env(t, "NC_MAC_A"))
	if err != nil {
		t.Fatal(err)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	// Pre-seed a wrong, stale entry: the burst must override it.
	wrong := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: ifi.Index, Family: netlink.FAMILY_V4,
		State: netlink.NUD_STALE, IP: vip.AsSlice(), HardwareAddr: wrong}); err != nil {
		t.Fatal(err)
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Println("READY")

	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	seen := map[arp.Operation]bool{}
	buf := make([]byte, 1500)
	for i := 0; i < 1000 && !(seen[arp.OperationRequest] && seen[arp.OperationReply]); i++ {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read: %v (seen %v)", err, seen)
		}
		var f ethernet.Frame
		var p arp.Packet
		if f.UnmarshalBinary(buf[:n]) != nil || f.EtherType != ethernet.EtherTypeARP || p.UnmarshalBinary(f.Payload) != nil {
			continue
		}
		if p.SenderIP != vip {
			continue
		}
		if f.Destination.String() != "ff:ff:ff:ff:ff:ff" || f.Source.String() != macA.String() {
			t.Errorf("%v frame %s -> %s, want %s -> broadcast", p.Operation, f.Source, f.Destination, macA)
		}
		if p.SenderHardwareAddr.String() != macA.String() || p.TargetIP != vip ||
			p.TargetHardwareAddr.String() != "ff:ff:ff:ff:ff:ff" {
			t.Errorf("%v: sender %s/%s target %s/%s; want %s/%s target ff:ff:ff:ff:ff:ff/%s",
				p.Operation, p.SenderHardwareAddr, p.SenderIP, p.TargetHardwareAddr, p.TargetIP, macA, vip, vip)
		}
		if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) {
			t.Errorf("%v: htype %d ptype %#x", p.Operation, p.HardwareType, p.ProtocolType)
		}
		seen[p.Operation] = true
	}
	if !seen[arp.OperationRequest] || !seen[arp.OperationReply] {
		t.Fatalf("saw %v, want request and reply", seen)
	}

	poll(t, 5*time.Second, "neighbour entry for VIP has A's MAC", func() bool {
		ns, err := netlink.NeighList(ifi.Index, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			if ip, _ := netip.AddrFromSlice(n.IP); ip.Unmap() == vip {
				return n.HardwareAddr.String() == macA.String()
			}
		}
		return false
	})
}

func TestHelperARPSend(t *testing.T) {
	isHelper(t)
	ifname, vip := env(t, "NC_IF_A"), envAddr(t, "NC_VIP")
	a, err := NewAnnouncer(ifname)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Burst(ctx, a, []netip.Addr{vip}, 3, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAnnouncer("ncnosuchif0"); !errors.Is(err, ErrNoInterface) {
		t.Errorf("NewAnnouncer(missing) = %v, want ErrNoInterface", err)
	}
}

func TestHelperNASend(t *testing.T) {
	isHelper(t)
	vip := envAddr(t, "NC_VIP")
	a, err := NewAnnouncer(env(t, "NC_IF_A"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 3 {
		if err := a.Announce(vip); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The same announcer still does GARP for an IPv4 VIP.
	if err := a.Announce(labAddr(t, 100)); err != nil {
		t.Fatal(err)
	}
}
