//go:build linux

package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vipd/vipd/bgp"
)

// Speaker is a bgp.Speaker running in a host's namespace: the test binary
// re-executed there as the "bgp" helper, driven over a unix socket in the
// lab directory. It is the package under test before the daemon runs it,
// and a stand-in LB for router-side measurements.
type Speaker struct {
	*Proc
	Sock   string
	client *http.Client
}

// speakerRequest is one command to the helper.
type speakerRequest struct {
	Prefix netip.Prefix `json:"prefix"`
	Attrs  bgp.Attrs    `json:"attrs"`
	Reason string       `json:"reason"`
}

// StartSpeaker runs a speaker with cfg in h's namespace.
func (l *Lab) StartSpeaker(t testing.TB, h *Host, name string, cfg bgp.Config) *Speaker {
	t.Helper()
	dir := filepath.Join(l.Dir(), "bgp-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "speaker.sock")
	self, _ := os.Executable()
	s := &Speaker{Sock: sock, client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}}
	// `env` execs in place, so the process started is the helper itself.
	s.Proc = &Proc{t: t, Host: h, Name: name, LogPath: filepath.Join(dir, "speaker.log"),
		argv: []string{"env", "VIPD_TEST_HELPER=bgp", "VIPD_BGP_CONFIG=" + cfgPath, "VIPD_BGP_SOCKET=" + sock, self, "-test.run=^$"}}
	s.Start()
	t.Cleanup(func() { s.Kill() })
	if err := WaitFor(10*time.Second, func() error { _, err := s.Status(); return err }); err != nil {
		t.Fatalf("speaker %s: %v\n%s", name, err, s.Log())
	}
	return s
}

func (s *Speaker) post(path string, r speakerRequest) error {
	body, _ := json.Marshal(r)
	resp, err := s.client.Post("http://speaker"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", path, b)
	}
	return nil
}

// Announce asks the speaker to announce prefix; it fails the test on error.
func (s *Speaker) Announce(prefix netip.Prefix, a bgp.Attrs) {
	s.t.Helper()
	if err := s.post("/announce", speakerRequest{Prefix: prefix, Attrs: a}); err != nil {
		s.t.Fatalf("%s announce: %v", s.Name, err)
	}
}

// Drain starts a planned withdrawal of prefix (GRACEFUL_SHUTDOWN).
func (s *Speaker) Drain(prefix netip.Prefix, reason string) {
	s.t.Helper()
	if err := s.post("/drain", speakerRequest{Prefix: prefix, Reason: reason}); err != nil {
		s.t.Fatalf("%s drain: %v", s.Name, err)
	}
}

// Withdraw asks the speaker to withdraw prefix.
func (s *Speaker) Withdraw(prefix netip.Prefix, reason string) {
	s.t.Helper()
	if err := s.post("/withdraw", speakerRequest{Prefix: prefix, Reason: reason}); err != nil {
		s.t.Fatalf("%s withdraw: %v", s.Name, err)
	}
}

// Status is the speaker's bgp.Status.
func (s *Speaker) Status() (bgp.Status, error) {
	var st bgp.Status
	resp, err := s.client.Get("http://speaker/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// AwaitEstablished waits until every session of the speaker is up.
func (s *Speaker) AwaitEstablished(timeout time.Duration) {
	s.t.Helper()
	err := WaitFor(timeout, func() error {
		st, err := s.Status()
		if err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.State != bgp.StateEstablished {
				return fmt.Errorf("%s: session with %s is %s (%s)", s.Name, p.Address, p.State, p.LastError)
			}
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("%v\n%s", err, s.Log())
	}
}

// speakerMain is the "bgp" helper: a bgp.Speaker with the JSON config in
// $VIPD_BGP_CONFIG, driven over HTTP on the unix socket $VIPD_BGP_SOCKET,
// until SIGTERM.
func speakerMain() int {
	log := zerolog.New(os.Stderr).With().Timestamp().Str("component", "bgp").Logger().Level(zerolog.InfoLevel)
	data, err := os.ReadFile(os.Getenv("VIPD_BGP_CONFIG"))
	if err != nil {
		log.Error().Err(err).Msg("config")
		return 1
	}
	var cfg bgp.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		log.Error().Err(err).Msg("config")
		return 1
	}
	s, err := bgp.New(cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("config")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sock := os.Getenv("VIPD_BGP_SOCKET")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		log.Error().Err(err).Msg("listen")
		return 1
	}
	mux := http.NewServeMux()
	handle := func(path string, f func(speakerRequest) error) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var req speakerRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := f(req); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
			}
		})
	}
	handle("/announce", func(r speakerRequest) error { return s.Announce(r.Prefix, r.Attrs) })
	handle("/drain", func(r speakerRequest) error { return s.Drain(r.Prefix, r.Reason) })
	handle("/withdraw", func(r speakerRequest) error { return s.Withdraw(r.Prefix, r.Reason) })
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(s.Status())
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	err = s.Run(ctx)
	srv.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error().Err(err).Msg("run")
		return 1
	}
	return 0
}
