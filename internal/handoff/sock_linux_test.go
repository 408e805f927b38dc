//go:build linux

package handoff

import (
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawPair returns a sock on one end of a SOCK_SEQPACKET socketpair and
// the other end as a raw descriptor, to send it anything.
func rawPair(t *testing.T) (*sock, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSock(os.NewFile(uintptr(fds[0]), "test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close(); unix.Close(fds[1]) })
	return s, fds[1]
}

// devNulls opens n descriptors of /dev/null.
func devNulls(t *testing.T, n int) []int {
	t.Helper()
	fds := make([]int, n)
	for i := range fds {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds[i] = fd
	}
	return fds
}

// nextEvent returns the next event, or the terminal error.
func nextEvent(t *testing.T, s *sock) (event, error) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			return event{}, s.term
		}
		return ev, nil
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return event{}, nil
	}
}

func TestSockRejects(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		fds  int
		want error
	}{
		{"message over the largest frame", appendFrame(nil, kindChunk, 0, make([]byte, MaxChunk+1)), 0, ErrTooLarge},
		{"more descriptors than a message may carry", appendFrame(nil, kindChunk, 0, []byte{1}), MaxFilesPerMessage + 1, ErrTooLarge},
		{"fewer descriptors than the header says", appendFrame(nil, kindChunk, 2, []byte{1}), 1, ErrMalformed},
		{"descriptors on GO", appendFrame(nil, kindGo, 0, nil), 1, ErrMalformed},
		{"not a frame", []byte("garbage"), 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, raw := rawPair(t)
			before := countFDs(t)
			fds := devNulls(t, tt.fds)
			var oob []byte
			if len(fds) > 0 {
				oob = unix.UnixRights(fds...)
			}
			if err := unix.Sendmsg(raw, tt.msg, oob, nil, 0); err != nil {
				t.Fatalf("sendmsg: %v", err)
			}
			closeFDs(fds)
			if _, err := nextEvent(t, s); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if after := countFDs(t); after != before {
				t.Errorf("%d descriptors open after the bad message, %d before", after, before)
			}
		})
	}
}

func TestSockChunkWithFiles(t *testing.T) {
	s, raw := rawPair(t)
	fds := devNulls(t, MaxFilesPerMessage)
	defer closeFDs(fds)
	if err := unix.Sendmsg(raw, appendFrame(nil, kindChunk, len(fds), []byte("x")), unix.UnixRights(fds...), nil, 0); err != nil {
		t.Fatal(err)
	}
	ev, err := nextEvent(t, s)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFiles(ev.Files)
	if ev.Kind != kindChunk || string(ev.Payload) != "x" || len(ev.Files) != MaxFilesPerMessage {
		t.Fatalf("got %v %q with %d files, want CHUNK \"x\" with %d", ev.Kind, ev.Payload, len(ev.Files), MaxFilesPerMessage)
	}
	flags, err := unix.FcntlInt(ev.Files[0].Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received descriptor flags %#x, %v: want close-on-exec", flags, err)
	}
	unix.Close(raw)
	if _, err := nextEvent(t, s); !errors.Is(err, ErrClosed) {
		t.Errorf("after the peer closed: %v, want ErrClosed", err)
	}
}

// TestSendKeepsNonblocking: sending a file must not clear O_NONBLOCK on
// its open file description, which the proxy's own descriptor shares.
func TestSendKeepsNonblocking(t *testing.T) {
	s, raw := rawPair(t)
	r, w, err := os.Pipe() // nonblocking, in the runtime's poller
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// The drain ends before the test does: raw is closed at cleanup, and a
	// Recvmsg on its number after that read whatever socket the next test
	// opened under it (TestFromEnv's, whose READY it took: a 10-minute
	// hang in CI).
	done := make(chan struct{})
	defer func() {
		unix.Shutdown(raw, unix.SHUT_RD)
		<-done
	}()
	go func() { // drain what writeState sends
		defer close(done)
		buf := make([]byte, maxFrame)
		oob := make([]byte, unix.CmsgSpace(4*MaxFilesPerMessage))
		for {
			n, oobn, _, _, err := unix.Recvmsg(raw, buf, oob, unix.MSG_CMSG_CLOEXEC)
			if err != nil || n == 0 && oobn == 0 {
				return
			}
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					fds, _ := unix.ParseUnixRights(&m)
					closeFDs(fds)
				}
			}
		}
	}()
	if err := s.writeState(1, []byte("{}"), []*os.File{r, w}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*os.File{r, w} {
		rc, err := f.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags int
		rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
		if err != nil || flags&unix.O_NONBLOCK == 0 {
			t.Errorf("%s: flags %#x, %v after the send: O_NONBLOCK cleared", f.Name(), flags, err)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Run("unset", func(t *testing.T) {
		t.Setenv(EnvFD, "")
		os.Unsetenv(EnvFD)
		if p, err := FromEnv(); p != nil || err != nil {
			t.Errorf("FromEnv = %v, %v; want nil, nil", p, err)
		}
	})
	t.Run("not a number", func(t *testing.T) {
		t.Setenv(EnvFD, "three")
		if _, err := FromEnv(); err == nil {
			t.Error("FromEnv accepted three")
		}
		if _, ok := os.LookupEnv(EnvFD); ok {
			t.Errorf("%s still set", EnvFD)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		fd := devNulls(t, 1)[0]
		defer unix.Close(fd)
		t.Setenv(EnvFD, strconv.Itoa(fd))
		if _, err := FromEnv(); !errors.Is(err, unix.ENOTSOCK) {
			t.Errorf("FromEnv on /dev/null = %v, want ENOTSOCK", err)
		}
	})
	t.Run("stream socket", func(t *testing.T) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer closeFDs(fds[:])
		t.Setenv(EnvFD, strconv.Itoa(fds[0]))
		if _, err := FromEnv(); !errors.Is(err, ErrProtocol) {
			t.Errorf("FromEnv on a stream socket = %v, want ErrProtocol", err)
		}
	})
	t.Run("seqpacket", func(t *testing.T) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0) // inheritable
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[1])
		t.Setenv(EnvFD, strconv.Itoa(fds[0]))
		p, err := FromEnv()
		if err != nil || p == nil {
			t.Fatalf("FromEnv = %v, %v", p, err)
		}
		defer p.Close()
		if _, ok := os.LookupEnv(EnvFD); ok {
			t.Errorf("%s still set", EnvFD)
		}
		if flags, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("descriptor %d still open without close-on-exec", fds[0])
		}
		if err := p.Ready(); err != nil {
			t.Fatalf("Ready: %v", err)
		}
		buf := make([]byte, 64)
		n, err := unix.Read(fds[1], buf)
		if f, perr := parseFrame(buf[:max(n, 0)]); err != nil || perr != nil || f.Kind != kindReady {
			t.Errorf("the other end read %q, %v, %v; want READY", buf[:max(n, 0)], err, perr)
		}
	})
}
