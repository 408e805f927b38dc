//go:build linux

package lab

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Advert is one VRRP advertisement seen on the wire.
type Advert struct {
	At       time.Time  `json:"at"`
	Src      netip.Addr `json:"src"`
	VRID     int        `json:"vrid"`
	Priority int        `json:"prio"`
	Version  int        `json:"ver"`
}

// vrrpCaptureMain is the "vrrpcap" role: every IPv4 packet of protocol
// 112 on eth0 (an AF_PACKET socket: the namespace needs no membership of
// 224.0.0.18), one JSON line each to VIPD_CAP_OUT, until killed.
func vrrpCaptureMain() int {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vrrpcap:", err)
		return 1
	}
	proto := htons(unix.ETH_P_IP)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(proto))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vrrpcap: socket:", err)
		return 1
	}
	// Only protocol 112 reaches the socket (a classic BPF filter on the
	// IP header's protocol byte): the streams' packets would fill its
	// buffer. The kernel stamps each packet on arrival (SO_TIMESTAMPNS),
	// so this process's scheduling does not move the adverts.
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 9},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: 112},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		fmt.Fprintln(os.Stderr, "vrrpcap: filter:", err)
		return 1
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		fmt.Fprintln(os.Stderr, "vrrpcap: timestamps:", err)
		return 1
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		fmt.Fprintln(os.Stderr, "vrrpcap: bind:", err)
		return 1
	}
	out, err := os.Create(os.Getenv("VIPD_CAP_OUT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vrrpcap:", err)
		return 1
	}
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	fmt.Println("ready")
	buf, oob := make([]byte, 2048), make([]byte, 128)
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vrrpcap: recv:", err)
			return 1
		}
		if a, ok := parseAdvert(buf[:n]); ok {
			a.At = stamp(oob[:oobn])
			enc.Encode(a)
			w.Flush()
		}
	}
}

// stamp is the kernel's receive time from the control messages, or now.
func stamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Now()
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec)
		}
	}
	return time.Now()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// parseAdvert reads an IPv4 packet carrying VRRP (no checks beyond the
// lengths: the capture reports what was sent).
func parseAdvert(p []byte) (Advert, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != 112 {
		return Advert{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || len(p) < ihl+8 {
		return Advert{}, false
	}
	v := p[ihl:]
	src, _ := netip.AddrFromSlice(p[12:16])
	return Advert{Src: src, Version: int(v[0] >> 4), VRID: int(v[1]), Priority: int(v[2])}, true
}

// VRRPCapture is a running capture in a host's namespace.
type VRRPCapture struct {
	cmd  *exec.Cmd
	out  string
	done chan struct{}
}

// StartVRRPCapture records the adverts on h's segment until Stop.
func StartVRRPCapture(t testing.TB, h *Host) *VRRPCapture {
	t.Helper()
	self, _ := os.Executable()
	c := &VRRPCapture{out: filepath.Join(t.TempDir(), "vrrp.jsonl"), done: make(chan struct{})}
	c.cmd = h.Exec(context.Background(), self, "-test.run=^$")
	c.cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=vrrpcap", "VIPD_CAP_OUT="+c.out)
	c.cmd.Stderr = os.Stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.Stop)
	if err := AwaitLine(bufio.NewReader(stdout), "ready", 10*time.Second); err != nil {
		t.Fatalf("vrrp capture in %s: %v", h.NS, err)
	}
	return c
}

// Adverts returns what was captured so far.
func (c *VRRPCapture) Adverts() []Advert {
	f, err := os.Open(c.out)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Advert
	dec := json.NewDecoder(f)
	for {
		var a Advert
		if dec.Decode(&a) != nil {
			return out
		}
		out = append(out, a)
	}
}

// Stop ends the capture (SIGTERM, SIGKILL after 3 s).
func (c *VRRPCapture) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// AdvertGap is the longest time between consecutive adverts of vrid
// (from any router) whose later one came in (from, to].
func AdvertGap(as []Advert, vrid int, from, to time.Time) time.Duration {
	var longest time.Duration
	var prev time.Time
	for _, a := range as {
		if a.VRID != vrid {
			continue
		}
		if !prev.IsZero() && a.At.After(from) && !a.At.After(to) {
			longest = max(longest, a.At.Sub(prev))
		}
		prev = a.At
	}
	return longest
}

// MasterChanges counts how often the sender of vrid's adverts with a
// priority above 0 changed in (from, to]; resigns counts the adverts with
// priority 0 (a master handing over) in that window.
func MasterChanges(as []Advert, vrid int, from, to time.Time) (changes, resigns int) {
	var cur netip.Addr
	for _, a := range as {
		if a.VRID != vrid {
			continue
		}
		in := a.At.After(from) && !a.At.After(to)
		if a.Priority == 0 {
			if in {
				resigns++
			}
			continue
		}
		if cur.IsValid() && a.Src != cur && in {
			changes++
		}
		cur = a.Src
	}
	return changes, resigns
}

// ChangeLog describes the first few master changes and priority-0
// adverts of vrid in (from, to], with their time after from.
func ChangeLog(as []Advert, vrid int, from, to time.Time) []string {
	var out []string
	var cur netip.Addr
	for _, a := range as {
		if a.VRID != vrid || len(out) >= 10 {
			continue
		}
		in := a.At.After(from) && !a.At.After(to)
		switch {
		case a.Priority == 0 && in:
			out = append(out, fmt.Sprintf("+%s %s resigns (priority 0)", a.At.Sub(from).Round(time.Millisecond), a.Src))
		case a.Priority > 0 && cur.IsValid() && a.Src != cur && in:
			out = append(out, fmt.Sprintf("+%s %s -> %s (priority %d)", a.At.Sub(from).Round(time.Millisecond), cur, a.Src, a.Priority))
		}
		if a.Priority > 0 {
			cur = a.Src
		}
	}
	return out
}

// AwaitLine reads lines from r until one equals want; other lines
// starting with "error" end the wait with that line.
func AwaitLine(r *bufio.Reader, want string, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				errc <- fmt.Errorf("before %q: %w", want, err)
				return
			}
			switch l := trimNL(line); {
			case l == want:
				errc <- nil
				return
			case len(l) >= 5 && l[:5] == "error":
				errc <- fmt.Errorf("%s", l)
				return
			}
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("no %q after %s", want, timeout)
	}
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
