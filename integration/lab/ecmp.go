//go:build linux

package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Flows holds many TCP connections from one host to banner+echo services
// behind ECMP (the stand-in's port 50000 answers with its host's name),
// from many source addresses, and checks which of them still work. It
// measures what a change of the ECMP group does to established flows.
type Flows struct {
	t   testing.TB
	out *bufio.Reader
	in  io.WriteCloser
	p   *Prober
	// Owner[i] is the name of the host that answered connection i.
	Owner []string
}

// StartFlows opens perSource connections to target from each source
// address (already configured on h) and records who answered each.
func StartFlows(t testing.TB, h *Host, target string, sources []string, perSource int) *Flows {
	t.Helper()
	self, _ := os.Executable()
	cmd := h.Exec(context.Background(), self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=flows", "VIPD_FLOWS_TARGET="+target,
		"VIPD_FLOWS_SOURCES="+strings.Join(sources, ","), "VIPD_FLOWS_PER="+strconv.Itoa(perSource))
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &Flows{t: t, in: in, out: bufio.NewReader(outPipe), p: &Prober{cmd: cmd, done: make(chan struct{})}}
	go func() { cmd.Wait(); close(f.p.done) }()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-f.p.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	})
	if err := f.read(&f.Owner); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *Flows) read(v any) error {
	line, err := f.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("flows helper: %v", err)
	}
	return json.Unmarshal([]byte(line), v)
}

// Probe sends a line on every connection and reports which still echo
// (a connection that broke once stays broken).
func (f *Flows) Probe() []bool {
	f.t.Helper()
	fmt.Fprintln(f.in, "probe")
	var ok []bool
	if err := f.read(&ok); err != nil {
		f.t.Fatal(err)
	}
	return ok
}

func flowsMain() int {
	target := os.Getenv("VIPD_FLOWS_TARGET")
	per, _ := strconv.Atoi(os.Getenv("VIPD_FLOWS_PER"))
	per = min(max(per, 1), 64)
	var conns []net.Conn
	var readers []*bufio.Reader
	var owners []string
	for _, src := range strings.Split(os.Getenv("VIPD_FLOWS_SOURCES"), ",") {
		for i := 0; i < per && len(conns) < 4096; i++ {
			d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", target)
			if err != nil {
				fmt.Fprintln(os.Stderr, "flows:", err)
				return 1
			}
			r := bufio.NewReader(c)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			name, err := r.ReadString('\n')
			if err != nil {
				fmt.Fprintln(os.Stderr, "flows: banner:", err)
				return 1
			}
			conns, readers, owners = append(conns, c), append(readers, r), append(owners, strings.TrimSpace(name))
		}
	}
	out := json.NewEncoder(os.Stdout)
	out.Encode(owners)
	alive := make([]bool, len(conns))
	for i := range alive {
		alive[i] = true
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "probe" {
			continue
		}
		for i, c := range conns {
			if !alive[i] {
				continue
			}
			c.SetDeadline(time.Now().Add(time.Second))
			if _, err := io.WriteString(c, "ping\n"); err != nil {
				alive[i] = false
				continue
			}
			if l, err := readers[i].ReadString('\n'); err != nil || strings.TrimSpace(l) != "ping" {
				alive[i] = false
			}
		}
		out.Encode(alive)
	}
	for _, c := range conns {
		c.Close()
	}
	return 0
}
