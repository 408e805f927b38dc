//go:build linux

package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// StreamOptions pace the checksummed streams.
type StreamOptions struct {
	N          int           // established connections
	Every      time.Duration // one chunk per connection and direction this often (default 200ms)
	Chunk      int           // bytes per chunk (default 256)
	ProbeEvery time.Duration // a new connection this often (0: none)
	Drain      time.Duration // at the end, how long to wait for the streams to finish (default 20s)
}

func (o StreamOptions) env() []string {
	env := []string{"VIPD_STREAM_N=" + strconv.Itoa(o.N), "VIPD_STREAM_PROBE=" + o.ProbeEvery.String()}
	if o.Every > 0 {
		env = append(env, "VIPD_STREAM_EVERY="+o.Every.String())
	}
	if o.Chunk > 0 {
		env = append(env, "VIPD_STREAM_CHUNK="+strconv.Itoa(o.Chunk))
	}
	if o.Drain > 0 {
		env = append(env, "VIPD_STREAM_DRAIN="+o.Drain.String())
	}
	return env
}

// streamProc is a stream helper process driven through its stdin.
type streamProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	file  string
	done  chan struct{}
	label string
}

func startStreamProc(t testing.TB, h *Host, role string, env []string) *streamProc {
	t.Helper()
	self, _ := os.Executable()
	p := &streamProc{file: filepath.Join(t.TempDir(), role+".json"), done: make(chan struct{}), label: role + " in " + h.NS}
	p.cmd = h.Exec(context.Background(), self, "-test.run=^$")
	p.cmd.Env = append(append(os.Environ(), "VIPD_TEST_HELPER="+role, "VIPD_STREAM_OUT="+p.file), env...)
	p.cmd.Stderr = os.Stderr
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.out = bufio.NewReader(stdout)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	return p
}

func (p *streamProc) send(cmd string) error {
	_, err := fmt.Fprintln(p.in, cmd)
	return err
}

// kill ends the process: stdin closed, then SIGKILL after 5 s.
func (p *streamProc) kill() {
	p.in.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// StreamServer is the stand-in backend: streams and probe replies.
type StreamServer struct{ p *streamProc }

// StartStreamServer listens on port in h's namespace.
func StartStreamServer(t testing.TB, h *Host, port int, o StreamOptions) *StreamServer {
	t.Helper()
	p := startStreamProc(t, h, "streamsrv", append(o.env(), "VIPD_STREAM_LISTEN=:"+strconv.Itoa(port)))
	if err := AwaitLine(p.out, "ready", 10*time.Second); err != nil {
		t.Fatalf("%s: %v", p.label, err)
	}
	return &StreamServer{p: p}
}

// StreamClient holds the streams and runs the prober.
type StreamClient struct{ p *streamProc }

// StartStreamClient opens o.N streams from h to target and returns once
// each has carried data both ways; the prober starts then.
func StartStreamClient(t testing.TB, h *Host, target netip.AddrPort, o StreamOptions) *StreamClient {
	t.Helper()
	p := startStreamProc(t, h, "streamcli", append(o.env(), "VIPD_STREAM_TARGET="+target.String()))
	if err := AwaitLine(p.out, "ready", 2*time.Minute); err != nil {
		t.Fatalf("%s: %v", p.label, err)
	}
	return &StreamClient{p: p}
}

// Half tells the half-closing streams to shut their direction: both
// processes must hear it.
func Half(s *StreamServer, c *StreamClient) {
	s.p.send("half")
	c.p.send("half")
}

// EndStreams finishes every stream in order and returns both sides' views:
// the server's after the client's drain.
func EndStreams(t testing.TB, s *StreamServer, c *StreamClient, drain time.Duration) (StreamClientReport, []StreamSide) {
	t.Helper()
	s.p.send("end")
	c.p.send("end")
	var rep StreamClientReport
	if err := AwaitLine(c.p.out, "done", drain+time.Minute); err != nil {
		t.Fatalf("%s: %v", c.p.label, err)
	}
	if err := readJSON(c.p.file, &rep); err != nil {
		t.Fatalf("%s: %v", c.p.label, err)
	}
	s.p.send("dump")
	if err := AwaitLine(s.p.out, "dumped", 30*time.Second); err != nil {
		t.Fatalf("%s: %v", s.p.label, err)
	}
	var srv []StreamSide
	if err := readJSON(s.p.file, &srv); err != nil {
		t.Fatalf("%s: %v", s.p.label, err)
	}
	return rep, srv
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
