package handoff

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf8"
)

// wireVersion is the version of the frame layout. The header and HELLO of
// version 1 must stay readable by every later binary.
const wireVersion = 1

// magic opens every frame.
var magic = [4]byte{'V', 'I', 'P', 'H'}

// headerLen is the size of a frame header: magic (4), wire version (1),
// kind (1), descriptors attached (2), payload length (4).
const headerLen = 12

// maxFrame is the largest frame: a header and a full chunk.
const maxFrame = headerLen + MaxChunk

// kind says what a frame is.
type kind uint8

// Frame kinds. The direction is in the comment; REFUSE goes both ways.
const (
	kindHello   kind = 1 // child → parent: Hello
	kindRefuse  kind = 2 // either way: reason
	kindBegin   kind = 3 // parent → child: format, file count, body length
	kindChunk   kind = 4 // parent → child: body bytes and descriptors
	kindEnd     kind = 5 // parent → child: CRC-32C of the body
	kindReady   kind = 6 // child → parent
	kindGo      kind = 7 // parent → child
	kindRunning kind = 8 // child → parent
)

// String names a kind for errors.
func (k kind) String() string {
	switch k {
	case kindHello:
		return "HELLO"
	case kindRefuse:
		return "REFUSE"
	case kindBegin:
		return "BEGIN"
	case kindChunk:
		return "CHUNK"
	case kindEnd:
		return "END"
	case kindReady:
		return "READY"
	case kindGo:
		return "GO"
	case kindRunning:
		return "RUNNING"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// maxPayload is the largest payload of each kind, and whether it is exact.
func payloadBounds(k kind) (max int, exact bool, ok bool) {
	switch k {
	case kindHello:
		return 4 + 2 + 2*MaxFormats + 2 + MaxBinaryVersion, false, true
	case kindRefuse:
		return MaxReason, false, true
	case kindBegin:
		return beginLen, true, true
	case kindChunk:
		return MaxChunk, false, true
	case kindEnd:
		return 4, true, true
	case kindReady, kindGo, kindRunning:
		return 0, true, true
	}
	return 0, false, false
}

// frame is one decoded message. Payload aliases the decoded buffer.
type frame struct {
	Kind    kind
	NFDs    int
	Payload []byte
}

// appendFrame appends the encoding of a frame to b.
func appendFrame(b []byte, k kind, nfds int, payload []byte) []byte {
	b = append(b, magic[:]...)
	b = append(b, wireVersion, byte(k))
	b = binary.BigEndian.AppendUint16(b, uint16(nfds))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// parseFrame decodes one message. It checks the header and the bounds of
// the payload of its kind, not the payload itself.
func parseFrame(msg []byte) (frame, error) {
	if len(msg) < headerLen {
		return frame{}, fmt.Errorf("%w: %d bytes, header is %d: %w", ErrMalformed, len(msg), headerLen, io.ErrUnexpectedEOF)
	}
	if [4]byte(msg[:4]) != magic {
		return frame{}, fmt.Errorf("%w: bad magic %q", ErrMalformed, msg[:4])
	}
	if v := msg[4]; v != wireVersion {
		return frame{}, fmt.Errorf("%w: wire version %d, this binary reads %d", ErrVersion, v, wireVersion)
	}
	k := kind(msg[5])
	nfds := int(binary.BigEndian.Uint16(msg[6:8]))
	n := binary.BigEndian.Uint32(msg[8:12])
	max, exact, ok := payloadBounds(k)
	if !ok {
		return frame{}, fmt.Errorf("%w: unknown %v", ErrMalformed, k)
	}
	if nfds > MaxFilesPerMessage {
		return frame{}, fmt.Errorf("%w: %d descriptors in one message, at most %d", ErrTooLarge, nfds, MaxFilesPerMessage)
	}
	if nfds > 0 && k != kindChunk {
		return frame{}, fmt.Errorf("%w: %v carries %d descriptors", ErrMalformed, k, nfds)
	}
	if uint64(n) > uint64(max) {
		return frame{}, fmt.Errorf("%w: %v payload of %d bytes, at most %d", ErrTooLarge, k, n, max)
	}
	if exact && int(n) != max {
		return frame{}, fmt.Errorf("%w: %v payload of %d bytes, want %d", ErrMalformed, k, n, max)
	}
	if rest := len(msg) - headerLen; rest != int(n) {
		if rest < int(n) {
			return frame{}, fmt.Errorf("%w: %v payload of %d bytes, header says %d: %w", ErrMalformed, k, rest, n, io.ErrUnexpectedEOF)
		}
		return frame{}, fmt.Errorf("%w: %d bytes after a %v payload of %d", ErrMalformed, rest-int(n), k, n)
	}
	return frame{Kind: k, NFDs: nfds, Payload: msg[headerLen:]}, nil
}

// appendHello appends the payload of HELLO: pid (4), number of formats (2),
// formats (2 each), length of the binary version (2), binary version.
func appendHello(b []byte, h Hello) ([]byte, error) {
	if h.PID <= 0 || int64(h.PID) > 1<<31-1 {
		return nil, fmt.Errorf("%w: pid %d", ErrMalformed, h.PID)
	}
	if err := checkFormats(h.Formats); err != nil {
		return nil, err
	}
	if err := checkText("binary version", h.BinaryVersion, MaxBinaryVersion); err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint32(b, uint32(h.PID))
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Formats)))
	for _, f := range h.Formats {
		b = binary.BigEndian.AppendUint16(b, f)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.BinaryVersion)))
	return append(b, h.BinaryVersion...), nil
}

// parseHello decodes the payload of HELLO.
func parseHello(p []byte) (Hello, error) {
	short := func(what string) error {
		return fmt.Errorf("%w: HELLO ends before its %s: %w", ErrMalformed, what, io.ErrUnexpectedEOF)
	}
	if len(p) < 6 {
		return Hello{}, short("format count")
	}
	pid := binary.BigEndian.Uint32(p[:4])
	if pid == 0 || pid > 1<<31-1 {
		return Hello{}, fmt.Errorf("%w: HELLO pid %d", ErrMalformed, pid)
	}
	nf := int(binary.BigEndian.Uint16(p[4:6]))
	if nf > MaxFormats {
		return Hello{}, fmt.Errorf("%w: HELLO lists %d formats, at most %d", ErrTooLarge, nf, MaxFormats)
	}
	p = p[6:]
	if len(p) < 2*nf+2 {
		return Hello{}, short("formats")
	}
	formats := make([]uint16, nf)
	for i := range formats {
		formats[i] = binary.BigEndian.Uint16(p[2*i:])
	}
	p = p[2*nf:]
	if err := checkFormats(formats); err != nil {
		return Hello{}, err
	}
	nv := int(binary.BigEndian.Uint16(p[:2]))
	p = p[2:]
	if nv > MaxBinaryVersion {
		return Hello{}, fmt.Errorf("%w: HELLO binary version of %d bytes, at most %d", ErrTooLarge, nv, MaxBinaryVersion)
	}
	if len(p) != nv {
		if len(p) < nv {
			return Hello{}, short("binary version")
		}
		return Hello{}, fmt.Errorf("%w: %d bytes after HELLO", ErrMalformed, len(p)-nv)
	}
	v := string(p)
	if err := checkText("binary version", v, MaxBinaryVersion); err != nil {
		return Hello{}, err
	}
	return Hello{PID: int(pid), BinaryVersion: v, Formats: formats}, nil
}

// checkFormats requires 1 to MaxFormats distinct nonzero formats.
func checkFormats(fs []uint16) error {
	if len(fs) == 0 {
		return fmt.Errorf("%w: HELLO lists no format", ErrMalformed)
	}
	if len(fs) > MaxFormats {
		return fmt.Errorf("%w: HELLO lists %d formats, at most %d", ErrTooLarge, len(fs), MaxFormats)
	}
	for i, f := range fs {
		if f == 0 {
			return fmt.Errorf("%w: format 0", ErrMalformed)
		}
		for _, g := range fs[:i] {
			if f == g {
				return fmt.Errorf("%w: format %d listed twice", ErrMalformed, f)
			}
		}
	}
	return nil
}

// checkText requires valid UTF-8 without control characters, at most max
// bytes: these strings end up in logs.
func checkText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s of %d bytes, at most %d", ErrTooLarge, what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrMalformed, what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s holds control character %U", ErrMalformed, what, r)
		}
	}
	return nil
}

// parseReason decodes the payload of REFUSE.
func parseReason(p []byte) (string, error) {
	s := string(p)
	if err := checkText("reason", s, MaxReason); err != nil {
		return "", err
	}
	return s, nil
}

// beginLen is the size of BEGIN's payload: format (2), reserved (2), file
// count (4), body length (8).
const beginLen = 16

// begin announces the state.
type begin struct {
	Format uint16
	Files  int
	Length int
}

// appendBegin appends the payload of BEGIN.
func appendBegin(b []byte, g begin) []byte {
	b = binary.BigEndian.AppendUint16(b, g.Format)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(g.Files))
	return binary.BigEndian.AppendUint64(b, uint64(g.Length))
}

// parseBegin decodes the payload of BEGIN.
func parseBegin(p []byte) (begin, error) {
	if len(p) != beginLen {
		return begin{}, fmt.Errorf("%w: BEGIN of %d bytes, want %d", ErrMalformed, len(p), beginLen)
	}
	g := begin{Format: binary.BigEndian.Uint16(p[:2])}
	if g.Format == 0 {
		return begin{}, fmt.Errorf("%w: BEGIN format 0", ErrMalformed)
	}
	if r := binary.BigEndian.Uint16(p[2:4]); r != 0 {
		return begin{}, fmt.Errorf("%w: BEGIN reserved bits %#x", ErrMalformed, r)
	}
	files := binary.BigEndian.Uint32(p[4:8])
	if files > MaxFiles {
		return begin{}, fmt.Errorf("%w: %d files, at most %d", ErrTooLarge, files, MaxFiles)
	}
	length := binary.BigEndian.Uint64(p[8:16])
	if length > MaxBody {
		return begin{}, fmt.Errorf("%w: body of %d bytes, at most %d", ErrTooLarge, length, MaxBody)
	}
	g.Files, g.Length = int(files), int(length)
	return g, nil
}

// castagnoli is the CRC-32C table for END.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendEnd appends the payload of END: the CRC-32C of the body.
func appendEnd(b []byte, body []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(body, castagnoli))
}
