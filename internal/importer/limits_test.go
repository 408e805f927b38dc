package importer

import (
	"strings"
	"testing"
)

// dirFS answers every include pattern with two files in a new
// subdirectory, so that every level of includes names new files: only the
// limits end it.
type dirFS struct{ data []byte }

func (f dirFS) ReadFile(name string, limit int64) ([]byte, error) {
	if int64(len(f.data)) > limit {
		return nil, errTooLarge
	}
	return f.data, nil
}

func (f dirFS) Glob(pattern string) ([]string, error) {
	d := pattern[:strings.LastIndex(pattern, "/")]
	return []string{d + "/x/a.conf", d + "/y/b.conf"}, nil
}

// TestLimits: inputs built to exhaust the parser stop at its limits with an
// error naming the place.
func TestLimits(t *testing.T) {
	// Every file includes two new files, two ways: 2^n files unless the
	// depth and file limits stop it.
	bomb := []byte("include */*.conf\ninclude */*.conf\n" + strings.Repeat("vrrp_script s { script \"/x\" }\n", 100))
	_, errs := importErrs(t, Options{Keepalived: one("lb1", "/k/keepalived.conf"), fs: dirFS{bomb}})
	found := false
	for _, e := range errs {
		if strings.Contains(e.Msg, "deeper than") || strings.Contains(e.Msg, "more than 256 files") {
			found = true
		}
	}
	if !found {
		t.Errorf("no limit error:\n%s", joinErrs(errs))
	}

	// A file of nothing but words stops at the word limit.
	words := []byte(strings.Repeat("w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w w\n", 16000))
	_, errs = importErrs(t, Options{Keepalived: one("lb1", "/k.conf"), fs: mapFS{"/k.conf": words}})
	wantError(t, errs, "/k.conf:8193", "more than 262144 words")

	// Deep braces stop at the nesting limit without recursing further.
	deep := []byte(strings.Repeat("a {\n", 200000))
	_, errs = importErrs(t, Options{Keepalived: one("lb1", "/k.conf"), fs: mapFS{"/k.conf": deep}})
	wantError(t, errs, "/k.conf:16", "deeper than 16 levels")

	// A long word is clipped in messages.
	word := []byte(strings.Repeat("x", 500000) + "\n")
	res, _ := importErrs(t, Options{Keepalived: one("lb1", "/k.conf"), fs: mapFS{"/k.conf": word}})
	for _, n := range res.Notes {
		if len(n.Msg) > 400 {
			t.Errorf("a note of %d bytes", len(n.Msg))
		}
	}

	// A line of a million words in haproxy.cfg.
	long := []byte("global\n maxconn " + strings.Repeat("1 ", 500000) + "\n")
	_, errs = importErrs(t, Options{HAProxy: "/h.cfg", fs: mapFS{"/h.cfg": long}})
	wantError(t, errs, "/h.cfg:2", "more than 1024 words")
}
