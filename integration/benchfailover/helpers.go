package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"

	"github.com/vipd/vipd/integration/lab"
)

// ---- the stand-in control plane ----

// backendMain accepts on :6443, writes the client's address (for a
// proxied connection: the LB host that forwarded it) as a banner line and
// discards what it reads, until SIGTERM.
func backendMain() int {
	ln, err := net.Listen("tcp", ":6443")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
				fmt.Fprintf(c, "%s\n", ap.Addr().Unmap())
				io.Copy(io.Discard, c)
			}()
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

// helper runs this binary in h's namespace with env; it is stopped with
// SIGTERM in the cleanup.
type helper struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  string
}

func startHelper(t *lab.Bench, h *lab.Host, out string, env ...string) *helper {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hp := &helper{cmd: exec.Command("ip", "netns", "exec", h.NS, self), done: make(chan struct{}), out: out}
	hp.cmd.Env = append(os.Environ(), env...)
	hp.cmd.Stderr = os.Stderr
	if err := hp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { hp.cmd.Wait(); close(hp.done) }()
	t.Cleanup(hp.stop)
	return hp
}

func (hp *helper) stop() {
	select {
	case <-hp.done:
		return
	default:
	}
	hp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-hp.done:
	case <-time.After(3 * time.Second):
		hp.cmd.Process.Kill()
		<-hp.done
	}
}

// startBackend runs backendMain in h's namespace.
func startBackend(t *lab.Bench, h *lab.Host) {
	startHelper(t, h, "", "VIPD_BENCH_BACKEND=1")
	if err := lab.WaitFor(5*time.Second, func() error {
		c, err := exec.Command("ip", "netns", "exec", h.NS, "ss", "-Htln", "sport = :6443").Output()
		if err != nil || len(strings.TrimSpace(string(c))) == 0 {
			return fmt.Errorf("backend in %s not listening", h.NS)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v", err)
	}
}

// ---- the client: a connection started every 10 ms ----

type probeSample struct {
	At  time.Time `json:"at"`
	OK  bool      `json:"ok"`
	Res string    `json:"res"`           // ok, refused, timeout, error
	Who string    `json:"who,omitempty"` // the banner: the LB host's address
}

// probeMain starts a connection to the target every 10 ms, each in its
// own goroutine (at most 64 at once) so that an attempt waiting on a
// timeout hides none after it; an attempt succeeds when it reads the
// backend's banner within 300 ms of its start (a frozen proxy accepts in
// the kernel but never answers). One JSON line per attempt, in completion
// order.
func probeMain() int {
	target := os.Getenv("VIPD_BENCH_PROBE")
	out, err := os.Create(os.Getenv("VIPD_BENCH_OUT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer out.Close()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	slots := make(chan struct{}, 64)
	var wg sync.WaitGroup
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for n := 0; n < 1_000_000 && ctx.Err() == nil; n++ {
		select {
		case slots <- struct{}{}:
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				s := probeSample{At: time.Now(), Res: "ok"}
				deadline := s.At.Add(300 * time.Millisecond)
				c, err := net.DialTimeout("tcp", target, 300*time.Millisecond)
				if err == nil {
					c.SetReadDeadline(deadline)
					line, rerr := bufio.NewReader(c).ReadString('\n')
					c.Close()
					err = rerr
					s.Who = strings.TrimSpace(line)
				}
				if err != nil {
					s.Res = outcome(err)
				}
				s.OK = err == nil
				mu.Lock()
				enc.Encode(s)
				mu.Unlock()
			}()
		default:
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	wg.Wait()
	return 0
}

func outcome(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}

type prober struct {
	*helper
}

func startProbe(t *lab.Bench, h *lab.Host, target netip.AddrPort) *prober {
	out := filepath.Join(t.TempDir(), "probe.jsonl")
	return &prober{startHelper(t, h, out, "VIPD_BENCH_PROBE="+target.String(), "VIPD_BENCH_OUT="+out)}
}

func (p *prober) samples() []probeSample {
	var out []probeSample
	readJSONL(p.out, func(dec *json.Decoder) bool {
		var s probeSample
		if dec.Decode(&s) != nil {
			return false
		}
		out = append(out, s)
		return true
	})
	slices.SortFunc(out, func(a, b probeSample) int { return a.At.Compare(b.At) })
	return out
}

func (p *prober) stop() []probeSample { p.helper.stop(); return p.samples() }

func readJSONL(path string, each func(*json.Decoder) bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	for each(dec) {
	}
}

func countOK(ss []probeSample) int {
	n := 0
	for _, s := range ss {
		if s.OK {
			n++
		}
	}
	return n
}

// gapOf is the longest run of failed attempts (by start time): from the
// first failed attempt's start to the next successful attempt's start.
func gapOf(ss []probeSample) (float64, int) {
	var longest time.Duration
	var start time.Time
	failed := 0
	for _, s := range ss {
		if !s.OK {
			failed++
			if start.IsZero() {
				start = s.At
			}
			continue
		}
		if !start.IsZero() {
			longest = max(longest, s.At.Sub(start))
			start = time.Time{}
		}
	}
	if !start.IsZero() && len(ss) > 0 {
		longest = max(longest, ss[len(ss)-1].At.Sub(start))
	}
	return float64(longest.Microseconds()) / 1000, failed
}

// ---- the ARP monitor: who has the VIP, every 5 ms ----

type arpSample struct {
	At    time.Time `json:"at"`
	MAC   string    `json:"mac"`
	Reply bool      `json:"reply"`
}

// arpMain asks who has the VIP every 5 ms from its own host (not the
// client, whose cache the answers would disturb) and records every ARP
// packet whose sender is the VIP: replies, and gratuitous ARP.
func arpMain() int {
	vip := netip.MustParseAddr(os.Getenv("VIPD_BENCH_ARP"))
	out, err := os.Create(os.Getenv("VIPD_BENCH_OUT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer out.Close()
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	go func() {
		for {
			p, _, err := c.Read()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if p.SenderIP != vip {
				continue
			}
			mu.Lock()
			enc.Encode(arpSample{At: time.Now(), MAC: p.SenderHardwareAddr.String(), Reply: p.Operation == arp.OperationReply && p.TargetIP != vip})
			mu.Unlock()
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for n := 0; n < 1_000_000 && ctx.Err() == nil; n++ {
		c.Request(vip)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return 0
}

type arpMon struct{ *helper }

func startARP(t *lab.Bench, h *lab.Host, vip netip.Addr) *arpMon {
	out := filepath.Join(t.TempDir(), "arp.jsonl")
	return &arpMon{startHelper(t, h, out, "VIPD_BENCH_ARP="+vip.String(), "VIPD_BENCH_OUT="+out)}
}

func (a *arpMon) stop() []arpSample {
	a.helper.stop()
	var out []arpSample
	readJSONL(a.out, func(dec *json.Decoder) bool {
		var s arpSample
		if dec.Decode(&s) != nil {
			return false
		}
		out = append(out, s)
		return true
	})
	return out
}
