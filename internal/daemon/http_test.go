package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
)

// fakeStatus is a document with something in every part the page and the
// metrics show.
func fakeStatus(now time.Time) control.Status {
	return control.Status{
		Node: "lb1", Version: "v1.2.3", Mode: "vrrp", Started: now.Add(-90 * time.Minute),
		Instances: []control.Instance{{
			Name: "VI_51", VRID: 51, Interface: "eth0", State: "MASTER",
			Priority: 150, EffectivePriority: 140, PriorityReason: "150 - 10 (apiserver-local failing)",
			MasterAddr: "10.0.0.11", VIPs: []string{"10.0.0.100/32"},
			LastTransition: now.Add(-5 * time.Minute), LastReason: "master down timer expired", Transitions: 3,
			AdvertIntervalMs: 1000, MasterIntervalMs: 1000, DownIntervalMs: 3414, SkewTimeMs: 414,
			Ready: true, Checksum: "pseudo-header", Version: 3, AdvertsSent: 1234, AdvertsReceived: 56,
			Drops: map[string]uint64{"ttl": 2, "checksum": 7, "vrid": 0},
			Senders: []control.Sender{
				{Addr: "10.0.0.12", Version: 3, Priority: 100, Interval: 1000, Checksum: "rfc9568", LastSeen: now.Add(-time.Second), Count: 56},
				{Addr: "10.0.0.21", Version: 2, Priority: 200, Interval: 1000, LastSeen: now.Add(-time.Second), Dropped: 9,
					Problem: "peer 10.0.0.21 speaks VRRPv2; set version = 2 to join it"},
			},
			Problems: []string{"peer 10.0.0.21 speaks VRRPv2; set version = 2 to join it"},
			Recent: []control.Transition{
				{At: now.Add(-5 * time.Minute), From: "BACKUP", To: "MASTER", Reason: "master down timer expired"},
				{At: now.Add(-6 * time.Minute), From: "INIT", To: "BACKUP", Reason: "startup"},
			},
		}},
		Frontends: []control.Frontend{{
			Name: "kubernetes", Bind: "10.0.0.100:6443", Binds: []string{"10.0.0.100:6443"}, Backend: "kube-apiserver",
			Listening: true, ActiveConns: 4, TotalConns: 99, BytesIn: 2048, BytesOut: 4096, Healthy: 2,
		}},
		Backends: []control.Backend{{Name: "kube-apiserver", Servers: []control.Server{
			{Name: "cp1", Addr: "10.0.0.21:6443", State: "UP", Health: "UP", LastCheck: "ok", CheckedAt: now.Add(-time.Second), LatencyMs: 12.5, ActiveConns: 3, TotalConns: 70, FailedConns: 1},
			{Name: "cp2", Addr: "10.0.0.22:6443", State: "DOWN", Health: "DOWN", LastCheck: "failed: connection refused", CheckedAt: now.Add(-2 * time.Second), LatencyMs: 0.25, FailedConns: 5},
			{Name: "cp3", Addr: "10.0.0.23:6443", State: "DRAIN", Health: "UP", LastCheck: "ok", CheckedAt: now.Add(-time.Second), LatencyMs: 3},
			{Name: "cp4", Addr: "10.0.0.24:6443", State: "MAINT", Health: "UNCHECKED"},
		}}},
		Peers: []control.Peer{
			{Name: "lb2", Addr: "10.0.0.12", State: "BACKUP", EffectivePriority: 100, Ready: true, LastSeen: now.Add(-800 * time.Millisecond), Fresh: true},
			{Name: "lb3", Addr: "10.0.0.13", State: "FAULT", EffectivePriority: 0, LastSeen: now.Add(-time.Minute), Fresh: false},
		},
		Trackers:  []control.Tracker{{Name: "apiserver-local", Type: "script", Weight: -10, Healthy: false, Detail: "exit status 1"}},
		LastDrill: &control.DrillResult{From: "lb2", To: "lb1", GapMs: 850, ExpectedMs: 414, TakeoverMs: 420, Probes: 90, Failed: 1, Probe: "tcp 10.0.0.100:6443", At: now.Add(-time.Hour)},
	}
}

// testSource feeds a fixed document; passwords are checked in this
// process (bcrypt_test.go tests the helper; started from a -race test
// binary it takes a second a login).
func testSource(now time.Time) httpSource {
	return httpSource{status: func() control.Status { return fakeStatus(now) }, self: func() string { return "10.0.0.11" },
		compare: bcrypt.CompareHashAndPassword}
}

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func do(h http.Handler, remote, path, user, pass string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = remote
	req.Host = "127.0.0.1:9600"
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestHTTPAccess: the allow list is checked before auth (403 even with good
// credentials), then basic auth (401 with a challenge), as on HAProxy's
// stats page.
func TestHTTPAccess(t *testing.T) {
	cfg := &config.HTTP{
		Listen: "127.0.0.1:9600",
		Users: []config.User{
			{Name: "admin", PasswordHash: hashOf(t, "s3cret")},
			{Name: "viewer", PasswordHash: hashOf(t, "look")},
		},
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("::1/128")},
	}
	// Each request sees a clock a minute later than the last, past any
	// login backoff (TestHTTPLoginBackoff covers that).
	src := testSource(time.Now())
	var minutes atomic.Int64
	start := time.Now()
	src.now = func() time.Time { return start.Add(time.Duration(minutes.Add(1)) * time.Minute) }
	h := newHTTPHandler(cfg, src)
	tests := []struct {
		name, remote, user, pass string
		want                     int
	}{
		{"no credentials", "127.0.0.1:40000", "", "", http.StatusUnauthorized},
		{"good", "127.0.0.1:40000", "admin", "s3cret", http.StatusOK},
		{"good again (cached)", "127.0.0.1:40001", "admin", "s3cret", http.StatusOK},
		{"second user", "10.1.2.3:5555", "viewer", "look", http.StatusOK},
		{"wrong password", "127.0.0.1:40000", "admin", "S3cret", http.StatusUnauthorized},
		{"other user's password", "127.0.0.1:40000", "viewer", "s3cret", http.StatusUnauthorized},
		{"unknown user", "127.0.0.1:40000", "root", "s3cret", http.StatusUnauthorized},
		{"user name prefix", "127.0.0.1:40000", "adm", "s3cret", http.StatusUnauthorized},
		{"empty user", "127.0.0.1:40000", "", "s3cret", http.StatusUnauthorized},
		{"ipv6 loopback", "[::1]:40000", "admin", "s3cret", http.StatusOK},
		{"v4-mapped allowed", "[::ffff:10.1.0.9]:40000", "admin", "s3cret", http.StatusOK},
		{"foreign network, good credentials", "192.168.7.7:40000", "admin", "s3cret", http.StatusForbidden},
		{"foreign network, no credentials", "10.2.0.1:40000", "", "", http.StatusForbidden},
		{"unparsable remote", "somewhere", "admin", "s3cret", http.StatusForbidden},
	}
	for _, tt := range tests {
		for _, path := range []string{"/", "/metrics", "/api/v1/status"} {
			w := do(h, tt.remote, path, tt.user, tt.pass)
			if w.Code != tt.want {
				t.Errorf("%s: GET %s from %s = %d, want %d", tt.name, path, tt.remote, w.Code, tt.want)
			}
			chal := w.Header().Get("WWW-Authenticate")
			if tt.want == http.StatusUnauthorized && !strings.HasPrefix(chal, "Basic realm=") {
				t.Errorf("%s: 401 without a Basic challenge (WWW-Authenticate %q)", tt.name, chal)
			}
			if tt.want != http.StatusOK && strings.Contains(w.Body.String(), "lb1") {
				t.Errorf("%s: refused answer leaks status: %q", tt.name, w.Body.String())
			}
		}
	}
}

// TestHTTPAccessNoUsers: without [[http.user]] the allow list alone decides;
// a nil allow list means loopback only.
func TestHTTPAccessNoUsers(t *testing.T) {
	for _, cfg := range []*config.HTTP{nil, {Listen: "127.0.0.1:9600"}, {Listen: "127.0.0.1:9600", Allow: config.DefaultHTTPAllow()}} {
		h := newHTTPHandler(cfg, testSource(time.Now()))
		if w := do(h, "127.0.0.1:1", "/", "", ""); w.Code != http.StatusOK {
			t.Errorf("cfg %+v: loopback got %d, want 200", cfg, w.Code)
		}
		if w := do(h, "[::1]:1", "/api/v1/status", "", ""); w.Code != http.StatusOK {
			t.Errorf("cfg %+v: ::1 got %d, want 200", cfg, w.Code)
		}
		if w := do(h, "10.0.0.5:1", "/", "", ""); w.Code != http.StatusForbidden {
			t.Errorf("cfg %+v: 10.0.0.5 got %d, want 403", cfg, w.Code)
		}
	}
}

func TestHTTPRoutes(t *testing.T) {
	h := newHTTPHandler(nil, testSource(time.Now()))
	tests := []struct {
		method, path string
		want         int
		ctype        string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/?refresh=0", 200, "text/html; charset=utf-8"},
		{"GET", "/?refresh=-1", 400, ""},
		{"GET", "/metrics", 200, "text/plain"},
		{"GET", "/api/v1/status", 200, "application/json"},
		{"GET", "/nope", 404, ""},
		{"POST", "/api/v1/status", 405, ""},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		req.RemoteAddr = "127.0.0.1:1234"
		req.Host = "127.0.0.1:9600"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, w.Code, tt.want)
		}
		if ct := w.Header().Get("Content-Type"); tt.ctype != "" && !strings.HasPrefix(ct, tt.ctype) {
			t.Errorf("%s %s: Content-Type %q, want %q", tt.method, tt.path, ct, tt.ctype)
		}
	}
}

// TestHTTPStatusJSON: /api/v1/status is the document of `vipd status -o json`.
func TestHTTPStatusJSON(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	h := newHTTPHandler(nil, testSource(now))
	w := do(h, "127.0.0.1:1", "/api/v1/status", "", "")
	var got control.Status
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("decode: %v\n%s", err, w.Body)
	}
	if diff := cmp.Diff(fakeStatus(now), got); diff != "" {
		t.Errorf("status JSON (-want +got):\n%s", diff)
	}
}

func TestAuthCacheBounded(t *testing.T) {
	c := &authCache{m: map[[32]byte]time.Time{}}
	now := time.Now()
	for i := range 3 * authCacheSize {
		c.add(authKey("u", string(rune('a'+i)), nil), now)
		if len(c.m) > authCacheSize {
			t.Fatalf("cache holds %d entries, limit %d", len(c.m), authCacheSize)
		}
	}
	k := authKey("admin", "pw", []byte("$2a$"))
	c.add(k, now)
	if !c.hit(k, now.Add(authCacheTTL/2)) {
		t.Error("fresh entry missed")
	}
	if c.hit(k, now.Add(authCacheTTL+time.Second)) {
		t.Error("expired entry still hits")
	}
}

// TestHTTPLoginBackoff: after a failed login its source waits, 100 ms
// doubling to 30 s, and gets 429 without a bcrypt meanwhile; other
// sources are not affected, a cached good login still gets in, and a
// success forgets the failures (issue 9, defect 2).
func TestHTTPLoginBackoff(t *testing.T) {
	cfg := &config.HTTP{Listen: "127.0.0.1:9600", Users: []config.User{{Name: "admin", PasswordHash: hashOf(t, "s3cret")}}}
	now := time.Now()
	src := testSource(now)
	src.now = func() time.Time { return now }
	h := newHTTPHandler(cfg, src)
	const attacker, other = "127.0.0.9:1", "127.0.0.10:1"
	if w := do(h, other, "/", "admin", "s3cret"); w.Code != 200 {
		t.Fatalf("good login: %d", w.Code)
	}
	if w := do(h, attacker, "/", "admin", "guess"); w.Code != 401 {
		t.Fatalf("first wrong password: %d, want 401", w.Code)
	}
	for _, wait := range []time.Duration{100, 200, 400, 800} {
		wait *= time.Millisecond
		if w := do(h, attacker, "/", "admin", "guess"); w.Code != 429 || w.Header().Get("Retry-After") == "" {
			t.Fatalf("during the backoff: %d, want 429 with Retry-After", w.Code)
		}
		if w := do(h, other, "/", "admin", "s3cret"); w.Code != 200 {
			t.Errorf("another source, cached good login: %d", w.Code)
		}
		now = now.Add(wait)
		if w := do(h, attacker, "/", "admin", "guess"); w.Code != 401 {
			t.Fatalf("after waiting %s: %d, want 401 (the next try is checked)", wait, w.Code)
		}
	}
	now = now.Add(time.Hour)
	if w := do(h, attacker, "/", "admin", "s3cret"); w.Code != 200 {
		t.Fatalf("right password after the backoff: %d", w.Code)
	}
	if w := do(h, attacker, "/", "admin", "guess"); w.Code != 401 {
		t.Errorf("a success did not reset the backoff: %d", w.Code)
	}
	// IPv6 sources are kept per /64.
	if sourceOf("[2001:db8:1:2:aaaa::1]:1") != sourceOf("[2001:db8:1:2:bbbb::2]:2") || sourceOf("[::ffff:10.0.0.1]:1") != netip.MustParseAddr("10.0.0.1") {
		t.Error("sourceOf groups IPv6 by /64 and unmaps IPv4")
	}
}

// TestHTTPBcryptBounded: with every bcrypt slot taken, one more login is
// answered 429 at once instead of queueing another bcrypt (issue 9,
// defect 2: 64 parallel wrong passwords held vipd at 150% CPU).
func TestHTTPBcryptBounded(t *testing.T) {
	cfg := &config.HTTP{Listen: "127.0.0.1:9600", Users: []config.User{{Name: "admin", PasswordHash: hashOf(t, "s3cret")}}}
	a := newAccess(cfg, zerolog.Nop())
	release := make(chan struct{})
	var inside atomic.Int32
	a.compare = func(hash, pw []byte) error {
		inside.Add(1)
		<-release
		return bcrypt.ErrMismatchedHashAndPassword
	}
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	slots := bcryptSlots()
	var wg sync.WaitGroup
	codes := make(chan int, slots)
	for i := range slots {
		wg.Go(func() { codes <- do(h, fmt.Sprintf("127.0.1.%d:1", i), "/", "admin", "x").Code })
	}
	for inside.Load() != int32(slots) {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	w := do(h, "127.0.2.1:1", "/", "admin", "x")
	if w.Code != http.StatusTooManyRequests || time.Since(start) > time.Second {
		t.Errorf("a login beyond %d running bcrypts: %d after %s, want 429 at once", slots, w.Code, time.Since(start))
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 401 {
			t.Errorf("a running check ended with %d, want 401", c)
		}
	}
	if got := inside.Load(); got != int32(slots) {
		t.Errorf("%d bcrypt comparisons ran, want %d", got, slots)
	}
}

// TestHTTPHostCheck: a page without users answers only to Host headers
// naming it (addresses, localhost, this host's name), so a DNS rebinding
// page cannot read it; with users the credentials decide.
func TestHTTPHostCheck(t *testing.T) {
	h := newHTTPHandler(nil, testSource(time.Now()))
	name, _ := os.Hostname()
	for host, want := range map[string]int{
		"127.0.0.1:9600": 200, "[::1]:9600": 200, "10.0.0.5": 200, "localhost:9600": 200, "LOCALHOST": 200,
		name + ":9600": 200, "evil.example.com:9600": 421, "127.0.0.1.evil.example": 421, "": 421,
	} {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/status", nil)
		req.RemoteAddr, req.Host = "127.0.0.1:1", host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
	withUsers := newHTTPHandler(&config.HTTP{Listen: "127.0.0.1:9600", Users: []config.User{{Name: "admin", PasswordHash: hashOf(t, "s3cret")}}}, testSource(time.Now()))
	req := httptest.NewRequest(http.MethodGet, "/api/v1/status", nil)
	req.RemoteAddr, req.Host = "127.0.0.1:1", "lb1.example.com"
	req.SetBasicAuth("admin", "s3cret")
	w := httptest.NewRecorder()
	withUsers.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Errorf("with users, a DNS name and good credentials: %d", w.Code)
	}
}
