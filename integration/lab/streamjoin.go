//go:build linux

package lab

import (
	"fmt"
	"strings"
)

// StreamTotals are the joined figures of every stream: what each side
// sent against what the other verified, and how each connection ended.
type StreamTotals struct {
	Streams int `json:"streams"`
	// Cut counts connections that did not end in order: a read or write
	// error on either side, an EOF its sender never sent, or no end
	// within the drain (Hung). Reset counts those with a reset (ECONNRESET
	// or EPIPE) among them.
	Cut   int `json:"cut"`
	Reset int `json:"reset"`
	Hung  int `json:"hung"`
	// LostBytes were written by one side and never verified by the other;
	// DupBytes were received twice; Corrupt streams stopped matching
	// their sequence.
	LostBytes uint64 `json:"lost_bytes"`
	DupBytes  uint64 `json:"dup_bytes"`
	Corrupt   int    `json:"corrupt"`
	// SentC2S and SentS2C are the bytes written each way.
	SentC2S uint64 `json:"sent_c2s"`
	SentS2C uint64 `json:"sent_s2c"`
	// HalfClosed counts the streams with one direction shut mid-run that
	// ended in order.
	HalfClosed int `json:"half_closed"`
	// Why holds the first reasons for a cut, one per connection.
	Why []string `json:"why,omitempty"`
}

// JoinStreams matches the client's and the server's views by id.
func JoinStreams(cli, srv []StreamSide) StreamTotals {
	byID := map[uint32]StreamSide{}
	for _, s := range srv {
		byID[s.ID] = s
	}
	var t StreamTotals
	for _, c := range cli {
		t.Streams++
		s, ok := byID[c.ID]
		t.SentC2S += c.Sent
		t.SentS2C += s.Sent
		t.LostBytes += missing(c.Sent, s.Verified, s.Dup) + missing(s.Sent, c.Verified, c.Dup)
		t.DupBytes += c.Dup + s.Dup
		if c.Corrupt || s.Corrupt {
			t.Corrupt++
		}
		why := cutReason(c, s, ok)
		if why == "" {
			if c.Mode != ModeBoth {
				t.HalfClosed++
			}
			continue
		}
		t.Cut++
		if isReset(c) || isReset(s) {
			t.Reset++
		}
		if strings.Contains(c.ReadErr, "timeout") || strings.Contains(s.ReadErr, "timeout") {
			t.Hung++
		}
		if len(t.Why) < 5 {
			t.Why = append(t.Why, fmt.Sprintf("stream %d (mode %d): %s", c.ID, c.Mode, why))
		}
	}
	return t
}

// missing is how many of sent bytes the receiver did not verify.
func missing(sent, verified, dup uint64) uint64 {
	if got := verified - min(dup, verified); got < sent {
		return sent - got
	}
	return 0
}

// cutReason says why a connection did not end in order, "" when it did.
func cutReason(c, s StreamSide, haveServer bool) string {
	switch {
	case !haveServer:
		return "the server never saw it"
	case c.ReadErr != "":
		return "client read: " + c.ReadErr
	case c.WriteErr != "":
		return "client write: " + c.WriteErr
	case s.ReadErr != "":
		return "server read: " + s.ReadErr
	case s.WriteErr != "":
		return "server write: " + s.WriteErr
	case !c.EOF:
		return "the client's read side did not end"
	case !s.EOF:
		return "the server's read side did not end"
	case !c.Closed:
		return "the server read an EOF the client did not send"
	case !s.Closed:
		return "the client read an EOF the server did not send"
	case c.Corrupt || s.Corrupt:
		return "corrupt stream"
	}
	return ""
}

func isReset(s StreamSide) bool {
	for _, e := range []string{s.ReadErr, s.WriteErr} {
		if strings.Contains(e, "reset by peer") || strings.Contains(e, "broken pipe") {
			return true
		}
	}
	return false
}
