//go:build linux

package lab

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// The stream server and client of the restart benchmark: helper processes
// (roles "streamsrv" and "streamcli") in the backend's and the client's
// namespaces. A connection opens with a 16-byte header (magic, id, mode);
// then each side writes its own sequence (StreamSeed) in chunks and
// verifies the other's. Both take commands on stdin, one a line: "half"
// (the half-closing connections close one direction), "end" (finish every
// stream in order), and report each connection's view (StreamSide) as JSON.

// Stream modes: which direction, if any, is shut mid-run ("half").
const (
	ModeBoth    = 0 // both directions run to the end
	ModeC2SHalf = 1 // the client shuts its write side at "half"
	ModeS2CHalf = 2 // the server shuts its write side at "half"
	ModeProbe   = 9 // a new-connection probe: the server answers probeReply
)

const streamMagic = "VRS1"

var probeReply = []byte("VRSOK\n\x00\x00")

// StreamSide is one side's view of one connection.
type StreamSide struct {
	ID   uint32 `json:"id"`
	Mode int    `json:"mode"`
	// Sent counts the bytes this side wrote; Closed says it shut its
	// write side on purpose (CloseWrite) after them.
	Sent     uint64 `json:"sent"`
	Closed   bool   `json:"closed,omitempty"`
	WriteErr string `json:"write_err,omitempty"`
	// The read side: bytes read, the verifier's figures, and how it ended.
	Recv       uint64    `json:"recv"`
	Verified   uint64    `json:"verified"`
	Lost       uint64    `json:"lost,omitempty"`
	Dup        uint64    `json:"dup,omitempty"`
	Unverified uint64    `json:"unverified,omitempty"`
	Mismatches int       `json:"mismatches,omitempty"`
	Corrupt    bool      `json:"corrupt,omitempty"`
	EOF        bool      `json:"eof,omitempty"`
	ReadErr    string    `json:"read_err,omitempty"`
	EndAt      time.Time `json:"end_at,omitzero"`
}

// stream is one connection's live state on either side.
type stream struct {
	mu   sync.Mutex
	side StreamSide
	// readDone is closed when the read side ended; readFailed tells an
	// error from an EOF.
	readDone   chan struct{}
	readFailed bool
	// writeDone, on the server, is closed when the write side returned
	// (its Closed or WriteErr is then final).
	writeDone chan struct{}
}

func (s *stream) snapshot() StreamSide {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.side
}

// streamEnv is the pacing both helpers read from the environment.
type streamEnv struct {
	every time.Duration // one chunk per connection and direction this often
	chunk int
}

func readStreamEnv() streamEnv {
	e := streamEnv{every: 200 * time.Millisecond, chunk: 256}
	if d, err := time.ParseDuration(os.Getenv("VIPD_STREAM_EVERY")); err == nil && d > 0 {
		e.every = d
	}
	if n, err := strconv.Atoi(os.Getenv("VIPD_STREAM_CHUNK")); err == nil && n > 0 && n <= 1<<20 {
		e.chunk = n
	}
	return e
}

// readSide reads c until EOF or an error, verifying seed's sequence.
func (s *stream) readSide(c net.Conn, seed uint64) {
	defer close(s.readDone)
	v := Verifier{Seed: seed}
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			v.Feed(buf[:n])
			s.mu.Lock()
			s.side.Recv += uint64(n)
			s.mu.Unlock()
		}
		if err != nil {
			v.Finish()
			s.mu.Lock()
			s.side.Verified, s.side.Lost, s.side.Dup, s.side.Unverified = v.Verified, v.Lost, v.Dup, v.Unverified
			s.side.Mismatches, s.side.Corrupt = v.Mismatches, v.Corrupt
			s.side.EndAt = time.Now()
			if errors.Is(err, io.EOF) {
				s.side.EOF = true
			} else {
				s.side.ReadErr = err.Error()
				s.readFailed = true
			}
			s.mu.Unlock()
			return
		}
		// Publish the figures as they go, for a dump before the end.
		s.mu.Lock()
		s.side.Verified, s.side.Lost, s.side.Dup = v.Verified, v.Lost, v.Dup
		s.side.Mismatches, s.side.Corrupt = v.Mismatches, v.Corrupt
		s.mu.Unlock()
	}
}

// writeSide writes seed's sequence in chunks until one of closeOn fires
// (then it shuts its write side: an orderly end), the read side fails
// (then it stops without one), or a write fails.
func (s *stream) writeSide(c *net.TCPConn, seed uint64, e streamEnv, closeOn ...<-chan struct{}) {
	var pos uint64
	buf := make([]byte, e.chunk)
	timer := time.NewTimer(time.Duration(rand.Int64N(int64(e.every))))
	defer timer.Stop()
	var a, b <-chan struct{}
	rd := s.readDone
	if len(closeOn) > 0 {
		a = closeOn[0]
	}
	if len(closeOn) > 1 {
		b = closeOn[1]
	}
	shut := func() {
		err := c.CloseWrite()
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.side.WriteErr = "shutdown: " + err.Error()
			return
		}
		s.side.Closed = true
	}
	for {
		select {
		case <-a:
			shut()
			return
		case <-b:
			shut()
			return
		case <-rd:
			s.mu.Lock()
			failed := s.readFailed
			s.mu.Unlock()
			if failed {
				return
			}
			// EOF from the peer: keep writing until told to shut (the
			// callers pass the read side's end as a closeOn when an EOF
			// ends this direction too).
			rd = nil
			continue
		case <-timer.C:
		}
		SeqFill(seed, pos, buf)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Write(buf)
		pos += uint64(n)
		s.mu.Lock()
		s.side.Sent = pos
		if err != nil {
			s.side.WriteErr = err.Error()
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
		timer.Reset(e.every)
	}
}

// streamRegistry holds every stream of a helper process, for the dump.
type streamRegistry struct {
	mu      sync.Mutex
	streams []*stream
}

func (r *streamRegistry) add(s *stream) {
	r.mu.Lock()
	r.streams = append(r.streams, s)
	r.mu.Unlock()
}

func (r *streamRegistry) all() []*stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*stream(nil), r.streams...)
}

// awaitEnds waits up to d for both sides of every stream to end.
func (r *streamRegistry) awaitEnds(d time.Duration) {
	deadline := time.After(d)
	for _, s := range r.all() {
		for _, ch := range []chan struct{}{s.readDone, s.writeDone} {
			if ch == nil {
				continue
			}
			select {
			case <-ch:
			case <-deadline:
				return
			}
		}
	}
}

// dump writes every stream's view to path as a JSON array.
func (r *streamRegistry) dump(path string) error {
	var out []StreamSide
	for _, s := range r.all() {
		out = append(out, s.snapshot())
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// writeHeader sends a connection's header.
func writeHeader(c net.Conn, id uint32, mode int) error {
	var h [16]byte
	copy(h[:], streamMagic)
	binary.BigEndian.PutUint32(h[4:], id)
	h[8] = byte(mode)
	_, err := c.Write(h[:])
	return err
}

// readHeader reads a connection's header.
func readHeader(c net.Conn) (uint32, int, error) {
	var h [16]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, 0, err
	}
	if string(h[:4]) != streamMagic {
		return 0, 0, fmt.Errorf("bad magic %q", h[:4])
	}
	return binary.BigEndian.Uint32(h[4:]), int(h[8]), nil
}

// commands reads stdin lines and closes half and end when they come; a
// closed stdin counts as "end".
func commands(half, end chan struct{}) {
	var halfOnce, endOnce sync.Once
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "half":
			halfOnce.Do(func() { close(half) })
		case "end":
			endOnce.Do(func() { close(end) })
		}
	}
	endOnce.Do(func() { close(end) })
}

// streamServerMain is the "streamsrv" role: it listens on
// VIPD_STREAM_LISTEN, serves streams and probes, and writes its streams'
// views to VIPD_STREAM_OUT when stdin says "dump" or closes.
func streamServerMain() int {
	e := readStreamEnv()
	ln, err := net.Listen("tcp", os.Getenv("VIPD_STREAM_LISTEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamsrv:", err)
		return 1
	}
	half, end := make(chan struct{}), make(chan struct{})
	reg := &streamRegistry{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveStream(c.(*net.TCPConn), reg, e, half, end)
		}
	}()
	fmt.Println("ready")
	dump := make(chan struct{})
	go func() {
		var halfOnce, endOnce sync.Once
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "half":
				halfOnce.Do(func() { close(half) })
			case "end":
				endOnce.Do(func() { close(end) })
			case "dump":
				// The clients' last FINs may still be on their way.
				reg.awaitEnds(10 * time.Second)
				if err := reg.dump(os.Getenv("VIPD_STREAM_OUT")); err != nil {
					fmt.Println("error", err)
					continue
				}
				fmt.Println("dumped")
			}
		}
		close(dump)
	}()
	<-dump
	ln.Close()
	if err := reg.dump(os.Getenv("VIPD_STREAM_OUT")); err != nil {
		fmt.Fprintln(os.Stderr, "streamsrv:", err)
		return 1
	}
	return 0
}

// serveStream serves one connection: a probe gets its reply; a stream
// runs until both directions ended. A connection with no header (a health
// check) is closed.
func serveStream(c *net.TCPConn, reg *streamRegistry, e streamEnv, half, end chan struct{}) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	id, mode, err := readHeader(c)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	if mode == ModeProbe {
		c.Write(probeReply)
		return
	}
	s := &stream{side: StreamSide{ID: id, Mode: mode}, readDone: make(chan struct{}), writeDone: make(chan struct{})}
	reg.add(s)
	// The server's direction ends: at "half" for ModeS2CHalf; at "end"
	// for ModeC2SHalf (the client shut its side long before); otherwise
	// when the client has shut its side (its EOF).
	var closeOn []<-chan struct{}
	switch mode {
	case ModeS2CHalf:
		closeOn = []<-chan struct{}{half, eofOf(s)}
	case ModeC2SHalf:
		closeOn = []<-chan struct{}{end}
	default:
		closeOn = []<-chan struct{}{eofOf(s)}
	}
	go func() { defer close(s.writeDone); s.writeSide(c, StreamSeed(id, 1), e, closeOn...) }()
	s.readSide(c, StreamSeed(id, 0))
	<-s.writeDone
}

// eofOf is closed when s's read side ends with an EOF (never on an error:
// the writer stops on its own then).
func eofOf(s *stream) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		<-s.readDone
		s.mu.Lock()
		failed := s.readFailed
		s.mu.Unlock()
		if !failed {
			close(ch)
		}
	}()
	return ch
}
