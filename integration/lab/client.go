//go:build linux

package lab

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Get runs n HTTPS GETs of url from host, each on a new connection, and
// returns one line per request: the body (trimmed) or "ERR ...".
func Get(t testing.TB, h *Host, caFile, url string, n int) []string {
	t.Helper()
	self, _ := os.Executable()
	cmd := h.Exec(context.Background(), self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=get", "VIPD_GET_URL="+url, "VIPD_GET_CA="+caFile, "VIPD_GET_N="+strconv.Itoa(n))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("get helper: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func getMain() int {
	n, _ := strconv.Atoi(os.Getenv("VIPD_GET_N"))
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(os.Getenv("VIPD_GET_CA")); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	for i := 0; i < n && i < 10000; i++ {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true,
		}}
		resp, err := c.Get(os.Getenv("VIPD_GET_URL"))
		if err != nil {
			fmt.Printf("ERR %v\n", err)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != 200 {
			fmt.Printf("ERR HTTP %d\n", resp.StatusCode)
			continue
		}
		fmt.Println(strings.TrimSpace(string(b)))
	}
	return 0
}

// HoldEvent is one thing a held connection saw.
type HoldEvent struct {
	At   time.Time `json:"at"`
	What string    `json:"what"` // "connected", "echo", "closed", "error"
	Data string    `json:"data,omitempty"`
}

// Holder keeps one TCP connection open to a banner+echo service (the
// Talos stand-in on 50000) and records what happens to it.
type Holder struct {
	p *Prober // reuses the process plumbing
}

// Hold connects from host to target; every `every` (0 = never) it sends a
// line and expects it echoed. It records events until the connection
// ends or Stop.
func Hold(t testing.TB, h *Host, target string, every time.Duration) *Holder {
	t.Helper()
	self, _ := os.Executable()
	p := &Prober{out: t.TempDir() + "/hold.jsonl", done: make(chan struct{})}
	p.cmd = h.Exec(context.Background(), self, "-test.run=^$")
	p.cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=hold", "VIPD_HOLD_TARGET="+target,
		"VIPD_HOLD_EVERY="+every.String(), "VIPD_PROBE_OUT="+p.out)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	hd := &Holder{p: p}
	t.Cleanup(func() { hd.Stop() })
	return hd
}

// Events returns what was recorded so far.
func (h *Holder) Events() []HoldEvent {
	f, err := os.Open(h.p.out)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []HoldEvent
	dec := json.NewDecoder(f)
	for {
		var e HoldEvent
		if dec.Decode(&e) != nil {
			return out
		}
		out = append(out, e)
	}
}

// Has reports whether an event of kind what was recorded.
func (h *Holder) Has(what string) (HoldEvent, bool) {
	for _, e := range h.Events() {
		if e.What == what {
			return e, true
		}
	}
	return HoldEvent{}, false
}

// Stop ends the holder process.
func (h *Holder) Stop() { h.p.Stop() }

func holdMain() int {
	out, err := os.Create(os.Getenv("VIPD_PROBE_OUT"))
	if err != nil {
		return 1
	}
	defer out.Close()
	enc := json.NewEncoder(out)
	rec := func(what, data string) {
		enc.Encode(HoldEvent{At: time.Now(), What: what, Data: data})
		out.Sync()
	}
	every, _ := time.ParseDuration(os.Getenv("VIPD_HOLD_EVERY"))
	c, err := net.DialTimeout("tcp", os.Getenv("VIPD_HOLD_TARGET"), 2*time.Second)
	if err != nil {
		rec("error", err.Error())
		return 0
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	banner, err := r.ReadString('\n')
	if err != nil {
		rec("error", "banner: "+err.Error())
		return 0
	}
	rec("connected", strings.TrimSpace(banner))
	lines := make(chan string)
	go func() {
		for {
			c.SetReadDeadline(time.Time{})
			l, err := r.ReadString('\n')
			if err != nil {
				rec("closed", err.Error())
				close(lines)
				return
			}
			lines <- strings.TrimSpace(l)
		}
	}()
	var tick <-chan time.Time
	if every > 0 {
		tk := time.NewTicker(every)
		defer tk.Stop()
		tick = tk.C
	}
	limit := time.After(10 * time.Minute)
	for i := 0; ; i++ {
		select {
		case l, ok := <-lines:
			if !ok {
				return 0
			}
			rec("echo", l)
		case <-tick:
			fmt.Fprintf(c, "ping %d\n", i)
		case <-limit:
			return 0
		}
	}
}
