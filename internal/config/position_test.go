package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScanPositions(t *testing.T) {
	const src = `# comment [not.a.table]
top = "a # not a comment"
[vrrp]   # trailing
vrid = 51
vips = [
  "10.0.0.1",   # first
  # a comment line inside the array
  "10.0.0.2",
]
"quoted.key" = 1
text = """
[fake]
key = "inside a multi-line string"
"""
lit = '''
[fake2]'''
after = 1

[[node]]
name = "a"
[[node]]
name = "b"
sub.dotted = { x = 1, y = [1, 2] }

[[backend]]
name = "k"
servers = [
  { name = "cp1", address = "10.0.0.11:6443" },
  "10.0.0.12:6443",
]
check = {
  type = "tcp",
}
[[backend.servers]]
name = "nested"
[backend.check]
type = "tls"
[[backend]]
name = "t"
`
	got, serr := scanPositions(src)
	if serr != nil {
		t.Fatalf("scan: line %d: %s", serr.line, serr.msg)
	}
	want := positions{
		"top":                           2,
		"vrrp":                          3,
		"vrrp.vrid":                     4,
		"vrrp.vips":                     5,
		"vrrp.vips[0]":                  6,
		"vrrp.vips[1]":                  8,
		"vrrp.quoted.key":               10,
		"vrrp.text":                     11,
		"vrrp.lit":                      15,
		"vrrp.after":                    17,
		"node":                          19,
		"node[0]":                       19,
		"node[0].name":                  20,
		"node[1]":                       21,
		"node[1].name":                  22,
		"node[1].sub":                   23,
		"node[1].sub.dotted":            23,
		"node[1].sub.dotted.x":          23,
		"node[1].sub.dotted.y[1]":       23,
		"backend":                       25,
		"backend[0]":                    25,
		"backend[0].name":               26,
		"backend[0].servers":            27,
		"backend[0].servers[0]":         28,
		"backend[0].servers[0].address": 28,
		"backend[0].servers[1]":         29,
		"backend[0].check":              31,
		"backend[0].check.type":         32,
		"backend[1]":                    38,
		"backend[1].name":               39,
	}
	for _, absent := range []string{"fake", "fake2", "vrrp.key", "fake.key"} {
		if l, ok := got[absent]; ok {
			t.Errorf("scanner found %q on line %d inside a string", absent, l)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			delete(got, k) // only the keys we name are checked
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}

	// Lookups fall back to the nearest ancestor.
	for path, line := range map[string]int{
		"node[1].priority":      21,
		"backend[0].check.port": 31,
		"nothing":               0,
	} {
		if got := got.line(path); got != line {
			t.Errorf("line(%q) = %d, want %d", path, got, line)
		}
	}
}
