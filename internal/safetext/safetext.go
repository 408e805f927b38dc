// Package safetext cleans text that comes from the network before vipd
// stores or shows it: the last line of a backend's health check answer,
// an x509 error naming a certificate's subject, a peer's name in its
// status beacon. Shown in issue 9: escape sequences in such text made a
// DOWN server show as UP in `vipd status` on the operator's terminal.
//
// Clean drops C0 and C1 control characters (U+0000-U+001F, U+007F,
// U+0080-U+009F) and the Unicode bidirectional controls (U+061C, U+200E,
// U+200F, U+202A-U+202E, U+2066-U+2069) that reorder what a terminal
// shows, turns tabs and line breaks into spaces, and replaces invalid
// UTF-8 with U+FFFD. It does not escape for HTML or shells: the page's
// templates and the CLI's quoting do their own part.
package safetext

import (
	"strings"
	"unicode/utf8"
)

// Clean returns s without control characters (see the package doc).
func Clean(s string) string {
	if isClean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			b.WriteByte(' ')
		case control(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isClean(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || control(r) {
			return false
		}
	}
	return true
}

func control(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
