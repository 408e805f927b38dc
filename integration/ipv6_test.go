package integration

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// newPair6Lab is pairLab over IPv6: lb1 fd77:N::11 (p1), lb2 fd77:N::12
// (p2), a client at fd77:N::100, VIP fd77:N::10/128. Adverts go to
// ff02::12 from the link-local addresses (or, with o.Unicast, between the
// node addresses).
func newPair6Lab(t *testing.T, o lab.PairOptions, p1, p2 int) *pairLab {
	l := lab.NewLab(t)
	p := &pairLab{Lab: l, lb1: l.AddHost("lb1", 11), lb2: l.AddHost("lb2", 12), client: l.AddHost("client", 100), vip: l.Addr6(0x10)}
	l.EnableIPv6(p.lb1, 0x11)
	l.EnableIPv6(p.lb2, 0x12)
	l.EnableIPv6(p.client, 0x100)
	o.VIP = p.vip
	nodes := l.StartNodes6(t, o, []lab.LBNode{lab.N("lb1", p.lb1, p1), lab.N("lb2", p.lb2, p2)})
	p.n1, p.n2 = nodes[0], nodes[1]
	return p
}

// TestIPv6InitialElection: over IPv6 the highest priority wins, exactly one
// node holds the VIP, the backup names the master by its link-local
// address (the advert source, RFC 9568 section 5.1.2.1) and the client
// reaches [VIP]:6443.
func TestIPv6InitialElection(t *testing.T) {
	p := newPair6Lab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb1, 2*time.Second, p.lb1, p.lb2)
	st, err := p.n2.Status()
	if err != nil {
		t.Fatal(err)
	}
	in := st.Instances[0]
	if a, err := netip.ParseAddr(in.MasterAddr); err != nil || !a.IsLinkLocalUnicast() {
		t.Errorf("backup's master_addr = %q, want lb1's link-local address", in.MasterAddr)
	}
	if in.AdvertsReceived == 0 || len(in.Senders) != 1 {
		t.Errorf("backup heard %d adverts, senders %+v; want adverts from lb1", in.AdvertsReceived, in.Senders)
	}
	if d := in.Drops; len(d) != 0 {
		t.Errorf("backup dropped adverts: %v", d)
	}
	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	pr.Stop()
}

// TestIPv6MasterKilled: SIGKILL the master; the backup takes the VIP and
// the client (whose neighbour entry for the VIP still names the dead
// master's MAC until the unsolicited NA) reaches it again.
func TestIPv6MasterKilled(t *testing.T) {
	p := newPair6Lab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	p.n1.Stop(syscall.SIGKILL, 5*time.Second)
	p.n2.AwaitState("MASTER", 3*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb2, 2*time.Second, p.lb2)
	waitProbeOKAfter(t, pr, time.Now())
	gap, failed := lab.Gap(pr.Stop())
	t.Logf("IPv6 SIGKILL gap %s (%d failed connects)", gap, failed)
	if gap > 2500*time.Millisecond {
		t.Errorf("client-visible gap %s after SIGKILL, want well under 2.5s", gap)
	}
}

// TestIPv6MasterTerminated: SIGTERM the master; priority 0 hands over and
// a client connecting every 10 ms sees no failed connection.
func TestIPv6MasterTerminated(t *testing.T) {
	p := newPair6Lab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	if err := p.n1.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Errorf("vipd exited with %v after SIGTERM, want 0\n%s", err, p.n1.Log())
	}
	p.n2.AwaitState("MASTER", 2*time.Second)
	if p.lb1.HasAddr(p.vip) {
		t.Error("the stopped node left the VIP on its interface")
	}
	lab.AwaitHolder(t, p.vip, p.lb2, time.Second, p.lb1, p.lb2)
	waitProbeOKAfter(t, pr, time.Now().Add(300*time.Millisecond))
	gap, failed := lab.Gap(pr.Stop())
	t.Logf("IPv6 SIGTERM handover: client gap %s, %d failed connects", gap, failed)
	if failed != 0 {
		t.Errorf("%d client connects failed during an IPv6 SIGTERM handover (gap %s); want none", failed, gap)
	}
	if !strings.Contains(p.n1.Log(), "priority 0") && !strings.Contains(p.n2.Log(), "priority 0") {
		t.Errorf("neither log mentions the priority-0 advert")
	}
}

// TestIPv6Unicast: unicast adverts between the node addresses; the backup
// names the master by its configured address, and failover works.
func TestIPv6Unicast(t *testing.T) {
	p := newPair6Lab(t, lab.PairOptions{Unicast: true}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb1, 2*time.Second, p.lb1, p.lb2)
	st, err := p.n2.Status()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Instances[0].MasterAddr; got != p.lb1.Addr.String() {
		t.Errorf("backup's master_addr = %s, want %s", got, p.lb1.Addr)
	}
	p.n1.Stop(syscall.SIGKILL, 5*time.Second)
	p.n2.AwaitState("MASTER", 3*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb2, 2*time.Second, p.lb2)
}
