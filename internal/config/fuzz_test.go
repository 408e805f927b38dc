package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParse checks that Parse never panics, that a failure is a join of
// *Error values whose lines lie inside the input, and that a success can be
// used: Warnings, SelectNode and Diff do not panic either. For input toml
// accepts, every plain key must get a line from the position scanner.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		lines := strings.Count(string(data), "\n") + 1
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a Config and an error: %v", err)
			}
			errs := []error{err}
			if u, ok := err.(interface{ Unwrap() []error }); ok {
				errs = u.Unwrap()
			}
			for _, e := range errs {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Fatalf("error %v (%T) is not a *Error", e, e)
				}
				if ce.Line < 0 || ce.Line > lines {
					t.Fatalf("error line %d outside the input's %d lines: %v", ce.Line, lines, ce)
				}
			}
		} else {
			_ = c.Warnings()
			_, _ = c.SelectNode("", "host", []netip.Addr{netip.MustParseAddr("10.0.0.1")})
			_ = c.Diff(c)
			_ = c.Diff(nil)
			if !c.Diff(c).Empty() {
				t.Fatalf("a Config differs from itself: %+v", c.Diff(c))
			}
		}
		checkPositions(t, data, lines)
	})
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// checkPositions asserts that the position scanner finds every key toml
// finds, when the keys are plain, and never reports a line outside the
// input.
func checkPositions(t *testing.T, data []byte, lines int) {
	t.Helper()
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return
	}
	pos, serr := scanPositions(string(data))
	if serr != nil {
		return // Parse refuses the file before toml sees it
	}
	plain := map[string]bool{}
	for p, l := range pos {
		if l < 1 || l > lines {
			t.Fatalf("position %q on line %d outside the input's %d lines", p, l, lines)
		}
		plain[stripIndices(p)] = true
	}
	for _, k := range md.Keys() {
		for _, part := range k {
			if !plainKey.MatchString(part) {
				return
			}
		}
		if !plain[strings.Join(k, ".")] {
			t.Fatalf("scanner has no line for key %q; it has %v", k, pos)
		}
	}
}

var indexRE = regexp.MustCompile(`\[[0-9]+\]`)

func stripIndices(p string) string { return indexRE.ReplaceAllString(p, "") }
