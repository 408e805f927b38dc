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
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Service is what the daemon exposes to the control API.
type Service interface {
	Status() Status
	Drill(ctx context.Context, req DrillRequest) (DrillResult, error)
	Server(ctx context.Context, req ServerRequest) error
	Reload(ctx context.Context) (ReloadResult, error)
}

// Errors a Service may wrap so the server picks the HTTP status.
var (
	ErrRefused  = errors.New("refused")   // 409: the request makes no sense in this state
	ErrNotFound = errors.New("not found") // 404
	ErrInvalid  = errors.New("invalid")   // 400
)

// maxBody bounds request bodies: every request is a few hundred bytes.
const maxBody = 64 << 10

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
	if _, err := os.Lstat(o.Path); err == nil {
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
}

type credKey struct{}

// Serve answers requests on ln until ctx is done.
func (s *API) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if uc, ok := c.(*net.UnixConn); ok {
				if cred, err := peerCred(uc); err == nil {
					return context.WithValue(ctx, credKey{}, cred)
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

// mutating refuses callers that are not root, the daemon's user, or a
// member of the socket group. The socket's file mode already stops others
// from connecting; this holds even if someone loosens the mode.
func (s *API) mutating(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cred, ok := r.Context().Value(credKey{}).(*syscall.Ucred)
		if ok && !s.mayWrite(cred) {
			WriteJSON(w, http.StatusForbidden, Error{Error: fmt.Sprintf(
				"uid %d may not change vipd: run as root or as a member of the control socket's group", cred.Uid)})
			return
		}
		h(w, r)
	}
}

func (s *API) mayWrite(c *syscall.Ucred) bool {
	if c.Uid == 0 || int(c.Uid) == os.Getuid() {
		return true
	}
	if s.Group == "" {
		return false
	}
	gid, err := lookupGroup(s.Group)
	if err != nil {
		return false
	}
	if int(c.Gid) == gid {
		return true
	}
	return procInGroup(int(c.Pid), gid)
}

// procInGroup reads the supplementary groups of pid from /proc.
func procInGroup(pid, gid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			for _, f := range strings.Fields(rest) {
				if n, err := strconv.Atoi(f); err == nil && n == gid {
					return true
				}
			}
		}
	}
	return false
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
