//go:build linux

package lab

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Delay puts a userspace delay link between a host and the bridge, for
// kernels without sch_netem. The host's switch port (its veth peer) leaves
// br0; a new veth pair q<name><id> / r<name><id> is created in the switch
// namespace with the r end on br0, and a helper process (the test binary,
// VIPD_TEST_HELPER=delay, run with `ip netns exec` in the switch namespace)
// relays every frame between the host's port and q over AF_PACKET sockets,
// in both directions, each frame after delay + a uniform draw in
// [-jitter, +jitter]. Each direction is a FIFO: frames are never
// reordered, so a frame that draws a shorter delay than its predecessor
// leaves right after it (per-frame delay is max(own draw, predecessor's
// release); when jitter exceeds the frame spacing the delays skew toward
// the upper end). Frames carry their virtio-net header (PACKET_VNET_HDR),
// so offloaded checksums and GSO survive the relay. Each direction queues
// at most 4096 frames (more are dropped and counted); the helper exits
// when killed or after 10 minutes.
//
// undo detaches r, puts the host's port back on br0 (never both on the
// bridge: that would be a loop through the relay), stops the helper by
// PID, deletes the veth pair and logs the relay's counters. It is also
// registered with t.Cleanup and is safe to call twice.
func (l *Lab) Delay(h *Host, delay, jitter time.Duration) (undo func()) {
	l.t.Helper()
	if jitter > delay {
		l.t.Fatalf("Delay: jitter %s > delay %s", jitter, delay)
	}
	q, r := "q"+h.Name+l.ID, "r"+h.Name+l.ID
	if len(q) > 15 {
		l.t.Fatalf("interface name %q too long", q)
	}
	l.IPN(l.sw, "link", "add", q, "type", "veth", "peer", "name", r)
	l.IPN(l.sw, "link", "set", q, "up")

	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", l.sw, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=delay",
		"VIPD_DELAY_A="+h.peer, "VIPD_DELAY_B="+q,
		"VIPD_DELAY="+delay.String(), "VIPD_DELAY_JITTER="+jitter.String(),
		"VIPD_DELAY_LIMIT=10m")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		cmd.Wait()
		close(done)
	}()
	stop := func() string {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		var last string
		for {
			select {
			case s := <-lines:
				last = s
			default:
				return last
			}
		}
	}
	select {
	case s := <-lines:
		if s != "ready" {
			stop()
			exec.Command("ip", "-n", l.sw, "link", "del", q).Run()
			l.t.Fatalf("delay relay: %q", s)
		}
	case <-done:
		exec.Command("ip", "-n", l.sw, "link", "del", q).Run()
		l.t.Fatalf("delay relay exited before it was ready")
	case <-time.After(5 * time.Second):
		stop()
		exec.Command("ip", "-n", l.sw, "link", "del", q).Run()
		l.t.Fatalf("delay relay not ready after 5s")
	}
	// Sockets are bound: swap the host from its port to the relay.
	l.IPN(l.sw, "link", "set", h.peer, "nomaster")
	l.IPN(l.sw, "link", "set", r, "master", "br0")
	l.IPN(l.sw, "link", "set", r, "up")

	var once sync.Once
	undo = func() {
		once.Do(func() {
			for _, args := range [][]string{
				{"link", "set", r, "nomaster"},
				{"link", "set", h.peer, "master", "br0"},
			} {
				if out, err := exec.Command("ip", append([]string{"-n", l.sw}, args...)...).CombinedOutput(); err != nil {
					l.t.Errorf("delay undo: ip %s: %v: %s", strings.Join(args, " "), err, out)
				}
			}
			stats := stop()
			exec.Command("ip", "-n", l.sw, "link", "del", q).Run()
			l.t.Logf("delay relay %s (%s +- %s): %s", h.Name, delay, jitter, stats)
		})
	}
	l.t.Cleanup(undo)
	return undo
}

// ---- delay relay (runs in the switch namespace) ----

type delayed struct {
	frame []byte
	at    time.Time
}

type relayStats struct {
	frames, dropped, errs atomic.Int64
	maxLate               atomic.Int64 // ns a frame left after its release time
}

func delayMain() int {
	delay, _ := time.ParseDuration(os.Getenv("VIPD_DELAY"))
	jitter, _ := time.ParseDuration(os.Getenv("VIPD_DELAY_JITTER"))
	limit, _ := time.ParseDuration(os.Getenv("VIPD_DELAY_LIMIT"))
	if limit <= 0 || limit > 10*time.Minute {
		limit = 10 * time.Minute
	}
	if delay < 0 || jitter < 0 || jitter > delay || delay > 10*time.Second {
		fmt.Println("bad delay/jitter")
		return 2
	}
	a, err := packetSocket(os.Getenv("VIPD_DELAY_A"))
	if err != nil {
		fmt.Println("socket:", err)
		return 1
	}
	b, err := packetSocket(os.Getenv("VIPD_DELAY_B"))
	if err != nil {
		fmt.Println("socket:", err)
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, limit)
	defer cancel2()
	var ab, ba relayStats
	go relayDir(a, b, delay, jitter, &ab)
	go relayDir(b, a, delay, jitter, &ba)
	fmt.Println("ready")
	<-ctx.Done()
	fmt.Printf("host->bridge %d frames, %d dropped, %d send errors, max late %s; bridge->host %d frames, %d dropped, %d send errors, max late %s\n",
		ab.frames.Load(), ab.dropped.Load(), ab.errs.Load(), time.Duration(ab.maxLate.Load()).Round(time.Microsecond),
		ba.frames.Load(), ba.dropped.Load(), ba.errs.Load(), time.Duration(ba.maxLate.Load()).Round(time.Microsecond))
	return 0
}

// packetSocket opens an AF_PACKET raw socket bound to ifname that sees
// every frame the interface receives (not the ones it sends) and carries a
// virtio-net header in front of each frame.
func packetSocket(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	// Protocol 0 until bound, so no frame of another interface is queued.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, o := range []int{unix.PACKET_VNET_HDR, unix.PACKET_IGNORE_OUTGOING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt %d: %w", o, err)
		}
	}
	all := uint16(unix.ETH_P_ALL)
	proto := all<<8 | all>>8 // network byte order
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	mr := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// relayDir reads frames from in and writes each to out at its release
// time, in order.
func relayDir(in, out int, delay, jitter time.Duration, st *relayStats) {
	q := make(chan delayed, 4096)
	go func() {
		for f := range q {
			if d := time.Until(f.at); d > 0 {
				time.Sleep(d) // hold the frame until its release time
			}
			if late := time.Since(f.at); int64(late) > st.maxLate.Load() {
				st.maxLate.Store(int64(late))
			}
			if _, err := unix.Write(out, f.frame); err != nil {
				st.errs.Add(1)
			}
		}
	}()
	buf := make([]byte, 70000) // vnet header + a 64 KiB GSO frame
	var last time.Time
	for {
		n, from, err := unix.Recvfrom(in, buf, 0)
		if err != nil {
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			st.errs.Add(1)
			time.Sleep(10 * time.Millisecond) // back off a persistent error
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		d := delay
		if jitter > 0 {
			d += time.Duration(rand.Int64N(int64(2*jitter)+1)) - jitter
		}
		at := time.Now().Add(d)
		if at.Before(last) {
			at = last // FIFO: never overtake the previous frame
		}
		f := delayed{frame: append([]byte(nil), buf[:n]...), at: at}
		select {
		case q <- f:
			last = at
			st.frames.Add(1)
		default:
			st.dropped.Add(1)
		}
	}
}
