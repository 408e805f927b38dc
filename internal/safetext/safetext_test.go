package safetext

import "testing"

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"readyz check failed":                 "readyz check failed",
		"\x1b[1;32mUP\x1b[0m":                 "[1;32mUP[0m",
		"a\tb\nc\r\nd":                        "a b c  d",
		"bell\a nul\x00 del\x7f":              "bell nul del",
		"c1 \u0085\u009b31m":                  "c1 31m",
		"bidi \u202eevil\u202c \u2066x\u2069": "bidi evil x",
		"bad \xff utf8":                       "bad \ufffd utf8",
		"ünïcödé ok, 漢字":                      "ünïcödé ok, 漢字",
		"":                                    "",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzClean(f *testing.F) {
	f.Add("\x1b[2J\x1b[1;1HUP")
	f.Fuzz(func(t *testing.T, s string) {
		c := Clean(s)
		if !isClean(c) && c != "" {
			for _, r := range c {
				if control(r) {
					t.Fatalf("Clean(%q) = %q keeps %U", s, c, r)
				}
			}
		}
		if Clean(c) != c {
			t.Fatalf("Clean is not idempotent on %q", s)
		}
	})
}
