package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHelloRoundTrip(t *testing.T) {
	tests := []Hello{
		{PID: 1, BinaryVersion: "", Formats: []uint16{1}},
		{PID: 4242, BinaryVersion: "v1.2.3-rc1 (abc123)", Formats: []uint16{3, 2, 1}},
		{PID: 1<<31 - 1, BinaryVersion: strings.Repeat("é", MaxBinaryVersion/2), Formats: seq(MaxFormats)},
	}
	for _, want := range tests {
		p, err := appendHello(nil, want)
		if err != nil {
			t.Fatalf("appendHello(%+v): %v", want, err)
		}
		msg := appendFrame(nil, kindHello, 0, p)
		f, err := parseFrame(msg)
		if err != nil {
			t.Fatalf("parseFrame: %v", err)
		}
		got, err := parseHello(f.Payload)
		if err != nil {
			t.Fatalf("parseHello: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("HELLO round trip (-want +got):\n%s", diff)
		}
	}
}

func seq(n int) []uint16 {
	s := make([]uint16, n)
	for i := range s {
		s[i] = uint16(i + 1)
	}
	return s
}

func TestAppendHelloRejects(t *testing.T) {
	tests := []struct {
		name string
		h    Hello
		want error
	}{
		{"no pid", Hello{Formats: []uint16{1}}, ErrMalformed},
		{"no formats", Hello{PID: 1}, ErrMalformed},
		{"format 0", Hello{PID: 1, Formats: []uint16{0}}, ErrMalformed},
		{"twice", Hello{PID: 1, Formats: []uint16{1, 1}}, ErrMalformed},
		{"too many formats", Hello{PID: 1, Formats: seq(MaxFormats + 1)}, ErrTooLarge},
		{"long version", Hello{PID: 1, Formats: []uint16{1}, BinaryVersion: strings.Repeat("x", MaxBinaryVersion+1)}, ErrTooLarge},
		{"control character", Hello{PID: 1, Formats: []uint16{1}, BinaryVersion: "v1\n"}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := appendHello(nil, tt.h); !errors.Is(err, tt.want) {
				t.Errorf("appendHello(%+v) = %v, want %v", tt.h, err, tt.want)
			}
		})
	}
}

// header builds a frame header by hand.
func header(version byte, k kind, nfds uint16, n uint32) []byte {
	b := append([]byte("VIPH"), version, byte(k))
	b = binary.BigEndian.AppendUint16(b, nfds)
	return binary.BigEndian.AppendUint32(b, n)
}

func TestParseFrameRejects(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"short header", []byte("VIPH\x01\x06\x00"), io.ErrUnexpectedEOF},
		{"bad magic", append([]byte("VIPX"), header(1, kindReady, 0, 0)[4:]...), ErrMalformed},
		{"wire version 2", header(2, kindReady, 0, 0), ErrVersion},
		{"wire version 0", header(0, kindReady, 0, 0), ErrVersion},
		{"unknown kind", header(1, 9, 0, 0), ErrMalformed},
		{"kind 0", header(1, 0, 0, 0), ErrMalformed},
		{"descriptors on READY", header(1, kindReady, 1, 0), ErrMalformed},
		{"too many descriptors", header(1, kindChunk, MaxFilesPerMessage+1, 0), ErrTooLarge},
		{"payload on READY", append(header(1, kindReady, 0, 1), 0), ErrTooLarge},
		{"chunk too big", header(1, kindChunk, 0, MaxChunk+1), ErrTooLarge},
		{"length 4 GiB", header(1, kindChunk, 0, 1<<32-1), ErrTooLarge},
		{"short BEGIN", append(header(1, kindBegin, 0, 15), make([]byte, 15)...), ErrMalformed},
		{"payload missing", header(1, kindEnd, 0, 4), io.ErrUnexpectedEOF},
		{"trailing bytes", append(header(1, kindGo, 0, 0), 0), ErrMalformed},
		{"reason too long", header(1, kindRefuse, 0, MaxReason+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFrame(tt.msg); !errors.Is(err, tt.want) {
				t.Errorf("parseFrame(%q) = %v, want %v", tt.msg, err, tt.want)
			}
		})
	}
}

func TestParseHelloRejects(t *testing.T) {
	good, err := appendHello(nil, Hello{PID: 7, BinaryVersion: "v1", Formats: []uint16{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"pid 0", append([]byte{0, 0, 0, 0}, good[4:]...), ErrMalformed},
		{"negative pid", append([]byte{0x80, 0, 0, 0}, good[4:]...), ErrMalformed},
		{"no formats", []byte{0, 0, 0, 7, 0, 0, 0, 0}, ErrMalformed},
		{"format count over bound", []byte{0, 0, 0, 7, 0xff, 0xff}, ErrTooLarge},
		{"formats cut", good[:8], io.ErrUnexpectedEOF},
		{"version cut", good[:len(good)-1], io.ErrUnexpectedEOF},
		{"trailing", append(bytes.Clone(good), 'x'), ErrMalformed},
		{"version not UTF-8", []byte{0, 0, 0, 7, 0, 1, 0, 1, 0, 1, 0xff}, ErrMalformed},
		{"version length over bound", []byte{0, 0, 0, 7, 0, 1, 0, 1, 0xff, 0xff}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseHello(tt.p); !errors.Is(err, tt.want) {
				t.Errorf("parseHello(%q) = %v, want %v", tt.p, err, tt.want)
			}
		})
	}
}

func TestParseReason(t *testing.T) {
	if got, err := parseReason([]byte("no common format: old writes 1")); err != nil || got != "no common format: old writes 1" {
		t.Errorf("parseReason = %q, %v", got, err)
	}
	for _, p := range []string{"a\x00b", "\xc3", "line\nbreak"} {
		if _, err := parseReason([]byte(p)); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseReason(%q) = %v, want ErrMalformed", p, err)
		}
	}
}

// frames returns the frames of a state as stateFrames encodes them.
func frames(t *testing.T, format uint16, body []byte, nfiles int) []frame {
	t.Helper()
	var fs []frame
	err := stateFrames(format, body, nfiles, func(k kind, nfds int, payload []byte) error {
		f, err := parseFrame(appendFrame(nil, k, nfds, payload))
		if err != nil {
			return err
		}
		fs = append(fs, f)
		return nil
	})
	if err != nil {
		t.Fatalf("stateFrames: %v", err)
	}
	return fs
}

func TestStateRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		body   int
		files  int
		frames int
	}{
		{"empty", 0, 0, 2},
		{"one byte", 1, 0, 3},
		{"files only", 0, 2 * MaxFilesPerMessage, 4},
		{"one chunk exactly", MaxChunk, MaxFilesPerMessage, 3},
		{"body longer than files", 3*MaxChunk + 1, 300, 6},
		{"files longer than body", 10, 3*MaxFilesPerMessage + 1, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := pattern(tt.body)
			fs := frames(t, 7, body, tt.files)
			if len(fs) != tt.frames {
				t.Errorf("%d frames, want %d", len(fs), tt.frames)
			}
			var a assembler
			for i, f := range fs {
				done, err := a.add(f)
				if err != nil {
					t.Fatalf("frame %d (%v): %v", i, f.Kind, err)
				}
				if done != (i == len(fs)-1) {
					t.Fatalf("frame %d (%v): done = %v", i, f.Kind, done)
				}
			}
			if a.begin.Format != 7 || a.files != tt.files || !bytes.Equal(a.body, body) {
				t.Errorf("got format %d, %d files, %d bytes (equal %v); want 7, %d, %d",
					a.begin.Format, a.files, len(a.body), bytes.Equal(a.body, body), tt.files, tt.body)
			}
		})
	}
}

// pattern returns n bytes that differ from chunk to chunk: a block of a
// size prime to MaxChunk, repeated (cheap under -race).
func pattern(n int) []byte {
	const block = 65521
	b := make([]byte, n)
	for i := range min(n, block) {
		b[i] = byte(i ^ i>>8)
	}
	for i := block; i < n; i *= 2 {
		copy(b[i:], b[:i])
	}
	return b
}

func TestAssemblerRejects(t *testing.T) {
	begin := func(format uint16, files uint32, length uint64) frame {
		p := binary.BigEndian.AppendUint16(nil, format)
		p = binary.BigEndian.AppendUint16(p, 0)
		p = binary.BigEndian.AppendUint32(p, files)
		return frame{Kind: kindBegin, Payload: binary.BigEndian.AppendUint64(p, length)}
	}
	chunk := func(n, nfds int) frame { return frame{Kind: kindChunk, NFDs: nfds, Payload: pattern(n)} }
	end := func(body []byte) frame { return frame{Kind: kindEnd, Payload: appendEnd(nil, body)} }
	tests := []struct {
		name   string
		frames []frame
		want   error
	}{
		{"chunk first", []frame{chunk(1, 0)}, ErrProtocol},
		{"READY inside", []frame{begin(1, 0, 1), {Kind: kindReady}}, ErrProtocol},
		{"BEGIN twice", []frame{begin(1, 0, 1), begin(1, 0, 1)}, ErrProtocol},
		{"format 0", []frame{begin(0, 0, 0)}, ErrMalformed},
		{"reserved bits", []frame{{Kind: kindBegin, Payload: []byte{0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}, ErrMalformed},
		{"body over MaxBody", []frame{begin(1, 0, MaxBody+1)}, ErrTooLarge},
		{"body of 2^64-1", []frame{begin(1, 0, 1<<64-1)}, ErrTooLarge},
		{"files over MaxFiles", []frame{begin(1, MaxFiles+1, 0)}, ErrTooLarge},
		{"more bytes than announced", []frame{begin(1, 0, 10), chunk(11, 0)}, ErrTooLarge},
		{"more files than announced", []frame{begin(1, 2, 0), chunk(0, 3)}, ErrTooLarge},
		{"empty chunk", []frame{begin(1, 1, 1), chunk(0, 0)}, ErrMalformed},
		{"END early", []frame{begin(1, 0, 10), chunk(5, 0), end(pattern(5))}, ErrProtocol},
		{"END before files", []frame{begin(1, 1, 0), end(nil)}, ErrProtocol},
		{"bad CRC", []frame{begin(1, 0, 3), chunk(3, 0), end([]byte("abc"))}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a assembler
			var err error
			for _, f := range tt.frames {
				if _, err = a.add(f); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestAssemblerGrowsWithData checks that BEGIN's announced length is not
// allocated up front: a peer that announces 64 MiB and sends 1 byte costs
// little.
func TestAssemblerGrowsWithData(t *testing.T) {
	var a assembler
	for _, f := range []frame{
		{Kind: kindBegin, Payload: appendBegin(nil, begin{Format: 1, Length: MaxBody})},
		{Kind: kindChunk, Payload: pattern(MaxChunk)},
	} {
		if _, err := a.add(f); err != nil {
			t.Fatal(err)
		}
	}
	if got := cap(a.body); got != MaxChunk {
		t.Errorf("after one chunk of a %d-byte body, capacity %d, want %d", MaxBody, got, MaxChunk)
	}
}

func TestHelloReads(t *testing.T) {
	h := Hello{Formats: []uint16{3, 1}}
	if !h.Reads(1) || !h.Reads(3) || h.Reads(2) {
		t.Errorf("%v.Reads(1, 3, 2) wrong", h.Formats)
	}
	if !(Hello{Formats: Supported()}).Reads(Version) {
		t.Errorf("Supported() %v does not hold Version %d", Supported(), Version)
	}
}
