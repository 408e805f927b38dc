//go:build linux

package lab

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HelperMain runs the test binary as a helper process inside a namespace.
func HelperMain(role string) int {
	switch role {
	case "probe":
		return probeMain()
	case "apiserver":
		return apiserverMain()
	case "inject":
		return injectMain()
	case "get":
		return getMain()
	case "hold":
		return holdMain()
	case "delay":
		return delayMain()
	case "bgp":
		return speakerMain()
	case "flows":
		return flowsMain()
	case "streamsrv":
		return streamServerMain()
	case "streamcli":
		return streamClientMain()
	case "vrrpcap":
		return vrrpCaptureMain()
	}
	fmt.Fprintln(os.Stderr, "unknown helper role", role)
	return 2
}

// ---- prober: a client connecting every 10 ms ----

// ProbeSample is one connection attempt by the prober.
type ProbeSample struct {
	At  time.Time `json:"at"`
	OK  bool      `json:"ok"`
	Err string    `json:"err,omitempty"`
	// Who answered (the first line the server sent), when read.
	Who string `json:"who,omitempty"`
	// Ms is how long the attempt took: the connect, and with readLine the
	// first line too (a proxied connection's whole way to the server).
	Ms float64 `json:"ms"`
}

func probeMain() int {
	target := os.Getenv("VIPD_PROBE_TARGET")
	every, _ := time.ParseDuration(os.Getenv("VIPD_PROBE_EVERY"))
	if every <= 0 {
		every = 10 * time.Millisecond
	}
	limit, _ := time.ParseDuration(os.Getenv("VIPD_PROBE_LIMIT"))
	if limit <= 0 {
		limit = 2 * time.Minute
	}
	readLine := os.Getenv("VIPD_PROBE_READ") == "1"
	concurrent := os.Getenv("VIPD_PROBE_CONCURRENT") == "1"
	out, err := os.Create(os.Getenv("VIPD_PROBE_OUT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer out.Close()
	w := bufio.NewWriter(out)
	defer w.Flush()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	enc := json.NewEncoder(w)
	// Concurrent: every tick starts an attempt whatever the earlier ones
	// are doing (at most 100 in flight), so an outage shows as one failed
	// attempt per tick rather than one per connect timeout.
	results := make(chan ProbeSample, 128)
	inflight := make(chan struct{}, 100)
	written := make(chan struct{})
	go func() {
		defer close(written)
		for s := range results {
			enc.Encode(s)
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	end := time.Now().Add(limit)
	var wg sync.WaitGroup
	for n := 0; n < 1_000_000 && time.Now().Before(end); n++ {
		if concurrent {
			inflight <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- probeOnce(target, readLine)
				<-inflight
			}()
		} else {
			results <- probeOnce(target, readLine)
		}
		select {
		case <-ctx.Done():
			n = 1_000_000
		case <-t.C:
		}
	}
	wg.Wait()
	close(results)
	<-written
	return 0
}

// probeOnce is one attempt: connect (200 ms timeout), and with readLine
// read the first line (500 ms).
func probeOnce(target string, readLine bool) ProbeSample {
	s := ProbeSample{At: time.Now()}
	c, err := net.DialTimeout("tcp", target, 200*time.Millisecond)
	if err == nil {
		s.OK = true
		if readLine {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			if rerr != nil {
				s.OK, s.Err = false, "read: "+rerr.Error()
			}
			s.Who = strings.TrimSpace(line)
		}
		c.Close()
	} else {
		s.Err = err.Error()
	}
	s.Ms = float64(time.Since(s.At).Microseconds()) / 1000
	return s
}

// Prober is a running prober process in a host namespace.
type Prober struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  string
	done chan struct{}
}

// StartProber connects to target every 10 ms from host until Stop, one
// attempt at a time.
func StartProber(t testing.TB, h *Host, target netip.AddrPort, readLine bool) *Prober {
	t.Helper()
	return startProber(t, h, target, readLine, false)
}

// StartProberEvery is StartProber with an attempt every `every` instead
// of every 10 ms.
func StartProberEvery(t testing.TB, h *Host, target netip.AddrPort, readLine bool, every time.Duration) *Prober {
	t.Helper()
	return startProber(t, h, target, readLine, false, "VIPD_PROBE_EVERY="+every.String())
}

// StartProberConcurrent starts an attempt every 10 ms whatever the earlier
// ones are doing: an outage of d shows as about d/10ms failed attempts,
// to the tick, instead of one per connect timeout. Its samples are in
// the order the attempts ended; sort them by At.
func StartProberConcurrent(t testing.TB, h *Host, target netip.AddrPort, readLine bool) *Prober {
	t.Helper()
	return startProber(t, h, target, readLine, true)
}

func startProber(t testing.TB, h *Host, target netip.AddrPort, readLine, concurrent bool, env ...string) *Prober {
	t.Helper()
	self, _ := os.Executable()
	p := &Prober{t: t, out: filepath.Join(t.TempDir(), "probe.jsonl"), done: make(chan struct{})}
	p.cmd = h.Exec(context.Background(), self, "-test.run=^$")
	p.cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=probe", "VIPD_PROBE_TARGET="+target.String(), "VIPD_PROBE_OUT="+p.out)
	if readLine {
		p.cmd.Env = append(p.cmd.Env, "VIPD_PROBE_READ=1")
	}
	if concurrent {
		p.cmd.Env = append(p.cmd.Env, "VIPD_PROBE_CONCURRENT=1")
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Stop() })
	return p
}

// Stop ends the prober and returns its samples.
func (p *Prober) Stop() []ProbeSample {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return readSamples(p.out)
}

// Samples returns what the prober wrote so far.
func (p *Prober) Samples() []ProbeSample { return readSamples(p.out) }

func readSamples(path string) []ProbeSample {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []ProbeSample
	dec := json.NewDecoder(f)
	for {
		var s ProbeSample
		if err := dec.Decode(&s); err != nil {
			return out
		}
		out = append(out, s)
	}
}

// Gap is the longest client-visible outage: from the first failed attempt
// to the next success. It also returns the number of failed attempts.
func Gap(samples []ProbeSample) (time.Duration, int) {
	var longest time.Duration
	var start time.Time
	failed := 0
	for _, s := range samples {
		if !s.OK {
			failed++
			if start.IsZero() {
				start = s.At
			}
			continue
		}
		if !start.IsZero() {
			if g := s.At.Sub(start); g > longest {
				longest = g
			}
			start = time.Time{}
		}
	}
	if !start.IsZero() && len(samples) > 0 {
		if g := samples[len(samples)-1].At.Sub(start); g > longest {
			longest = g
		}
	}
	return longest, failed
}

// ---- stand-in control plane: TLS /readyz on 6443, TCP on 50000 ----

func apiserverMain() int {
	name := os.Getenv("VIPD_CP_NAME")
	modeFile := os.Getenv("VIPD_CP_MODE")
	cert, err := tls.LoadX509KeyPair(os.Getenv("VIPD_CP_CERT"), os.Getenv("VIPD_CP_KEY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mode := func() string {
		b, _ := os.ReadFile(modeFile)
		return strings.TrimSpace(string(b))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		switch mode() {
		case "500":
			http.Error(w, "[-]etcd failed", http.StatusInternalServerError)
		case "hang":
			<-r.Context().Done()
		default:
			io.WriteString(w, "ok")
		}
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name+"\n") })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		f := w.(http.Flusher)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "%s %d\n", name, i); err != nil {
				return
			}
			f.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	// Probes and drills connect through the proxy and close before any TLS
	// handshake: "TLS handshake error" lines by the hundred say nothing.
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog: log.New(io.Discard, "", 0)}
	var mu sync.Mutex
	var ln6443 net.Listener
	open := func() {
		mu.Lock()
		defer mu.Unlock()
		if ln6443 != nil {
			return
		}
		ln, err := net.Listen("tcp", ":6443")
		if err != nil {
			return
		}
		ln6443 = ln
		go srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	}
	closeLn := func() {
		mu.Lock()
		defer mu.Unlock()
		if ln6443 != nil {
			ln6443.Close()
			ln6443 = nil
		}
	}
	open()
	// Talos apid stand-in: a banner with our name, then echo.
	ln5, err := net.Listen("tcp", ":50000")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for {
			c, err := ln5.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", name)
				io.Copy(c, c)
			}()
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
			if mode() == "closed" {
				closeLn()
			} else {
				open()
			}
		}
	}
}

// ControlPlane is one stand-in control-plane node.
type ControlPlane struct {
	Host     *Host
	modeFile string
	cmd      *exec.Cmd
}

// SetMode switches /readyz: "ok", "500", "hang" or "closed".
func (c *ControlPlane) SetMode(t testing.TB, mode string) {
	if err := os.WriteFile(c.modeFile, []byte(mode), 0o644); err != nil {
		t.Fatal(err)
	}
}

// PKI is a CA and a serving certificate for the stand-ins.
type PKI struct{ CA, Cert, Key string }

// NewPKI writes a CA and a leaf valid for "kubernetes" and any IP used.
func NewPKI(t testing.TB, ips ...netip.Addr) PKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vipd-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"kubernetes", "localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range ips {
		leaf.IPAddresses = append(leaf.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	p := PKI{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}
	os.WriteFile(p.CA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(p.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(p.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return p
}

// StartControlPlane runs a stand-in apiserver + apid in host.
func StartControlPlane(t testing.TB, h *Host, pki PKI) *ControlPlane {
	t.Helper()
	self, _ := os.Executable()
	c := &ControlPlane{Host: h, modeFile: filepath.Join(t.TempDir(), "mode")}
	c.SetMode(t, "ok")
	c.cmd = h.Exec(context.Background(), self, "-test.run=^$")
	c.cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=apiserver", "VIPD_CP_NAME="+h.Name,
		"VIPD_CP_MODE="+c.modeFile, "VIPD_CP_CERT="+pki.Cert, "VIPD_CP_KEY="+pki.Key)
	c.cmd.Stderr = os.Stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	})
	return c
}
