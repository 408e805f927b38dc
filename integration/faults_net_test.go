package integration

import (
	"fmt"
	"math"
	"os/exec"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
)

// TestFaultPartitionHealWindow: cut the master off the segment (both
// become MASTER, which nothing can prevent), heal: the dual-master window
// after healing is at most one advert interval, measured from the daemon's
// own transition timestamp. Sequential: it measures a ~200 ms window.
func TestFaultPartitionHealWindow(t *testing.T) {
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	p.Cut(p.lb1)
	p.n2.AwaitState("MASTER", 3*time.Second)
	time.Sleep(time.Second) // let the split persist
	healed := time.Now()
	p.Heal(p.lb1)
	oneMaster(t, p.vip, p.n1, 3*time.Second, p.n1, p.n2)
	back := lastTransitionTo(t, p.n2, "BACKUP")
	dual := back.Sub(healed)
	t.Logf("partition healed: lb2 left MASTER %s after the heal (advert interval 200ms)", dual.Round(time.Millisecond))
	if back.IsZero() || dual > 200*time.Millisecond+50*time.Millisecond {
		t.Errorf("dual master lasted %s after the heal, want at most one advert interval (200ms, +50ms slack)", dual)
	}
}

// TestFaultOneWayLoss: lb2 stops hearing lb1 (nftables drops VRRP from lb1
// in lb2's input), lb1 still hears lb2. lb2 becomes MASTER after its
// Down_Interval and can never learn otherwise; lb1 hears lb2's lower
// priority, answers each advert at once and re-sends gratuitous ARP, so
// lb1 stays MASTER and clients keep resolving the VIP to lb1. Figures: lb1
// flaps (transitions), lb1's advert rate, and where the client's ARP entry
// points. After the fault, one master within an advert interval.
func TestFaultOneWayLoss(t *testing.T) {
	t.Parallel()
	lab.RequireNft(t)
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	mac1 := hwaddr(t, p.lb1)
	tr1, tr2 := instance(t, p.n1).Transitions, instance(t, p.n2).Transitions
	sent0 := instance(t, p.n1).AdvertsSent
	lab.Nft(t, p.lb2.NS, fmt.Sprintf("table inet vipdfault {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ip protocol vrrp ip saddr %s counter drop\n }\n}\n", p.lb1.Addr))
	start := time.Now()
	p.n2.AwaitState("MASTER", 3*time.Second)
	t.Logf("one-way loss: lb2 became MASTER after %s (Down_Interval %s)", time.Since(start).Round(time.Millisecond), downInterval(200*time.Millisecond, 100))
	became := lastTransitionTo(t, p.n2, "MASTER")
	const hold = 4 * time.Second
	// Sample where the client's ARP entry points while the fault lasts.
	// lb2 sends its own GARP burst (~1 s) on becoming MASTER, so the
	// entry may bounce at first; lb1 re-announces on every lb2 advert.
	var wrongAt []time.Duration
	samples := 0
	for end := time.Now().Add(hold); time.Now().Before(end); samples++ {
		exec.Command("ip", "netns", "exec", p.client.NS, "ping", "-c1", "-W1", p.vip.String()).Run()
		if m := neighMAC(p.client, p.vip); m != mac1 {
			wrongAt = append(wrongAt, time.Since(became))
		}
		time.Sleep(200 * time.Millisecond) // sampling cadence while the fault persists
	}
	in1 := instance(t, p.n1)
	in2 := instance(t, p.n2)
	rate := float64(in1.AdvertsSent-sent0) / time.Since(start).Seconds()
	t.Logf("one-way loss for %s: lb1 %s (%d transitions, %.1f adverts/s), lb2 %s (%d transitions), VIP on %v; client ARP entry pointed away from lb1 in %d/%d samples, at %v after lb2 took over; %d adverts dropped",
		hold, in1.State, in1.Transitions-tr1, rate, in2.State, in2.Transitions-tr2, lab.Holders(p.vip, p.lb1, p.lb2), len(wrongAt), samples, wrongAt, lab.NftCounter(p.lb2.NS, "inet", "vipdfault"))
	if in1.State != "MASTER" || in1.Transitions != tr1 {
		t.Errorf("lb1 flapped under one-way loss: %s, %d transitions", in1.State, in1.Transitions-tr1)
	}
	if in2.Transitions-tr2 > 1 {
		t.Errorf("lb2 flapped: %d transitions, want 1 (BACKUP -> MASTER)", in2.Transitions-tr2)
	}
	for _, d := range wrongAt {
		if d > 1500*time.Millisecond {
			t.Errorf("the client resolved the VIP away from lb1 %s after lb2 took over (after lb2's GARP burst); lb1 should have re-announced", d)
		}
	}
	if rate < 4.5 {
		t.Errorf("lb1 sent %.1f adverts/s, want >= 5/s (one per lb2 advert or per interval)", rate)
	}
	exec.Command("ip", "netns", "exec", p.lb2.NS, "nft", "delete", "table", "inet", "vipdfault").Run()
	healed := time.Now()
	oneMaster(t, p.vip, p.n1, 3*time.Second, p.n1, p.n2)
	t.Logf("fault removed: one master again %s later", lastTransitionTo(t, p.n2, "BACKUP").Sub(healed).Round(time.Millisecond))
}

// TestFaultSegmentLoss: 20% random loss on the segment (per receiver) for
// 20 s at the default 200 ms timers. A needless failover needs the three
// adverts inside lb2's Down_Interval (721.9 ms) lost in a row after one
// received: P = 0.8 * 0.2^3 = 0.64% per advert, so about 0.64 needless
// failovers are expected in 100 adverts. Sequential: loss plus a loaded
// CPU would measure the CPU.
func TestFaultSegmentLoss(t *testing.T) {
	lab.RequireNft(t)
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	tr1, tr2 := instance(t, p.n1).Transitions, instance(t, p.n2).Transitions
	w := watchStates(t, p.n1, p.n2)
	const loss, dur = 20, 20 * time.Second
	iv := 200 * time.Millisecond
	stop := p.SegmentLoss(t, loss)
	time.Sleep(dur) // the fault persists
	dropped := lab.NftCounter(p.SwitchNS(), "bridge", "vipdloss")
	stop()
	w.Stop()
	in1, in2 := instance(t, p.n1), instance(t, p.n2)
	episodes := (in2.Transitions - tr2) / 2 // BACKUP -> MASTER -> BACKUP
	pl := float64(loss) / 100
	k := int(math.Floor(float64(downInterval(iv, 100)) / float64(iv))) // adverts that fit in Down_Interval
	perAdvert := (1 - pl) * math.Pow(pl, float64(k))
	expected := perAdvert * float64(dur/iv)
	longest, total := w.dualMaster()
	t.Logf("%d%% loss for %s: lb2 needless failovers %d (%d transitions), lb1 transitions %d; expected %.2f (P=%.2f%% per advert, %d losses in a row); dual master longest %s total %s; %d frames dropped",
		loss, dur, episodes, in2.Transitions-tr2, in1.Transitions-tr1, expected, 100*perAdvert, k, longest.Round(time.Millisecond), total.Round(time.Millisecond), dropped)
	if in1.Transitions != tr1 {
		t.Errorf("lb1 (highest priority) changed state %d times under loss, want 0", in1.Transitions-tr1)
	}
	// P(X >= 5) for Poisson(0.64) is ~4e-4.
	if episodes >= 5 {
		t.Errorf("%d needless failovers, want about %.2f (P(>=5) = %.1e)", episodes, expected, poissonTail(expected, 5))
	}
	oneMaster(t, p.vip, p.n1, 3*time.Second, p.n1, p.n2)
}

// TestFaultDelayJitter: 20 ms +- 10 ms of delay on every port of the
// segment (tc netem) for 10 s: no needless transition. Skips when the
// kernel has no sch_netem.
func TestFaultDelayJitter(t *testing.T) {
	t.Parallel()
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	if !p.HasNetem(p.lb1) {
		t.Skip("SKIP: this kernel has no sch_netem (tc qdisc netem: unknown qdisc kind); CONFIG_NET_SCH_NETEM is needed for delay/jitter")
	}
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	tr1, tr2 := instance(t, p.n1).Transitions, instance(t, p.n2).Transitions
	for _, h := range []*lab.Host{p.lb1, p.lb2, p.client} {
		if out, err := exec.Command("tc", "-n", p.SwitchNS(), "qdisc", "add", "dev", h.Peer(), "root", "netem", "delay", "20ms", "10ms").CombinedOutput(); err != nil {
			t.Fatalf("netem: %v %s", err, out)
		}
	}
	time.Sleep(10 * time.Second) // the fault persists
	in1, in2 := instance(t, p.n1), instance(t, p.n2)
	t.Logf("delay 20ms+-10ms for 10s: lb1 transitions %d, lb2 transitions %d", in1.Transitions-tr1, in2.Transitions-tr2)
	if in1.Transitions != tr1 || in2.Transitions != tr2 {
		t.Errorf("jitter caused transitions: lb1 %d, lb2 %d", in1.Transitions-tr1, in2.Transitions-tr2)
	}
	oneMaster(t, p.vip, p.n1, 3*time.Second, p.n1, p.n2)
}

// TestFaultLinkDownUp: `ip link set eth0 down` in the master's namespace:
// the VIP moves to lb2; after `up`, lb1 takes it back by preemption.
func TestFaultLinkDownUp(t *testing.T) {
	t.Parallel()
	p := newPairLab(t, lab.PairOptions{}, 150, 100)
	p.n1.AwaitState("MASTER", 5*time.Second)
	p.n2.AwaitState("BACKUP", 2*time.Second)
	pr := lab.StartProber(t, p.client, p.target(), false)
	waitProbeOK(t, pr)
	down := time.Now()
	p.IPN(p.lb1.NS, "link", "set", "eth0", "down")
	p.n2.AwaitState("MASTER", 3*time.Second)
	lab.AwaitHolder(t, p.vip, p.lb2, 2*time.Second, p.lb2)
	moved := lastTransitionTo(t, p.n2, "MASTER").Sub(down)
	waitProbeOKAfter(t, pr, time.Now())
	gapDown, _ := lab.Gap(pr.Samples())
	// Like keepalived, vipd tracks its own VRRP interface: lb1 goes FAULT
	// and lets go of the VIP instead of claiming MASTER on a dead port.
	p.n1.AwaitState("FAULT", 3*time.Second)
	if err := lab.WaitFor(3*time.Second, func() error {
		if p.lb1.HasAddr(p.vip) {
			return fmt.Errorf("lb1 (FAULT) still holds the VIP")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	st1 := instance(t, p.n1)
	t.Logf("eth0 down on lb1: lb2 MASTER after %s; lb1 is %s (%s); lb1 still has the VIP: %v; client gap %s",
		moved.Round(time.Millisecond), st1.State, st1.LastReason, p.lb1.HasAddr(p.vip), gapDown.Round(time.Millisecond))
	time.Sleep(time.Second) // the fault persists
	up := time.Now()
	p.IPN(p.lb1.NS, "link", "set", "eth0", "up")
	oneMaster(t, p.vip, p.n1, 8*time.Second, p.n1, p.n2)
	back := lastTransitionTo(t, p.n2, "BACKUP").Sub(up)
	waitProbeOKAfter(t, pr, time.Now().Add(500*time.Millisecond))
	var after []lab.ProbeSample
	for _, s := range pr.Stop() {
		if s.At.After(up) {
			after = append(after, s)
		}
	}
	gapUp, failedUp := lab.Gap(after)
	t.Logf("eth0 up: lb1 left FAULT and took the VIP back; lb2 yielded %s after up; client gap after up %s, %d failed connects",
		back.Round(time.Millisecond), gapUp.Round(time.Millisecond), failedUp)
	if testing.Verbose() {
		t.Logf("lb1 log after up:\n%s", tail(p.n1.Log(), 15))
	}
}

// TestFaultMulticastBlocked: nftables drops 224.0.0.18 in and out on both
// nodes. In multicast mode neither hears the other, so both become MASTER
// (the split brain unicast mode exists for); with unicast = true the same
// rules change nothing.
func TestFaultMulticastBlocked(t *testing.T) {
	t.Parallel()
	lab.RequireNft(t)
	block := "table inet vipdmc {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ip daddr 224.0.0.18 counter drop\n }\n chain output {\n  type filter hook output priority 0; policy accept;\n  ip daddr 224.0.0.18 counter drop\n }\n}\n"
	for _, unicast := range []bool{false, true} {
		name := "multicast"
		if unicast {
			name = "unicast"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPairLab(t, lab.PairOptions{Unicast: unicast}, 150, 100)
			p.n1.AwaitState("MASTER", 5*time.Second)
			p.n2.AwaitState("BACKUP", 2*time.Second)
			tr2 := instance(t, p.n2).Transitions
			lab.Nft(t, p.lb1.NS, block)
			lab.Nft(t, p.lb2.NS, block)
			blocked := time.Now()
			if !unicast {
				p.n2.AwaitState("MASTER", 3*time.Second)
				if s := p.n1.State(); s != "MASTER" {
					t.Errorf("lb1 is %s", s)
				}
				holders := lab.Holders(p.vip, p.lb1, p.lb2)
				t.Logf("multicast blocked: lb2 MASTER after %s; both MASTER, VIP on %v (dual master: the reason unicast mode exists)",
					lastTransitionTo(t, p.n2, "MASTER").Sub(blocked).Round(time.Millisecond), holders)
				if len(holders) != 2 {
					t.Errorf("VIP holders %v, want both (split brain)", holders)
				}
			} else {
				time.Sleep(3 * time.Second) // the fault persists, several Down_Intervals
				in2 := instance(t, p.n2)
				t.Logf("multicast blocked, unicast = true: lb2 %s, %d transitions in 3s", in2.State, in2.Transitions-tr2)
				if in2.State != "BACKUP" || in2.Transitions != tr2 {
					t.Errorf("unicast pair affected by a multicast block: lb2 %s, %d transitions", in2.State, in2.Transitions-tr2)
				}
			}
			for _, h := range []*lab.Host{p.lb1, p.lb2} {
				exec.Command("ip", "netns", "exec", h.NS, "nft", "delete", "table", "inet", "vipdmc").Run()
			}
			oneMaster(t, p.vip, p.n1, 3*time.Second, p.n1, p.n2)
		})
	}
}
