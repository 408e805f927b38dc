package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/connlimit"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/internal/fdlimit"
	"github.com/vipd/vipd/internal/logging"
)

// The HTTP status listener ([http]): `/` the status page, `/metrics` for
// Prometheus and `/api/v1/status` the JSON document of `vipd status -o
// json`. Access works as on HAProxy's stats page: the client's address
// must lie in one of the allowed networks (else 403), then, when users are
// configured, HTTP Basic auth against their bcrypt hashes (else 401).
//
// Every answer is built from one status snapshot taken at request time:
// nothing here hooks into the VRRP, proxy or health hot paths.
//
// Under abuse (issue 9): a bcrypt comparison costs tens of milliseconds of
// CPU, so at most bcryptSlots run at once, each in a helper process at
// nice 19 (bcrypt.go), and any login beyond that is answered 429 at once; a source whose login failed waits (100 ms,
// doubling to 30 s) before it may try again, and gets 429 meanwhile.
// Successful logins are cached, so a page refreshing every 2 s costs no
// bcrypt. Without users the page answers only requests whose Host is an
// address, localhost or this host's name (a DNS rebinding page cannot
// read it). At most fdlimit.HTTPConns connections are served at once, the
// listener keeps a spare descriptor for the flood case, and net/http's own
// errors go to zerolog.

// serveHTTP runs the optional status listener ([http] listen) on inner,
// its socket (bound by Run, or taken over from the old process of a
// restart).
func (d *Daemon) serveHTTP(ctx context.Context, h *config.HTTP, inner net.Listener) error {
	ln := connlimit.New(inner, fdlimit.HTTPConns, connlimit.HTTPRefusal("text/plain; charset=utf-8", "503 too many connections to the page; try again\n"))
	srv := &http.Server{
		Handler:           d.httpHandler(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          logging.HTTPErrorLog(d.log.With().Str("component", "http").Logger()),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (d *Daemon) httpHandler(h *config.HTTP) http.Handler {
	return newHTTPHandler(h, httpSource{
		status: d.Status,
		log:    d.log.With().Str("component", "http").Logger(),
		self: func() string {
			if _, node := d.config(); node.Address.IsValid() {
				return node.Address.String()
			}
			return ""
		},
	})
}

// httpSource is everything the handlers read. It is a pair of functions,
// not *Daemon, so that tests can feed a fixed document.
type httpSource struct {
	status func() control.Status
	// self returns this node's [[node]] address for the page; may be nil.
	self func() string
	// now is the clock of the login backoff; nil means time.Now.
	now func() time.Time
	// log takes the warning of a password check that fell back to vipd.
	log zerolog.Logger
	// compare checks a password against a hash; nil means in a helper
	// process (bcrypt.go). Tests of the page's rules use bcrypt's own.
	compare func(hash, password []byte) error
}

// newHTTPHandler builds the listener's handler: access control in front
// of the page, the metrics and the JSON API.
func newHTTPHandler(h *config.HTTP, src httpSource) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", pageHandler(src))
	mux.Handle("GET /metrics", metricsHandler(src.status))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		control.WriteJSON(w, http.StatusOK, src.status())
	})
	a := newAccess(h, src.log)
	if src.now != nil {
		a.now = src.now
	}
	if src.compare != nil {
		a.compare = src.compare
	}
	return a.wrap(mux)
}

// access enforces the allow list and basic auth.
type access struct {
	allow []netip.Prefix
	users []config.User
	// dummy is a hash of the configured cost compared against when the
	// user name matches nobody, so that a wrong name costs as much time
	// as a wrong password.
	dummy []byte
	cache *authCache
	// slots bounds the bcrypt comparisons running at once.
	slots chan struct{}
	fails *failures
	// hosts are the names a page without users answers to, besides
	// addresses.
	hosts   []string
	now     func() time.Time
	compare func(hash, password []byte) error
}

// bcryptSlots is how many bcrypt comparisons may run at once: one per two
// CPUs, at most two, so that a login storm leaves the proxy and VRRP a CPU.
func bcryptSlots() int { return max(1, min(2, runtime.GOMAXPROCS(0)/2)) }

func newAccess(h *config.HTTP, log zerolog.Logger) *access {
	a := &access{
		allow: config.DefaultHTTPAllow(), now: time.Now, compare: newBcryptChild(log).compare,
		slots: make(chan struct{}, bcryptSlots()), fails: newFailures(),
		hosts: []string{"localhost"},
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		short, _, _ := strings.Cut(name, ".")
		a.hosts = append(a.hosts, strings.ToLower(name), strings.ToLower(short))
	}
	if h == nil {
		return a
	}
	if len(h.Allow) > 0 {
		a.allow = h.Allow
	}
	a.users = h.Users
	if len(a.users) > 0 {
		cost := bcrypt.DefaultCost
		if c, err := bcrypt.Cost([]byte(a.users[0].PasswordHash)); err == nil {
			cost = c
		}
		a.dummy, _ = bcrypt.GenerateFromPassword([]byte("vipd: no such user"), cost)
		a.cache = &authCache{m: map[[sha256.Size]byte]time.Time{}}
	}
	return a
}

func (a *access) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.allowed(r.RemoteAddr) {
			http.Error(w, "403 forbidden: your address is not in [http] allow", http.StatusForbidden)
			return
		}
		if len(a.users) == 0 && !a.hostAllowed(r.Host) {
			http.Error(w, "421 this page answers to its address, localhost or the host's name only (it has no [[http.user]]; DNS rebinding protection)", http.StatusMisdirectedRequest)
			return
		}
		if len(a.users) > 0 {
			user, pass, ok := r.BasicAuth()
			verdict := authFailed
			if ok {
				verdict = a.login(sourceOf(r.RemoteAddr), user, pass)
			}
			switch verdict {
			case authOK:
			case authBusy:
				w.Header().Set("Retry-After", "1")
				http.Error(w, "429 too many logins being checked; try again", http.StatusTooManyRequests)
				return
			case authBackoff:
				w.Header().Set("Retry-After", "1")
				http.Error(w, "429 a recent login from your address failed; wait before trying again", http.StatusTooManyRequests)
				return
			default:
				w.Header().Set("WWW-Authenticate", `Basic realm="vipd", charset="UTF-8"`)
				http.Error(w, "401 unauthorized", http.StatusUnauthorized)
				return
			}
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// allowed reports whether the client address lies in an allowed network.
// IPv4-mapped IPv6 clients (a dual-stack listener) count as IPv4.
func (a *access) allowed(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap().WithZone("")
	for _, p := range a.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// hostAllowed reports whether a Host header names this page: an IP
// address, localhost or this host's name, with or without a port.
func (a *access) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return slices.Contains(a.hosts, strings.ToLower(host))
}

// Login verdicts.
const (
	authOK      = iota
	authFailed  // wrong name or password: 401
	authBusy    // every bcrypt slot is taken: 429
	authBackoff // this source failed recently: 429
)

// login checks a name and password from source. A cached success costs a
// hash; otherwise the source must not be backing off and a bcrypt slot
// must be free at once.
func (a *access) login(source netip.Addr, user, pass string) int {
	hash := a.dummy
	found := 0
	for _, u := range a.users {
		if subtle.ConstantTimeCompare([]byte(u.Name), []byte(user)) == 1 {
			hash, found = []byte(u.PasswordHash), 1
		}
	}
	key := authKey(user, pass, hash)
	now := a.now()
	if found == 1 && a.cache.hit(key, now) {
		return authOK
	}
	if a.fails.waiting(source, now) {
		return authBackoff
	}
	select {
	case a.slots <- struct{}{}:
	default:
		return authBusy
	}
	// bcrypt always runs once, whether or not the name matched, so that a
	// wrong name costs as much as a wrong password.
	err := a.compare(hash, []byte(pass))
	<-a.slots
	if errors.Is(err, errBcryptTimeout) {
		return authBusy // no verdict: neither a failure nor a success
	}
	ok := err == nil && found == 1
	now = a.now()
	if !ok {
		a.fails.fail(source, now)
		return authFailed
	}
	a.fails.forget(source)
	a.cache.add(key, now)
	return authOK
}

// sourceOf is the address a login backoff is kept for: the client's IPv4
// address, or its IPv6 /64 (one host usually has the whole /64).
func sourceOf(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

// failures holds each source's failed logins and how long it must wait.
type failures struct {
	mu sync.Mutex
	m  map[netip.Addr]failure
}

type failure struct {
	n     int
	until time.Time
}

const (
	failBase  = 100 * time.Millisecond
	failMax   = 30 * time.Second
	failLimit = 4096 // sources remembered
)

func newFailures() *failures { return &failures{m: map[netip.Addr]failure{}} }

func (f *failures) waiting(src netip.Addr, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return now.Before(f.m[src].until)
}

func (f *failures) fail(src netip.Addr, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.m) >= failLimit {
		for k, v := range f.m {
			if now.Sub(v.until) > failMax { // long forgiven
				delete(f.m, k)
			}
		}
		if len(f.m) >= failLimit {
			clear(f.m) // the bcrypt slots still bound the cost
		}
	}
	x := f.m[src]
	x.n++
	x.until = now.Add(min(failBase<<min(x.n-1, 16), failMax))
	f.m[src] = x
}

func (f *failures) forget(src netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, src)
}

// authCache remembers recent successful logins for a short while, so that
// a page refreshing every 2 s or a Prometheus scrape does not pay for a
// bcrypt comparison (tens of ms at cost 10) on every request. It stores
// digests, never passwords, and forgets everything when full.
type authCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]time.Time
}

const (
	authCacheTTL  = time.Minute
	authCacheSize = 64
)

func authKey(user, pass string, hash []byte) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range [][]byte{[]byte(user), []byte(pass), hash} {
		h.Write(s)
		h.Write([]byte{0})
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (c *authCache) hit(k [sha256.Size]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[k]
	if ok && now.After(exp) {
		delete(c.m, k)
		return false
	}
	return ok
}

func (c *authCache) add(k [sha256.Size]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= authCacheSize {
		clear(c.m)
	}
	c.m[k] = now.Add(authCacheTTL)
}
