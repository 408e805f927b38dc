package release

import (
	"os/exec"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-4-gabcdef0", "1.2.3+git4.gabcdef0"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-4-gabcdef0-dirty", "1.2.3+git4.gabcdef0.dirty"},
		{"v2.0.0-rc.1", ""}, // a hyphen Debian cannot carry in a native version
		{"0824e20", "0~git0824e20"},
		{"abcdef0", "0~gitabcdef0"},
		{"0824e20-dirty", "0~git0824e20.dirty"},
		{"dev", "0~dev"},
		{"", ""},
		{"v1.2.3;rm -rf /", ""},
	} {
		got, err := DebVersion(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("DebVersion(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("DebVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestDebVersionOrder: versions sort the way the commits follow each
// other, by dpkg's own comparison.
func TestDebVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("SKIP: no dpkg to compare versions")
	}
	order := []string{"0824e20", "v0.1.0", "v0.1.0-3-g1234567", "v0.1.0-3-g1234567-dirty", "v0.1.1", "v1.0.0"}
	for i := 1; i < len(order); i++ {
		a, _ := DebVersion(order[i-1])
		b, _ := DebVersion(order[i])
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg says %s (%s) is not before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}
