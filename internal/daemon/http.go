package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
)

// The HTTP status listener ([http]): `/` the status page, `/metrics` for
// Prometheus and `/api/v1/status` the JSON document of `vipd status -o
// json`. Access works as on HAProxy's stats page: the client's address
// must lie in one of the allowed networks (else 403), then, when users are
// configured, HTTP Basic auth against their bcrypt hashes (else 401).
//
// Every answer is built from one status snapshot taken at request time:
// nothing here hooks into the VRRP, proxy or health hot paths.

// serveHTTP runs the optional status listener ([http] listen).
func (d *Daemon) serveHTTP(ctx context.Context, h *config.HTTP) error {
	ln, err := net.Listen("tcp", h.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           d.httpHandler(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
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
	return newAccess(h).wrap(mux)
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
}

func newAccess(h *config.HTTP) *access {
	a := &access{allow: config.DefaultHTTPAllow()}
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
		if len(a.users) > 0 {
			user, pass, ok := r.BasicAuth()
			if !ok || !a.authenticate(user, pass, time.Now()) {
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

// authenticate checks a name and password against the configured users.
// Every name is compared in constant time, and bcrypt always runs once,
// whether or not the name matched.
func (a *access) authenticate(user, pass string, now time.Time) bool {
	hash := a.dummy
	found := 0
	for _, u := range a.users {
		if subtle.ConstantTimeCompare([]byte(u.Name), []byte(user)) == 1 {
			hash, found = []byte(u.PasswordHash), 1
		}
	}
	key := authKey(user, pass, hash)
	if found == 1 && a.cache.hit(key, now) {
		return true
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil && found == 1
	if ok {
		a.cache.add(key, now)
	}
	return ok
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
