package manifest

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// roundTrip renders v with toYAML and reads it back with both YAML
// libraries the consumers use: sigs.k8s.io/yaml (the kubelet, YAML 1.1
// rules) and yaml.v3 (Talos). Both must give back exactly v's JSON.
func roundTrip(t *testing.T, v any) {
	t.Helper()
	out, err := toYAML(v)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(v)
	var want any
	json.Unmarshal(wantJSON, &want)

	gotJSON, err := yaml.YAMLToJSON(out)
	if err != nil {
		t.Fatalf("sigs.k8s.io/yaml cannot read:\n%s\nerror: %v", out, err)
	}
	var got any
	json.Unmarshal(gotJSON, &got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("sigs.k8s.io/yaml reads back something else (-want +got):\n%s\nYAML:\n%s", diff, out)
	}

	var got3 any
	if err := yaml3.Unmarshal(out, &got3); err != nil {
		t.Fatalf("yaml.v3 cannot read:\n%s\nerror: %v", out, err)
	}
	got3JSON, err := json.Marshal(got3)
	if err != nil {
		t.Fatal(err)
	}
	var got3v any
	json.Unmarshal(got3JSON, &got3v)
	if diff := cmp.Diff(want, got3v); diff != "" {
		t.Fatalf("yaml.v3 reads back something else (-want +got):\n%s\nYAML:\n%s", diff, out)
	}
}

// Strings that YAML reads as something else when written plainly, and
// multi-line strings in every chomping form.
var trickyStrings = []string{
	"", " ", "yes", "No", "on", "OFF", "y", "n", "true", "null", "~", "-", "- a", "-c", "1", "0o644", "0644", "1e3", ".5", ".inf",
	"a: b", "a:b", "a:", "#x", "a #b", "a#b", "@x", "`x", "!x", "&x", "*x", "|", ">", "%x", "{a}", "[a]", "'q'", `"q"`,
	"trailing ", " leading", "tab\there", "a\\b", "ünïcödé", "\u2028", "bell\a",
	"line1\nline2", "line1\nline2\n", "line1\nline2\n\n", "line1\nline2\n\n\n", "\nstarts empty", " indented\nsecond",
	"a\n\nb\n", "a\n  indented\n\tTab\n", "a\n   \nb", "# toml\n[vrrp]\nvrid = 51\n", "x\r\ny",
	// Fuzz finds: DEL, which YAML refuses unescaped even in quotes; a
	// key past YAML's 1024-character limit for implicit keys.
	"\x7f", "!" + strings.Repeat("P", 1100),
}

func TestYAMLStrings(t *testing.T) {
	for _, s := range trickyStrings {
		roundTrip(t, map[string]any{"k": s, "list": []string{s, s}})
		roundTrip(t, map[string]any{s: "key"})
	}
}

func TestYAMLShapes(t *testing.T) {
	for _, v := range []any{
		map[string]any{},
		map[string]any{"empty": map[string]any{}, "none": []any{}, "null": nil},
		map[string]any{"a": []any{[]any{1, 2}, []any{}, map[string]any{}, map[string]any{"b": []any{map[string]any{"c": "d\ne\n"}}}}},
		map[string]any{"n": 1.5, "i": -3, "big": 1 << 60, "t": true, "f": false},
		[]any{"top", "level", map[string]any{"x": "y"}},
	} {
		roundTrip(t, v)
	}
}

// TestYAMLRandom round-trips random documents built from the tricky
// strings (seeded: the same documents every run).
func TestYAMLRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := r.IntN(6); {
		case depth > 3 || k == 0:
			return trickyStrings[r.IntN(len(trickyStrings))]
		case k == 1:
			return r.IntN(1000) - 500
		case k == 2:
			return r.IntN(2) == 1
		case k <= 4:
			m := map[string]any{}
			for i := r.IntN(4); i >= 0; i-- {
				m[trickyStrings[r.IntN(len(trickyStrings))]] = gen(depth + 1)
			}
			return m
		default:
			var l []any
			for i := r.IntN(4); i >= 0; i-- {
				l = append(l, gen(depth+1))
			}
			return l
		}
	}
	for i := 0; i < 500; i++ {
		roundTrip(t, map[string]any{"doc": gen(0)})
	}
}

func FuzzYAMLString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !strings.ContainsRune(s, '\uFFFD') && strings.ToValidUTF8(s, "") == s {
			roundTrip(t, map[string]any{"k": s, s: []string{s}})
		}
	})
}
