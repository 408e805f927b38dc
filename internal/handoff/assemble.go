package handoff

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// assembler puts the state back together from BEGIN, CHUNKs and END. It
// counts descriptors; the receiver keeps the files themselves in step. It
// never holds more than the body length BEGIN announced (at most MaxBody),
// and grows the body only as bytes arrive.
type assembler struct {
	started bool
	begin   begin
	body    []byte
	files   int
}

// add takes the next frame. It returns true once END arrived and matched.
func (a *assembler) add(f frame) (bool, error) {
	if !a.started {
		if f.Kind != kindBegin {
			return false, fmt.Errorf("%w: %v before BEGIN", ErrProtocol, f.Kind)
		}
		g, err := parseBegin(f.Payload)
		if err != nil {
			return false, err
		}
		a.started, a.begin = true, g
		return false, nil
	}
	switch f.Kind {
	case kindChunk:
		return false, a.chunk(f)
	case kindEnd:
		return true, a.end(f.Payload)
	}
	return false, fmt.Errorf("%w: %v inside the state", ErrProtocol, f.Kind)
}

// chunk appends a CHUNK's bytes and counts its descriptors.
func (a *assembler) chunk(f frame) error {
	if len(f.Payload) == 0 && f.NFDs == 0 {
		return fmt.Errorf("%w: empty CHUNK", ErrMalformed)
	}
	if a.files+f.NFDs > a.begin.Files {
		return fmt.Errorf("%w: more than the %d files BEGIN announced", ErrTooLarge, a.begin.Files)
	}
	need := len(a.body) + len(f.Payload)
	if need > a.begin.Length {
		return fmt.Errorf("%w: more than the %d bytes BEGIN announced", ErrTooLarge, a.begin.Length)
	}
	if need > cap(a.body) {
		c := min(max(need, 2*cap(a.body)), a.begin.Length)
		b := make([]byte, len(a.body), c)
		copy(b, a.body)
		a.body = b
	}
	a.body = append(a.body, f.Payload...)
	a.files += f.NFDs
	return nil
}

// end checks END against what arrived.
func (a *assembler) end(p []byte) error {
	if len(a.body) != a.begin.Length || a.files != a.begin.Files {
		return fmt.Errorf("%w: END after %d of %d bytes and %d of %d files", ErrProtocol,
			len(a.body), a.begin.Length, a.files, a.begin.Files)
	}
	if len(p) != 4 {
		return fmt.Errorf("%w: END of %d bytes, want 4", ErrMalformed, len(p))
	}
	if got, want := crc32.Checksum(a.body, castagnoli), binary.BigEndian.Uint32(p); got != want {
		return fmt.Errorf("%w: body CRC-32C %#08x, END says %#08x", ErrMalformed, got, want)
	}
	return nil
}

// stateFrames calls send for each frame of a state (BEGIN, CHUNKs, END)
// with its kind, the number of descriptors that go with it and its
// payload: chunks of at most MaxChunk bytes and MaxFilesPerMessage
// descriptors, the payload aliasing body. It stops at the first error.
func stateFrames(format uint16, body []byte, nfiles int, send func(k kind, nfds int, payload []byte) error) error {
	if err := send(kindBegin, 0, appendBegin(nil, begin{Format: format, Files: nfiles, Length: len(body)})); err != nil {
		return err
	}
	for rest, files := body, nfiles; len(rest) > 0 || files > 0; {
		n := min(len(rest), MaxChunk)
		f := min(files, MaxFilesPerMessage)
		if err := send(kindChunk, f, rest[:n]); err != nil {
			return err
		}
		rest, files = rest[n:], files-f
	}
	return send(kindEnd, 0, appendEnd(nil, body))
}
