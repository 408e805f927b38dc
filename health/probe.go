package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is the outcome of one probe.
type Result struct {
	OK  bool
	Err error // nil when OK
	// Latency is how long the probe took (for tls, the handshake; for http,
	// until the body was read).
	Latency time.Duration
	// At is when the probe started.
	At time.Time
	// Detail is a short human-readable reason for status output and logs,
	// e.g. "HTTP 500", "timeout after 1s", "connection refused", "x509: ...".
	Detail string
}

// Probe runs one check. It must return once ctx is done: the [Checker] gives
// it a context that expires at the check timeout, and waits for it.
type Probe func(ctx context.Context) Result

// ErrTimeout is wrapped by Result.Err when a probe failed because its context
// expired.
var ErrTimeout = errors.New("health: timeout")

// Spec describes a network check. It mirrors the check table of the
// configuration; the daemon fills it.
type Spec struct {
	Type string // "tcp" | "tls" | "http" | "https"
	Addr string // "ip:port" (or "host:port")

	// http and https only.
	Method       string // default "GET"
	Path         string // default "/"; must start with "/"
	ExpectStatus int    // default 200; compared exactly, redirects are not followed

	// tls and https only. With neither CAFile nor InsecureSkipVerify the
	// system roots are used.
	CAFile                        string
	SNI                           string // server name to send and verify; default the host of Addr
	ClientCertFile, ClientKeyFile string // both or neither
	InsecureSkipVerify            bool
}

// Limits of the http probes.
const (
	maxBody          = 4 << 10  // bytes of body read (and discarded) per probe
	maxHeaderBytes   = 64 << 10 // response header limit
	clientAuthGrace  = 100 * time.Millisecond
	maxDetailSnippet = 120
)

// NewProbe validates s, loads its CA and client certificate once, and
// returns the probe. Errors name the offending field or file.
func NewProbe(s Spec) (Probe, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	var cfg *tls.Config
	if s.Type == "tls" || s.Type == "https" {
		var err error
		if cfg, err = s.tlsConfig(); err != nil {
			return nil, err
		}
	}
	switch s.Type {
	case "tcp":
		return tcpProbe(s.Addr), nil
	case "tls":
		return tlsProbe(s.Addr, cfg), nil
	default:
		return newHTTPProbe(s, cfg)
	}
}

func (s Spec) validate() error {
	isTLS, isHTTP := false, false
	switch s.Type {
	case "tcp":
	case "tls":
		isTLS = true
	case "http":
		isHTTP = true
	case "https":
		isTLS, isHTTP = true, true
	default:
		return fmt.Errorf("health: unknown check type %q (want tcp, tls, http or https)", s.Type)
	}
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("health: check address %q: %w", s.Addr, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || host == "" {
		return fmt.Errorf("health: check address %q: want host:port with a port in 1-65535", s.Addr)
	}
	if !isHTTP && (s.Method != "" || s.Path != "" || s.ExpectStatus != 0) {
		return fmt.Errorf("health: method, path and expect_status apply to http and https checks, not %s", s.Type)
	}
	if !isTLS && (s.CAFile != "" || s.SNI != "" || s.ClientCertFile != "" || s.ClientKeyFile != "" || s.InsecureSkipVerify) {
		return fmt.Errorf("health: ca, sni, client_cert, client_key and insecure_skip_verify apply to tls and https checks, not %s", s.Type)
	}
	if s.Path != "" && !strings.HasPrefix(s.Path, "/") {
		return fmt.Errorf("health: check path %q must start with /", s.Path)
	}
	if s.ExpectStatus != 0 && (s.ExpectStatus < 100 || s.ExpectStatus > 599) {
		return fmt.Errorf("health: expect_status %d is not an HTTP status (100-599)", s.ExpectStatus)
	}
	if s.CAFile != "" && s.InsecureSkipVerify {
		return errors.New("health: ca and insecure_skip_verify are mutually exclusive")
	}
	if (s.ClientCertFile == "") != (s.ClientKeyFile == "") {
		return errors.New("health: client_cert and client_key must be given together")
	}
	return nil
}

// clientAuthKey marks a handshake context whose probe wants to know whether
// the server asked for a client certificate.
type clientAuthKey struct{}

func (s Spec) tlsConfig() (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(s.Addr) // validated
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         host,
		InsecureSkipVerify: s.InsecureSkipVerify,
	}
	if s.SNI != "" {
		cfg.ServerName = s.SNI
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("health: CA file: %w", err) // *PathError names the file
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("health: CA file %s: no PEM certificate found", s.CAFile)
		}
		cfg.RootCAs = pool
	}
	var cert *tls.Certificate
	if s.ClientCertFile != "" {
		c, err := tls.LoadX509KeyPair(s.ClientCertFile, s.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("health: client certificate %s / key %s: %w", s.ClientCertFile, s.ClientKeyFile, err)
		}
		cert = &c
	}
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if asked, ok := cri.Context().Value(clientAuthKey{}).(*atomic.Bool); ok {
			asked.Store(true)
		}
		if cert == nil {
			return &tls.Certificate{}, nil // send none; the server decides
		}
		return cert, nil
	}
	return cfg, nil
}

func tcpProbe(addr string) Probe {
	return func(ctx context.Context) Result {
		start := time.Now()
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return failure(ctx, start, err)
		}
		lat := time.Since(start)
		conn.Close()
		return Result{OK: true, Latency: lat, At: start, Detail: "connected"}
	}
}

func tlsProbe(addr string, cfg *tls.Config) Probe {
	return func(ctx context.Context) Result {
		start := time.Now()
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return failure(ctx, start, err)
		}
		defer raw.Close()
		if dl, ok := ctx.Deadline(); ok {
			raw.SetDeadline(dl)
		}
		var asked atomic.Bool
		conn := tls.Client(raw, cfg)
		if err := conn.HandshakeContext(context.WithValue(ctx, clientAuthKey{}, &asked)); err != nil {
			return failure(ctx, start, err)
		}
		lat := time.Since(start)
		st := conn.ConnectionState()
		if st.Version == tls.VersionTLS13 && asked.Load() {
			// In TLS 1.3 the client finishes its handshake before the server
			// has checked the client certificate; a rejection arrives as an
			// alert on the first read. Wait briefly for it, or a probe
			// without the right certificate (Talos apid) would pass.
			if err := awaitClientAuth(ctx, conn); err != nil {
				return failure(ctx, start, err)
			}
		}
		return Result{OK: true, Latency: lat, At: start, Detail: tlsVersion(st.Version) + " handshake"}
	}
}

// awaitClientAuth reads from conn for a short grace period: a timeout or
// data means the server accepted the client certificate (or did not care),
// an alert or a close means it did not.
func awaitClientAuth(ctx context.Context, conn *tls.Conn) error {
	dl := time.Now().Add(clientAuthGrace)
	if cdl, ok := ctx.Deadline(); ok && cdl.Before(dl) {
		dl = cdl
	}
	conn.SetReadDeadline(dl)
	var b [1]byte
	_, err := conn.Read(b[:])
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return errors.New("connection closed by server after handshake")
	}
	return err
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS13:
		return "TLS 1.3"
	default:
		return tls.VersionName(v)
	}
}

type httpProbe struct {
	client *http.Client
	method string
	url    string
	host   string // Host header, when SNI is set
	expect int
}

func newHTTPProbe(s Spec, cfg *tls.Config) (Probe, error) {
	p := &httpProbe{method: s.Method, expect: s.ExpectStatus, host: s.SNI}
	if p.method == "" {
		p.method = http.MethodGet
	}
	if p.expect == 0 {
		p.expect = http.StatusOK
	}
	path := s.Path
	if path == "" {
		path = "/"
	}
	p.url = s.Type + "://" + s.Addr + path
	// Validate method and URL once, so every probe does not fail the same way.
	if _, err := http.NewRequest(p.method, p.url, nil); err != nil {
		return nil, fmt.Errorf("health: http check %s %s: %w", p.method, p.url, err)
	}
	// One transport per check, never shared: no connection is reused between
	// probes (each probe proves a fresh connect and handshake), no proxy from
	// the environment, HTTP/1.1 only.
	tr := &http.Transport{
		DialContext:            (&net.Dialer{}).DialContext,
		TLSClientConfig:        cfg,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	p.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return p.probe, nil
}

func (p *httpProbe) probe(ctx context.Context) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, p.method, p.url, nil)
	if err != nil {
		return failure(ctx, start, err)
	}
	req.Close = true
	req.Header.Set("User-Agent", "vipd-health-check")
	if p.host != "" {
		req.Host = p.host
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return failure(ctx, start, err)
	}
	defer resp.Body.Close()
	// A server that sends headers and then stalls the body fails here, at
	// the context deadline.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return failure(ctx, start, err)
	}
	lat := time.Since(start)
	detail := "HTTP " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode != p.expect {
		if s := lastLine(body); s != "" {
			detail += ": " + s
		}
		return Result{
			Err:     fmt.Errorf("health: %s %s: status %d, want %d", p.method, p.url, resp.StatusCode, p.expect),
			Latency: lat, At: start, Detail: detail,
		}
	}
	return Result{OK: true, Latency: lat, At: start, Detail: detail}
}

// lastLine returns the last non-empty line of b, shortened: for
// kube-apiserver's /readyz that is the verdict ("readyz check failed").
func lastLine(b []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	return shorten(s, maxDetailSnippet)
}

// shorten keeps the last n bytes of s on a rune boundary.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for len(s) > 0 && !utf8Start(s[0]) {
		s = s[1:]
	}
	return "..." + s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// failure builds the Result of a failed probe with a short Detail.
func failure(ctx context.Context, start time.Time, err error) Result {
	r := Result{Err: err, Latency: time.Since(start), At: start}
	if timedOut(ctx, err) {
		d := r.Latency
		if nominal, ok := ctx.Value(timeoutKey{}).(time.Duration); ok {
			d = nominal // set by the Checker
		} else if dl, ok := ctx.Deadline(); ok {
			d = dl.Sub(start)
		}
		d = d.Round(time.Millisecond)
		r.Detail = "timeout after " + d.String()
		r.Err = fmt.Errorf("%w after %v: %w", ErrTimeout, d, err)
		return r
	}
	r.Detail = describe(err)
	return r
}

func timedOut(ctx context.Context, err error) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		errors.Is(context.Cause(ctx), ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, os.ErrDeadlineExceeded)
}

// describe turns an error into the short reason an operator needs, dropping
// the "Get https://...: dial tcp ...:" wrapping.
func describe(err error) string {
	var cve *tls.CertificateVerificationError
	var errno syscall.Errno
	var ue *url.Error
	switch {
	case errors.As(err, &cve):
		return cve.Err.Error() // "x509: ..."
	case errors.As(err, &errno):
		return errno.Error() // "connection refused", "no route to host", ...
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by server"
	case errors.As(err, &ue):
		return ue.Err.Error()
	default:
		return err.Error()
	}
}
