package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// messages splits fuzz input into messages, each prefixed with a 2-byte
// big-endian length.
func messages(data []byte) [][]byte {
	var msgs [][]byte
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		msgs = append(msgs, data[:n])
		data = data[n:]
	}
	return msgs
}

// joinMessages is the inverse of messages, for the seed corpus.
func joinMessages(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

// sentinel reports whether err is one of the package's decoding errors.
func sentinel(err error) bool {
	for _, s := range []error{ErrMalformed, ErrTooLarge, ErrProtocol, ErrVersion} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzDecode feeds messages to the frame decoder, the payload decoders and
// the state assembler: nothing may panic, every error is a sentinel, a
// decoded frame or HELLO encodes back to the same bytes (the encoding is
// canonical: nothing is ignored), and the assembler never holds more than
// BEGIN announced nor more than MaxBody.
func FuzzDecode(f *testing.F) {
	hello, _ := appendHello(nil, Hello{PID: 42, BinaryVersion: "v1.0.0", Formats: []uint16{1, 2}})
	var state [][]byte
	stateFrames(1, []byte("{\"vrrp\":[]}"), 3, func(k kind, nfds int, p []byte) error {
		state = append(state, appendFrame(nil, k, nfds, p))
		return nil
	})
	f.Add(joinMessages(appendFrame(nil, kindHello, 0, hello)))
	f.Add(joinMessages(appendFrame(nil, kindRefuse, 0, []byte("no common format"))))
	f.Add(joinMessages(state...))
	f.Add(joinMessages(appendFrame(nil, kindReady, 0, nil), appendFrame(nil, kindGo, 0, nil), appendFrame(nil, kindRunning, 0, nil)))
	f.Add(joinMessages(header(2, kindHello, 0, 0)))
	f.Add(joinMessages([]byte("garbage, not a frame")))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a assembler
		asmDone := false
		for _, msg := range messages(data) {
			fr, err := parseFrame(msg)
			if err != nil {
				if !sentinel(err) {
					t.Fatalf("parseFrame: error %v is no sentinel", err)
				}
				continue
			}
			if again := appendFrame(nil, fr.Kind, fr.NFDs, fr.Payload); !bytes.Equal(again, msg) {
				t.Fatalf("frame %q encodes back as %q", msg, again)
			}
			switch fr.Kind {
			case kindHello:
				h, err := parseHello(fr.Payload)
				if err != nil {
					if !sentinel(err) && !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("parseHello: error %v is no sentinel", err)
					}
					break
				}
				again, err := appendHello(nil, h)
				if err != nil || !bytes.Equal(again, fr.Payload) {
					t.Fatalf("HELLO %q encodes back as %q, %v", fr.Payload, again, err)
				}
			case kindRefuse:
				if _, err := parseReason(fr.Payload); err != nil && !sentinel(err) {
					t.Fatalf("parseReason: error %v is no sentinel", err)
				}
			}
			if asmDone {
				continue
			}
			done, err := a.add(fr)
			if err != nil {
				if !sentinel(err) {
					t.Fatalf("assembler: error %v is no sentinel", err)
				}
				asmDone = true
				continue
			}
			asmDone = done
			if len(a.body) > a.begin.Length || cap(a.body) > a.begin.Length || a.begin.Length > MaxBody {
				t.Fatalf("assembler holds %d bytes (capacity %d) of %d announced", len(a.body), cap(a.body), a.begin.Length)
			}
			if a.files > a.begin.Files || a.begin.Files > MaxFiles {
				t.Fatalf("assembler counted %d files of %d announced", a.files, a.begin.Files)
			}
		}
	})
}
