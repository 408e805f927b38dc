//go:build linux

package handoff

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkState moves a 16 MiB state with 2,000 descriptors through a
// socketpair in this process (no child), to measure the transport alone.
func BenchmarkState(b *testing.B) {
	body := pattern(16 << 20)
	files := make([]*os.File, 0, 2000)
	for range 1000 {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		files = append(files, r, w)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		s, err := newSock(os.NewFile(uintptr(fds[0]), "a"))
		if err != nil {
			b.Fatal(err)
		}
		r, err := newSock(os.NewFile(uintptr(fds[1]), "b"))
		if err != nil {
			b.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- s.writeState(1, body, files) }()
		msg, err := (&Parent{sock: r}).Receive(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if len(msg.Body) != len(body) || len(msg.Files) != len(files) {
			b.Fatalf("%d bytes and %d files", len(msg.Body), len(msg.Files))
		}
		closeFiles(msg.Files)
		s.close()
		r.close()
	}
}
