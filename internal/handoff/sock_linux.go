//go:build linux

package handoff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// errGone is the end of the other side: EOF on the socket, or the grace
// after the child process exited.
var errGone = fmt.Errorf("%w: the other side closed its end", ErrClosed)

// sock is one end of the handoff socketpair. One goroutine reads frames
// ahead (at most one) into events, so that a waiting method can also
// watch a deadline and its context; writes happen on the caller's
// goroutine, one caller at a time.
type sock struct {
	uc     *net.UnixConn
	events chan event
	// term is why events closed; written before the close.
	term error
	done chan struct{}
	once sync.Once
	wbuf []byte
}

// event is one received frame; Payload is its own copy, Files are the
// descriptors that came with it (close-on-exec).
type event struct {
	frame
	Files []*os.File
}

// newSock takes over f, an end of a SOCK_SEQPACKET unix socketpair, and
// starts reading.
func newSock(f *os.File) (*sock, error) {
	c, err := net.FileConn(f) // a close-on-exec duplicate
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("handoff: socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok || uc.LocalAddr().Network() != "unixpacket" {
		c.Close()
		return nil, fmt.Errorf("%w: the handoff descriptor is a %s socket, want unixpacket", ErrProtocol, c.LocalAddr().Network())
	}
	s := &sock{uc: uc, events: make(chan event), done: make(chan struct{})}
	go s.readLoop()
	return s, nil
}

// close closes the socket; the reader ends and closes any files it held.
func (s *sock) close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.uc.Close()
	})
	return err
}

// readLoop reads frames until an error, then sets term and closes events.
func (s *sock) readLoop() {
	defer close(s.events)
	buf := make([]byte, maxFrame)
	oob := make([]byte, unix.CmsgSpace(4*MaxFilesPerMessage))
	for {
		ev, err := s.read(buf, oob)
		if err != nil {
			s.term = err
			return
		}
		select {
		case s.events <- ev:
		case <-s.done:
			closeFiles(ev.Files)
			s.term = ErrClosed
			return
		}
	}
}

// read reads one message and decodes its frame; on error it closes any
// descriptors that came with it.
func (s *sock) read(buf, oob []byte) (event, error) {
	n, oobn, flags, _, err := s.uc.ReadMsgUnix(buf, oob)
	files, ferr := rights(oob[:oobn])
	fail := func(err error) (event, error) {
		closeFiles(files)
		return event{}, err
	}
	switch {
	case errors.Is(err, net.ErrClosed):
		return fail(ErrClosed)
	case errors.Is(err, io.EOF), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, unix.ECONNRESET):
		return fail(errGone)
	case err != nil:
		return fail(fmt.Errorf("handoff: read: %w", err))
	case n == 0 && oobn == 0:
		return fail(errGone)
	case flags&unix.MSG_TRUNC != 0:
		return fail(fmt.Errorf("%w: a message over %d bytes", ErrTooLarge, maxFrame))
	case flags&unix.MSG_CTRUNC != 0:
		return fail(fmt.Errorf("%w: more than %d descriptors in one message", ErrTooLarge, MaxFilesPerMessage))
	case ferr != nil:
		return fail(ferr)
	}
	f, err := parseFrame(buf[:n])
	if err != nil {
		return fail(err)
	}
	if len(files) != f.NFDs {
		return fail(fmt.Errorf("%w: %v says %d descriptors, %d came", ErrMalformed, f.Kind, f.NFDs, len(files)))
	}
	f.Payload = append([]byte(nil), f.Payload...)
	return event{frame: f, Files: files}, nil
}

// rights returns the descriptors of SCM_RIGHTS control messages as files.
func rights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %w", ErrMalformed, err)
	}
	var files []*os.File
	var bad error
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			bad = fmt.Errorf("%w: control message level %d type %d", ErrMalformed, m.Header.Level, m.Header.Type)
			continue
		}
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			bad = fmt.Errorf("%w: SCM_RIGHTS: %w", ErrMalformed, err)
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("handoff-fd-%d", fd)))
		}
	}
	return files, bad
}

// write sends one frame with the given descriptors (which stay open).
func (s *sock) write(k kind, payload []byte, fds []int) error {
	s.wbuf = appendFrame(s.wbuf[:0], k, len(fds), payload)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, _, err := s.uc.WriteMsgUnix(s.wbuf, oob, nil)
	switch {
	case errors.Is(err, net.ErrClosed):
		return ErrClosed
	case errors.Is(err, unix.EPIPE), errors.Is(err, unix.ECONNRESET):
		return errGone
	case err != nil:
		return fmt.Errorf("handoff: sending %v: %w", k, err)
	case n != len(s.wbuf):
		return fmt.Errorf("handoff: sending %v: %d of %d bytes written", k, n, len(s.wbuf))
	}
	return nil
}

// writeState sends BEGIN, CHUNKs with the files and END. The caller's
// files are duplicated a chunk at a time, without touching their blocking
// mode (os.File.Fd would clear O_NONBLOCK, which a duplicate shares with
// the proxy's own descriptor), and the duplicates closed after each send.
func (s *sock) writeState(format uint16, body []byte, files []*os.File) error {
	next := files
	return stateFrames(format, body, len(files), func(k kind, nfds int, payload []byte) error {
		dups, err := dupAll(next[:nfds])
		next = next[nfds:]
		if err != nil {
			return err
		}
		defer closeFDs(dups)
		return s.write(k, payload, dups)
	})
}

// dupAll duplicates the files' descriptors (close-on-exec).
func dupAll(files []*os.File) ([]int, error) {
	dups := make([]int, 0, len(files))
	for i, f := range files {
		if f == nil {
			closeFDs(dups)
			return nil, fmt.Errorf("handoff: file %d is nil", i)
		}
		rc, err := f.SyscallConn()
		if err != nil {
			closeFDs(dups)
			return nil, fmt.Errorf("handoff: file %d (%s): %w", i, f.Name(), err)
		}
		var dup int
		var derr error
		if err := rc.Control(func(fd uintptr) {
			dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}); err != nil {
			derr = err
		}
		if derr != nil {
			closeFDs(dups)
			return nil, fmt.Errorf("handoff: file %d (%s): dup: %w", i, f.Name(), derr)
		}
		dups = append(dups, dup)
	}
	return dups, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
