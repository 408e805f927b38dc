package integration

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// Interop with keepalived (Debian's package, 2.2.7) on the same VRID:
// keepalived master / vipd backup and the reverse, failover both ways, and
// what each side makes of the other's checksums.

// kaLab is one vipd node and one keepalived node on a segment.
type kaLab struct {
	*lab.Lab
	ka, vp *lab.Host // keepalived's host (.11), vipd's host (.12)
	vip    netip.Addr
}

func newKALab(t *testing.T) *kaLab {
	t.Helper()
	lab.RequireKeepalived(t)
	l := lab.NewLab(t)
	return &kaLab{Lab: l, ka: l.AddHost("ka", 11), vp: l.AddHost("vp", 12), vip: l.Addr(10)}
}

// startVipd starts vipd on host with the keepalived host listed as the
// other [[node]], as an operator migrating one side would write it.
func (k *kaLab) startVipd(t *testing.T, o lab.PairOptions, prio, kaPrio int) *lab.Node {
	t.Helper()
	o.VIP = k.vip
	base := k.WriteConfig(t, o, []lab.LBNode{lab.N("vp", k.vp, prio), lab.N("ka", k.ka, kaPrio)})
	data, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(k.Dir(), "vp.sock")
	cfg := filepath.Join(k.Dir(), "vp.toml")
	if err := os.WriteFile(cfg, append(data, fmt.Sprintf("\n[control]\nsocket = %q\n", sock)...), 0o644); err != nil {
		t.Fatal(err)
	}
	return k.StartNode(k.vp, "vp", cfg, sock)
}

// assertOneHolder samples the VIP's holders every 20 ms for d and fails on
// any sample where the holder is not exactly want.
func assertOneHolder(t *testing.T, vip netip.Addr, want *lab.Host, d time.Duration, hosts ...*lab.Host) {
	t.Helper()
	bad, n := 0, 0
	var first []string
	end := time.Now().Add(d)
	for ; time.Now().Before(end) && n < 10000; n++ {
		got := lab.Holders(vip, hosts...)
		if len(got) != 1 || got[0] != want.Name {
			if bad == 0 {
				first = got
			}
			bad++
		}
		time.Sleep(20 * time.Millisecond) // sampling period, not a wait for a condition
	}
	if bad > 0 {
		t.Errorf("%d of %d samples: VIP held by %v, want only %s", bad, n, first, want.Name)
	}
}

var kaChecksumErr = regexp.MustCompile(`(?i)checksum|invalid`)

// TestKeepalivedMasterVipdBackup: keepalived (150) is master, vipd (100)
// follows it, reports keepalived's pseudo-header checksum, takes over when
// keepalived crashes, and hands back when keepalived returns (preemption).
func TestKeepalivedMasterVipdBackup(t *testing.T) {
	k := newKALab(t)
	ka := k.StartKeepalived(t, k.ka, "ka", lab.KeepalivedOptions{VIP: k.vip, Priority: 150, AdvertInt: "1"})
	ka.AwaitLog("Entering MASTER STATE", 0, 10*time.Second)
	n := k.startVipd(t, lab.PairOptions{AdvertInterval: "1s"}, 100, 150)
	n.AwaitState("BACKUP", 5*time.Second)
	err := lab.WaitFor(5*time.Second, func() error {
		st, err := n.Status()
		if err != nil {
			return err
		}
		in := st.Instances[0]
		if in.MasterAddr != k.ka.Addr.String() || len(in.Senders) != 1 || in.Senders[0].Checksum != "pseudo-header" {
			return fmt.Errorf("master_addr %s, senders %+v; want keepalived %s with the pseudo-header checksum", in.MasterAddr, in.Senders, k.ka.Addr)
		}
		if in.Drops["checksum"] != 0 {
			return fmt.Errorf("vipd dropped %d of keepalived's adverts for their checksum", in.Drops["checksum"])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, n.Log())
	}
	assertOneHolder(t, k.vip, k.ka, 3*time.Second, k.ka, k.vp)
	if s := n.State(); s != "BACKUP" {
		t.Fatalf("vipd is %s beside a higher-priority keepalived", s)
	}

	// keepalived crashes: vipd takes over after Master_Down_Interval.
	ka.Crash()
	killed := time.Now()
	n.AwaitState("MASTER", 6*time.Second)
	t.Logf("vipd MASTER %s after SIGKILL of keepalived (Down_Interval at 1 s, priority 100: 3.61 s)", time.Since(killed).Round(time.Millisecond))
	lab.AwaitHolder(t, k.vip, k.vp, 2*time.Second, k.vp)
	// keepalived does not speak liveness: vipd never acted on it, and the
	// takeover is the RFC's.
	if st, err := n.Status(); err == nil {
		for _, p := range st.Peers {
			if p.Name == "ka" && (p.Liveness == nil || p.Liveness.Speaks || p.Liveness.Crashes != 0) {
				t.Errorf("vipd's liveness to keepalived: %+v, want never spoken, no crash", p.Liveness)
			}
		}
		if r := st.Instances[0].LastReason; !strings.Contains(r, "Down_Interval") {
			t.Errorf("takeover reason %q, want Master_Down_Interval", r)
		}
	}

	// keepalived returns with the higher priority and preempts; vipd
	// accepts its adverts and lets go of the VIP.
	mark := ka.LogLen()
	ka.Start()
	ka.AwaitLog("Entering MASTER STATE", mark, 10*time.Second)
	n.AwaitState("BACKUP", 3*time.Second)
	lab.AwaitHolder(t, k.vip, k.ka, 3*time.Second, k.ka, k.vp)
	if m := kaChecksumErr.FindString(ka.Log()); m != "" {
		t.Errorf("keepalived logged %q about vipd's adverts\n%s", m, ka.Log())
	}
}

// TestKeepalivedMixedInterval: keepalived at 1 s, vipd at 200 ms as the
// backup adopts the master's advertised interval (RFC 9568 6.4.2): it
// reports master_interval_ms 1000 and does not time out between adverts.
func TestKeepalivedMixedInterval(t *testing.T) {
	k := newKALab(t)
	ka := k.StartKeepalived(t, k.ka, "ka", lab.KeepalivedOptions{VIP: k.vip, Priority: 150, AdvertInt: "1"})
	ka.AwaitLog("Entering MASTER STATE", 0, 10*time.Second)
	n := k.startVipd(t, lab.PairOptions{AdvertInterval: "200ms"}, 100, 150)
	n.AwaitState("BACKUP", 5*time.Second)
	err := lab.WaitFor(5*time.Second, func() error {
		st, err := n.Status()
		if err != nil {
			return err
		}
		in := st.Instances[0]
		if in.MasterIntervalMs != 1000 {
			return fmt.Errorf("master_interval_ms %v, want 1000 (advert_interval_ms %v)", in.MasterIntervalMs, in.AdvertIntervalMs)
		}
		// Down_Interval = 3*1000 + (256-100)*1000/256 = 3609.375 ms.
		if in.DownIntervalMs < 3600 || in.DownIntervalMs > 3620 {
			return fmt.Errorf("down_interval_ms %v, want 3609 (from the master's 1 s)", in.DownIntervalMs)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, n.Log())
	}
	// With its own 200 ms Down_Interval (722 ms) it would take over between
	// keepalived's 1 s adverts; once it has heard one it must stay BACKUP.
	before, _ := n.Status()
	if in := before.Instances[0]; in.Transitions != 1 {
		// A fresh backup assumes startup_interval (1 s) until it hears an
		// advert, so it must not time out on its own 722 ms Down_Interval
		// before keepalived's first 1 s advert: INIT -> BACKUP only.
		t.Errorf("vipd flapped at start-up before the first 1 s advert: %+v", in.Recent)
	}
	assertOneHolder(t, k.vip, k.ka, 3*time.Second, k.ka, k.vp)
	after, _ := n.Status()
	if a, b := after.Instances[0], before.Instances[0]; a.State != "BACKUP" || a.Transitions != b.Transitions {
		t.Errorf("vipd %s, transitions %d -> %d in steady state; want BACKUP throughout\n%s", a.State, b.Transitions, a.Transitions, n.Log())
	}
}

// TestVipdMasterKeepalivedBackup: vipd (150) is master, keepalived (100)
// accepts its adverts (no checksum complaint) and stays BACKUP; SIGTERM of
// vipd sends priority 0 and keepalived takes over after Skew_Time, not
// Master_Down_Interval.
func TestVipdMasterKeepalivedBackup(t *testing.T) {
	k := newKALab(t)
	n := k.startVipd(t, lab.PairOptions{AdvertInterval: "1s"}, 150, 100)
	n.AwaitState("MASTER", 8*time.Second)
	ka := k.StartKeepalived(t, k.ka, "ka", lab.KeepalivedOptions{VIP: k.vip, Priority: 100, AdvertInt: "1"})
	ka.AwaitLog("Entering BACKUP STATE", 0, 10*time.Second)
	assertOneHolder(t, k.vip, k.vp, 5*time.Second, k.ka, k.vp)
	if s := n.State(); s != "MASTER" {
		t.Fatalf("vipd is %s", s)
	}
	if m := kaChecksumErr.FindString(ka.Log()); m != "" {
		t.Fatalf("keepalived logged %q about vipd's adverts\n%s", m, ka.Log())
	}
	if strings.Contains(ka.Log(), "Entering MASTER STATE") {
		t.Fatalf("keepalived was MASTER beside vipd\n%s", ka.Log())
	}

	mark := ka.LogLen()
	start := time.Now()
	if err := n.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("vipd exited with %v after SIGTERM", err)
	}
	ka.AwaitLog("Entering MASTER STATE", mark, 5*time.Second)
	took := time.Since(start)
	t.Logf("keepalived MASTER %s after SIGTERM of vipd (Skew_Time 609 ms, Down_Interval 3609 ms)", took.Round(time.Millisecond))
	// Priority 0 honoured: well under keepalived's 3.6 s Master_Down_Interval.
	if took > 2500*time.Millisecond {
		t.Errorf("keepalived took over %s after vipd's SIGTERM; priority 0 should make it ~Skew_Time (0.6 s)\n%s", took, ka.Log())
	}
	lab.AwaitHolder(t, k.vip, k.ka, 3*time.Second, k.ka, k.vp)
	if m := kaChecksumErr.FindString(ka.Log()); m != "" {
		t.Errorf("keepalived logged %q\n%s", m, ka.Log())
	}
}

// TestVipdRFC9568ChecksumKeepalived documents what keepalived does with
// adverts whose checksum covers the VRRP message only (checksum =
// "rfc9568").
func TestVipdRFC9568ChecksumKeepalived(t *testing.T) {
	k := newKALab(t)
	n := k.startVipd(t, lab.PairOptions{AdvertInterval: "1s", Checksum: "rfc9568"}, 150, 100)
	n.AwaitState("MASTER", 8*time.Second)
	ka := k.StartKeepalived(t, k.ka, "ka", lab.KeepalivedOptions{VIP: k.vip, Priority: 100, AdvertInt: "1"})
	// keepalived 2.2.7 rejects every message-only checksum ("(VI_51)
	// Invalid VRRPv3 checksum"), times out and becomes MASTER too: a
	// split brain, both hosts hold the VIP. vipd accepts keepalived's
	// pseudo-header adverts (priority 100 < 150) and stays MASTER.
	ka.AwaitLog("Invalid VRRPv3 checksum", 0, 5*time.Second)
	ka.AwaitLog("Entering MASTER STATE", 0, 8*time.Second)
	lab.AwaitHolder(t, k.vip, k.ka, 0, k.ka) // keepalived holds it ...
	if !k.vp.HasAddr(k.vip) || n.State() != "MASTER" {
		t.Fatalf("vipd is %s, holds VIP %v; want MASTER with the VIP (split brain)", n.State(), k.vp.HasAddr(k.vip))
	}
	err := lab.WaitFor(3*time.Second, func() error {
		st, err := n.Status()
		if err != nil {
			return err
		}
		in := st.Instances[0]
		if len(in.Senders) != 1 || in.Senders[0].Addr != k.ka.Addr.String() || in.Senders[0].Checksum != "pseudo-header" {
			return fmt.Errorf("senders %+v, want keepalived with pseudo-header", in.Senders)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rfc9568 checksum: keepalived rejects vipd's adverts and is MASTER too; holders %v", lab.Holders(k.vip, k.ka, k.vp))

	// The README's fix: the pseudo-header form (vipd's default) heals it.
	if err := n.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("vipd exited with %v after SIGTERM", err)
	}
	mark := ka.LogLen()
	n = k.startVipd(t, lab.PairOptions{AdvertInterval: "1s"}, 150, 100)
	ka.AwaitLog("Entering BACKUP STATE", mark, 15*time.Second)
	n.AwaitState("MASTER", 3*time.Second)
	lab.AwaitHolder(t, k.vip, k.vp, 3*time.Second, k.ka, k.vp)
	mark = ka.LogLen()
	assertOneHolder(t, k.vip, k.vp, 3*time.Second, k.ka, k.vp)
	if m := kaChecksumErr.FindString(ka.Log()[mark:]); m != "" {
		t.Errorf("keepalived still logs %q with the pseudo-header checksum\n%s", m, ka.Log())
	}
}
