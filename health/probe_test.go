package health_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/health"
)

// probeTimeout bounds every probe in these tests; servers that hang must make
// the probe fail at about this time, never much later.
const probeTimeout = 300 * time.Millisecond

// outcome is the comparable part of a Result.
type outcome struct {
	OK     bool
	Detail string // compared as a substring
}

func runProbe(t *testing.T, p health.Probe) (health.Result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), probeTimeout)
	defer cancel()
	start := time.Now()
	r := p(ctx)
	return r, time.Since(start)
}

func checkOutcome(t *testing.T, want outcome, r health.Result) {
	t.Helper()
	got := outcome{OK: r.OK, Detail: r.Detail}
	if strings.Contains(r.Detail, want.Detail) {
		got.Detail = want.Detail
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result (-want +got):\n%s\nErr: %v", diff, r.Err)
	}
	if r.OK != (r.Err == nil) {
		t.Errorf("OK = %v but Err = %v", r.OK, r.Err)
	}
	if r.At.IsZero() {
		t.Error("At is zero")
	}
}

// checkBounded fails the test if a probe that should stop at its timeout
// took far longer.
func checkBounded(t *testing.T, took time.Duration) {
	t.Helper()
	if took > probeTimeout+2*time.Second {
		t.Errorf("probe took %v, want about %v", took, probeTimeout)
	}
}

func mustProbe(t *testing.T, s health.Spec) health.Probe {
	t.Helper()
	p, err := health.NewProbe(s)
	if err != nil {
		t.Fatalf("NewProbe(%+v): %v", s, err)
	}
	return p
}

// listen starts a loopback listener closed at the end of the test.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serve accepts connections on ln and hands each to handle in its own
// goroutine, until the end of the test.
func serve(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCPProbe(t *testing.T) {
	open := listen(t)
	serve(t, open, func(net.Conn) {})
	tests := []struct {
		name string
		addr string
		want outcome
	}{
		{"open", open.Addr().String(), outcome{OK: true, Detail: "connected"}},
		{"closed", closedAddr(t), outcome{OK: false, Detail: "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, took := runProbe(t, mustProbe(t, health.Spec{Type: "tcp", Addr: tt.addr}))
			checkOutcome(t, tt.want, r)
			checkBounded(t, took)
		})
	}
}

// tlsServer is a loopback TLS server that records the SNI of each handshake
// and whether the client presented a certificate.
type tlsServer struct {
	addr string
	mu   sync.Mutex
	snis []string
	cns  []string      // client certificate common names, "" when none
	done chan struct{} // one value per completed server handshake
}

func startTLSServer(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	s := &tlsServer{done: make(chan struct{}, 100)}
	ln := listen(t)
	s.addr = ln.Addr().String()
	serve(t, tls.NewListener(ln, cfg), func(c net.Conn) {
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		st := tc.ConnectionState()
		cn := ""
		if len(st.PeerCertificates) > 0 {
			cn = st.PeerCertificates[0].Subject.CommonName
		}
		s.mu.Lock()
		s.snis = append(s.snis, st.ServerName)
		s.cns = append(s.cns, cn)
		s.mu.Unlock()
		s.done <- struct{}{}
		io.Copy(io.Discard, tc) // until the client closes
	})
	return s
}

func (s *tlsServer) seen() (snis, cns []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.snis...), append([]string(nil), s.cns...)
}

func TestTLSProbe(t *testing.T) {
	pki := newTestPKI(t)
	plain := startTLSServer(t, &tls.Config{Certificates: []tls.Certificate{pki.ServerCert}})
	mtls := startTLSServer(t, &tls.Config{
		Certificates: []tls.Certificate{pki.ServerCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.ClientCAs,
	})
	mtls12 := startTLSServer(t, &tls.Config{
		Certificates: []tls.Certificate{pki.ServerCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.ClientCAs,
		MaxVersion:   tls.VersionTLS12,
	})

	tests := []struct {
		name     string
		srv      *tlsServer
		spec     health.Spec
		want     outcome
		wantSNIs []string // what the server saw, when the handshake completed
		wantCNs  []string
	}{
		{
			name: "good CA",
			srv:  plain, spec: health.Spec{CAFile: pki.CAFile},
			want:     outcome{OK: true, Detail: "TLS 1.3"},
			wantSNIs: []string{""}, wantCNs: []string{""}, // no SNI for an IP address (RFC 6066)
		},
		{
			name: "wrong CA",
			srv:  plain, spec: health.Spec{CAFile: pki.OtherCAFile},
			want: outcome{OK: false, Detail: "x509: certificate signed by unknown authority"},
		},
		{
			name: "insecure",
			srv:  plain, spec: health.Spec{InsecureSkipVerify: true},
			want:     outcome{OK: true, Detail: "handshake"},
			wantSNIs: []string{""}, wantCNs: []string{""},
		},
		{
			name: "SNI sent and verified",
			srv:  plain, spec: health.Spec{CAFile: pki.CAFile, SNI: "kubernetes"},
			want:     outcome{OK: true, Detail: "handshake"},
			wantSNIs: []string{"kubernetes"}, wantCNs: []string{""},
		},
		{
			name: "SNI not in certificate",
			srv:  plain, spec: health.Spec{CAFile: pki.CAFile, SNI: "etcd"},
			want: outcome{OK: false, Detail: "x509: certificate is valid for kubernetes, localhost, not etcd"},
		},
		{
			name: "client cert required and provided",
			srv:  mtls, spec: health.Spec{CAFile: pki.CAFile, ClientCertFile: pki.ClientCertFile, ClientKeyFile: pki.ClientKey},
			want:     outcome{OK: true, Detail: "TLS 1.3"},
			wantSNIs: []string{""}, wantCNs: []string{"vipd"},
		},
		{
			name: "client cert required and missing (TLS 1.3 alert after handshake)",
			srv:  mtls, spec: health.Spec{CAFile: pki.CAFile},
			want: outcome{OK: false, Detail: "certificate required"},
		},
		{
			name: "client cert required and missing (TLS 1.2)",
			srv:  mtls12, spec: health.Spec{CAFile: pki.CAFile},
			want: outcome{OK: false, Detail: "handshake failure"},
		},
		{
			name: "client cert required and provided (TLS 1.2)",
			srv:  mtls12, spec: health.Spec{CAFile: pki.CAFile, ClientCertFile: pki.ClientCertFile, ClientKeyFile: pki.ClientKey},
			want:     outcome{OK: true, Detail: "TLS 1.2"},
			wantSNIs: []string{""}, wantCNs: []string{"vipd"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := tt.srv.seen()
			for len(tt.srv.done) > 0 { // from earlier cases
				<-tt.srv.done
			}
			tt.spec.Type, tt.spec.Addr = "tls", tt.srv.addr
			r, took := runProbe(t, mustProbe(t, tt.spec))
			checkOutcome(t, tt.want, r)
			checkBounded(t, took)
			if tt.wantSNIs == nil {
				return
			}
			// The server records after its side of the handshake.
			select {
			case <-tt.srv.done:
			case <-time.After(5 * time.Second):
				t.Fatal("server saw no completed handshake")
			}
			snis, cns := tt.srv.seen()
			snis, cns = snis[len(before):], cns[len(before):]
			if diff := cmp.Diff(tt.wantSNIs, snis); diff != "" {
				t.Errorf("SNI seen by server (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCNs, cns); diff != "" {
				t.Errorf("client cert seen by server (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTLSProbeHungServer is the "hung apiserver": it accepts TCP and never
// answers the ClientHello. A plain tcp check passes; the tls probe must fail
// at its timeout.
func TestTLSProbeHungServer(t *testing.T) {
	ln := listen(t)
	stop := make(chan struct{})
	serve(t, ln, func(net.Conn) { <-stop })
	t.Cleanup(func() { close(stop) }) // runs before serve's cleanup waits

	r, _ := runProbe(t, mustProbe(t, health.Spec{Type: "tcp", Addr: ln.Addr().String()}))
	checkOutcome(t, outcome{OK: true, Detail: "connected"}, r)

	r, took := runProbe(t, mustProbe(t, health.Spec{Type: "tls", Addr: ln.Addr().String(), InsecureSkipVerify: true}))
	checkOutcome(t, outcome{OK: false, Detail: "timeout after 300ms"}, r)
	checkBounded(t, took)
	if took < probeTimeout-50*time.Millisecond {
		t.Errorf("probe gave up after %v, before its timeout %v", took, probeTimeout)
	}
	if !errors.Is(r.Err, health.ErrTimeout) {
		t.Errorf("Err = %v, want it to wrap ErrTimeout", r.Err)
	}
}

// httpRequest is what an HTTP test server saw.
type httpRequest struct {
	Method, Path, Host, Connection string
	CN                             string
}

type httpServer struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []httpRequest
	conns int // new connections
}

// startHTTPServer starts an HTTP (tlsCfg nil) or HTTPS loopback server that
// records requests and answers with handler.
func startHTTPServer(t *testing.T, tlsCfg *tls.Config, handler http.HandlerFunc) *httpServer {
	t.Helper()
	s := &httpServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := httpRequest{Method: r.Method, Path: r.URL.Path, Host: r.Host, Connection: r.Header.Get("Connection")}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			req.CN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		s.mu.Unlock()
		handler(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	if tlsCfg != nil {
		s.TLS = tlsCfg
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *httpServer) requests() ([]httpRequest, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]httpRequest(nil), s.reqs...), s.conns
}

func TestHTTPSProbe(t *testing.T) {
	pki := newTestPKI(t)
	srvTLS := &tls.Config{
		Certificates: []tls.Certificate{pki.ServerCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pki.ClientCAs,
	}
	stop := make(chan struct{})
	srv := startHTTPServer(t, srvTLS, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			fmt.Fprint(w, "ok")
		case "/broken":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n")
		case "/hang":
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		case "/stall-body":
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		case "/mtls":
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				http.Error(w, "client certificate required", http.StatusUnauthorized)
				return
			}
			fmt.Fprint(w, "ok")
		case "/redirect":
			http.Redirect(w, r, "/readyz", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	})
	t.Cleanup(func() { close(stop) }) // before srv.Close waits for handlers

	tests := []struct {
		name    string
		spec    health.Spec
		want    outcome
		wantReq *httpRequest
		slow    bool // fails at the timeout
	}{
		{
			name:    "readyz 200",
			spec:    health.Spec{Path: "/readyz", CAFile: pki.CAFile},
			want:    outcome{OK: true, Detail: "HTTP 200"},
			wantReq: &httpRequest{Method: "GET", Path: "/readyz", Host: srv.Listener.Addr().String(), Connection: "close"},
		},
		{
			name: "500 fails with the verdict",
			spec: health.Spec{Path: "/broken", CAFile: pki.CAFile},
			want: outcome{OK: false, Detail: "HTTP 500: readyz check failed"},
		},
		{
			name: "expected status other than 200",
			spec: health.Spec{Path: "/broken", ExpectStatus: 500, CAFile: pki.CAFile},
			want: outcome{OK: true, Detail: "HTTP 500"},
		},
		{
			name: "redirect is not followed",
			spec: health.Spec{Path: "/redirect", CAFile: pki.CAFile},
			want: outcome{OK: false, Detail: "HTTP 302"},
		},
		{
			name: "handler hangs",
			spec: health.Spec{Path: "/hang", CAFile: pki.CAFile},
			want: outcome{OK: false, Detail: "timeout after 300ms"},
			slow: true,
		},
		{
			name: "headers then stalled body",
			spec: health.Spec{Path: "/stall-body", CAFile: pki.CAFile},
			want: outcome{OK: false, Detail: "timeout after 300ms"},
			slow: true,
		},
		{
			name: "wrong CA",
			spec: health.Spec{Path: "/readyz", CAFile: pki.OtherCAFile},
			want: outcome{OK: false, Detail: "x509: certificate signed by unknown authority"},
		},
		{
			name:    "client cert provided",
			spec:    health.Spec{Path: "/mtls", CAFile: pki.CAFile, ClientCertFile: pki.ClientCertFile, ClientKeyFile: pki.ClientKey},
			want:    outcome{OK: true, Detail: "HTTP 200"},
			wantReq: &httpRequest{Method: "GET", Path: "/mtls", Host: srv.Listener.Addr().String(), Connection: "close", CN: "vipd"},
		},
		{
			name: "client cert missing",
			spec: health.Spec{Path: "/mtls", CAFile: pki.CAFile},
			want: outcome{OK: false, Detail: "HTTP 401"},
		},
		{
			name:    "SNI sets server name and Host",
			spec:    health.Spec{Method: "HEAD", Path: "/readyz", SNI: "kubernetes", CAFile: pki.CAFile},
			want:    outcome{OK: true, Detail: "HTTP 200"},
			wantReq: &httpRequest{Method: "HEAD", Path: "/readyz", Host: "kubernetes", Connection: "close"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := srv.requests()
			tt.spec.Type, tt.spec.Addr = "https", srv.Listener.Addr().String()
			r, took := runProbe(t, mustProbe(t, tt.spec))
			checkOutcome(t, tt.want, r)
			checkBounded(t, took)
			if tt.slow && took < probeTimeout-50*time.Millisecond {
				t.Errorf("probe gave up after %v, before its timeout", took)
			}
			if tt.wantReq != nil {
				reqs, _ := srv.requests()
				if diff := cmp.Diff([]httpRequest{*tt.wantReq}, reqs[len(before):]); diff != "" {
					t.Errorf("requests seen by server (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestHTTPProbe(t *testing.T) {
	srv := startHTTPServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/healthz/deep" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write([]byte(strings.Repeat("x", 1<<20))) // more than a probe reads
	})
	addr := srv.Listener.Addr().String()
	p := mustProbe(t, health.Spec{Type: "http", Addr: addr, Method: "POST", Path: "/healthz/deep", ExpectStatus: 204})
	for range 2 {
		r, _ := runProbe(t, p)
		checkOutcome(t, outcome{OK: true, Detail: "HTTP 204"}, r)
	}
	r, _ := runProbe(t, mustProbe(t, health.Spec{Type: "http", Addr: addr}))
	checkOutcome(t, outcome{OK: true, Detail: "HTTP 200"}, r)

	reqs, conns := srv.requests()
	want := []httpRequest{
		{Method: "POST", Path: "/healthz/deep", Host: addr, Connection: "close"},
		{Method: "POST", Path: "/healthz/deep", Host: addr, Connection: "close"},
		{Method: "GET", Path: "/", Host: addr, Connection: "close"},
	}
	if diff := cmp.Diff(want, reqs); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if conns != 3 {
		t.Errorf("server saw %d connections for 3 probes, want 3 (no reuse)", conns)
	}

	r, _ = runProbe(t, mustProbe(t, health.Spec{Type: "http", Addr: closedAddr(t)}))
	checkOutcome(t, outcome{OK: false, Detail: "connection refused"}, r)
}

func TestNewProbeErrors(t *testing.T) {
	pki := newTestPKI(t)
	missing := t.TempDir() + "/missing.crt"
	tests := []struct {
		name string
		spec health.Spec
		want string // substring of the error
	}{
		{"unknown type", health.Spec{Type: "icmp", Addr: "127.0.0.1:1"}, `unknown check type "icmp"`},
		{"no port", health.Spec{Type: "tcp", Addr: "127.0.0.1"}, `"127.0.0.1"`},
		{"port zero", health.Spec{Type: "tcp", Addr: "127.0.0.1:0"}, "port in 1-65535"},
		{"http option on tcp", health.Spec{Type: "tcp", Addr: "127.0.0.1:1", Path: "/readyz"}, "not tcp"},
		{"tls option on http", health.Spec{Type: "http", Addr: "127.0.0.1:1", CAFile: pki.CAFile}, "not http"},
		{"relative path", health.Spec{Type: "http", Addr: "127.0.0.1:1", Path: "readyz"}, `"readyz" must start with /`},
		{"bad status", health.Spec{Type: "http", Addr: "127.0.0.1:1", ExpectStatus: 20}, "expect_status 20"},
		{"bad method", health.Spec{Type: "http", Addr: "127.0.0.1:1", Method: "GET /"}, "invalid method"},
		{"ca and insecure", health.Spec{Type: "tls", Addr: "127.0.0.1:1", CAFile: pki.CAFile, InsecureSkipVerify: true}, "mutually exclusive"},
		{"cert without key", health.Spec{Type: "tls", Addr: "127.0.0.1:1", ClientCertFile: pki.ClientCertFile}, "together"},
		{"missing CA file", health.Spec{Type: "https", Addr: "127.0.0.1:1", CAFile: missing}, missing},
		{"CA file not PEM", health.Spec{Type: "tls", Addr: "127.0.0.1:1", CAFile: pki.ClientKey}, pki.ClientKey + ": no PEM certificate"},
		{"key does not match", health.Spec{Type: "tls", Addr: "127.0.0.1:1", ClientCertFile: pki.ClientCertFile, ClientKeyFile: pki.CAFile}, pki.ClientCertFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := health.NewProbe(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewProbe error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
