package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/connlimit"
	"github.com/vipd/vipd/internal/logging"
)

// Service is what the daemon exposes to the control API.
type Service interface {
	Status() Status
	Drill(ctx context.Context, req DrillRequest) (DrillResult, error)
	Server(ctx context.Context, req ServerRequest) error
	Reload(ctx context.Context) (ReloadResult, error)
}

// SelfDrainer is implemented by a Service that can drain its own node
// (`vipd drain self`, BGP mode); the route exists only then.
type SelfDrainer interface {
	DrainSelf(ctx context.Context, req DrainRequest) (DrainResult, error)
}

// Restarter is implemented by a Service that can hand itself over to a
// new process (`vipd restart`); the route exists only then. A rollback is
// an error whose text says why.
type Restarter interface {
	Restart(ctx context.Context) (RestartResult, error)
}

// Errors a Service may wrap so the server picks the HTTP status.
var (
	ErrRefused  = errors.New("refused")   // 409: the request makes no sense in this state
	ErrNotFound = errors.New("not found") // 404
	ErrInvalid  = errors.New("invalid")   // 400
)

// maxBody bounds request bodies: every request is a few hundred bytes.
const maxBody = 64 << 10

// MaxConns bounds the control connections open at a time. The CLI opens
// one per command; a connection over the cap gets a 503 at once. The
// daemon's file descriptor budget counts them.
const MaxConns = 16

// timeouts of the control server. A drill answers after up to a minute,
// so there is no write timeout; a request must arrive quickly.
type timeouts struct {
	header, read, idle time.Duration
}

var defaultTimeouts = timeouts{header: 5 * time.Second, read: 10 * time.Second, idle: 30 * time.Second}

// SocketOptions say who may use the control socket.
type SocketOptions struct {
	Path  string
	Mode  os.FileMode // default 0660
	Group string      // optional group name or gid owning the socket
}

// Listen creates the unix socket with the given mode and group. A stale
// socket left by a crashed run is removed first; a live one is an error.
func Listen(o SocketOptions) (net.Listener, error) {
	if o.Mode == 0 {
		o.Mode = 0o660
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if fi, err := os.Lstat(o.Path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("control: %s exists and is not a socket (%s); vipd removes only a stale socket: move the file away or set [control] socket to another path", o.Path, fileKind(fi.Mode()))
		}
		if c, err := net.DialTimeout("unix", o.Path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s is in use by a running vipd; stop it first or set [control] socket to another path", o.Path)
		}
		if err := os.Remove(o.Path); err != nil {
			return nil, fmt.Errorf("control: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", o.Path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(o.Path, o.Mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: chmod %s: %w", o.Path, err)
	}
	if o.Group != "" {
		gid, err := lookupGroup(o.Group)
		if err == nil {
			err = os.Chown(o.Path, -1, gid)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("control: socket group %q: %w", o.Group, err)
		}
	}
	return ln, nil
}

func fileKind(m os.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case os.ModeDir:
		return "a directory"
	case os.ModeSymlink:
		return "a symbolic link"
	}
	return m.Type().String()
}

// LookupGroup resolves a group name or a numeric gid.
func LookupGroup(g string) (int, error) {
	return lookupGroup(g)
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(grp.Gid)
}

// API serves the control routes on a unix socket.
type API struct {
	Service Service
	// Group, when set, is the group whose members may run mutating
	// commands besides root and the daemon's own user.
	Group string
	// Log receives the HTTP server's own errors (accept failures, bad
	// connections); the zero Logger drops them.
	Log zerolog.Logger

	gid      int // Group resolved by Serve; -1 when none
	timeouts timeouts
}

type credKey struct{}

// peer is who is on the other end of a control connection, read from the
// socket when it was accepted: SO_PEERCRED and SO_PEERGROUPS.
type peer struct {
	cred   *peerCred
	groups []uint32
}

// peerCred is the SO_PEERCRED triple, in a type of our own so the package
// builds where syscall.Ucred does not exist.
type peerCred struct {
	Pid      int32
	Uid, Gid uint32
}

// Serve answers requests on ln until ctx is done. At most MaxConns
// connections are served at a time, and a request must arrive within the
// read timeouts.
func (s *API) Serve(ctx context.Context, ln net.Listener) error {
	s.gid = -1
	if s.Group != "" {
		gid, err := lookupGroup(s.Group)
		if err != nil {
			return fmt.Errorf("control: socket group %q: %w", s.Group, err)
		}
		s.gid = gid
	}
	t := s.timeouts
	if t == (timeouts{}) {
		t = defaultTimeouts
	}
	ln = connlimit.New(ln, MaxConns, connlimit.HTTPRefusal("application/json", tooMany))
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: t.header,
		ReadTimeout:       t.read,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          logging.HTTPErrorLog(s.Log),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if w, ok := c.(interface{ NetConn() net.Conn }); ok {
				c = w.NetConn()
			}
			if uc, ok := c.(*net.UnixConn); ok {
				if p, err := peerOf(uc); err == nil {
					return context.WithValue(ctx, credKey{}, p)
				}
			}
			return ctx
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		return err
	}
}

// Handler returns the HTTP routes. The same handler serves the socket and
// (read-only routes) the optional HTTP listener.
func (s *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, s.Service.Status())
	})
	mux.HandleFunc("POST /v1/drill", s.mutating(func(w http.ResponseWriter, r *http.Request) {
		var req DrillRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := s.Service.Drill(r.Context(), req)
		if err != nil {
			writeErr(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, res)
	}))
	mux.HandleFunc("POST /v1/server", s.mutating(func(w http.ResponseWriter, r *http.Request) {
		var req ServerRequest
		if !decode(w, r, &req) {
			return
		}
		if err := s.Service.Server(r.Context(), req); err != nil {
			writeErr(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, struct{}{})
	}))
	if sd, ok := s.Service.(SelfDrainer); ok {
		mux.HandleFunc("POST /v1/drain-self", s.mutating(func(w http.ResponseWriter, r *http.Request) {
			var req DrainRequest
			if !decode(w, r, &req) {
				return
			}
			res, err := sd.DrainSelf(r.Context(), req)
			if err != nil {
				writeErr(w, err)
				return
			}
			WriteJSON(w, http.StatusOK, res)
		}))
	}
	if rs, ok := s.Service.(Restarter); ok {
		mux.HandleFunc("POST /v1/restart", s.mutating(func(w http.ResponseWriter, r *http.Request) {
			res, err := rs.Restart(r.Context())
			if err != nil {
				writeErr(w, err)
				return
			}
			WriteJSON(w, http.StatusOK, res)
		}))
	}
	mux.HandleFunc("POST /v1/reload", s.mutating(func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Service.Reload(r.Context())
		if err != nil {
			writeErr(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, res)
	}))
	return mux
}

// DecodeRequest decodes a control request body strictly: one JSON object,
// no unknown fields, bounded size. Exported for the fuzz test.
func DecodeRequest(r io.Reader, v any) error {
	// Read one byte past the limit so an oversized body is refused
	// rather than silently cut at the limit.
	b, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return fmt.Errorf("%w: request body: %v", ErrInvalid, err)
	}
	if len(b) > maxBody {
		return fmt.Errorf("%w: request body larger than %d bytes", ErrInvalid, maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: request body: %v", ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: request body: trailing data", ErrInvalid)
	}
	return nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := DecodeRequest(r.Body, v); err != nil {
		writeErr(w, err)
		return false
	}
	return true
}

// tooMany is the body of the answer to a connection over MaxConns.
var tooMany = fmt.Sprintf(`{"error": "vipd has %d control connections open, the most it serves at once; try again"}`+"\n", MaxConns)

// mutating refuses callers that are not root, the daemon's user, or a
// member of the socket group, and callers whose credentials could not be
// read. The socket's file mode already stops others from connecting; this
// holds even if someone loosens the mode.
func (s *API) mutating(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(credKey{}).(peer)
		if !ok {
			WriteJSON(w, http.StatusForbidden, Error{Error: "vipd could not read the caller's credentials (SO_PEERCRED) and refuses to change anything; use the unix socket"})
			return
		}
		if !s.mayWrite(p) {
			WriteJSON(w, http.StatusForbidden, Error{Error: fmt.Sprintf(
				"uid %d may not change vipd: run as root or as a member of the control socket's group", p.cred.Uid)})
			return
		}
		h(w, r)
	}
}

func (s *API) mayWrite(p peer) bool {
	c := p.cred
	if c.Uid == 0 || int(c.Uid) == os.Getuid() {
		return true
	}
	if s.gid < 0 {
		return false
	}
	return int(c.Gid) == s.gid || slices.Contains(p.groups, uint32(s.gid))
}

// WriteJSON writes v as indented JSON with the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrRefused):
		code = http.StatusConflict
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	}
	WriteJSON(w, code, Error{Error: err.Error()})
}
