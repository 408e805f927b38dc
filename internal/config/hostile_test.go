package config

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostile files: each is refused (or, valid TOML with unknown keys, fails
// as such) in a fresh process whose time and peak memory the test reads.
// Before the limits, the 40 KB "deep arrays" file allocated 620 MiB and a
// 400 KB one ran past 60 s at 16.7 GB (issue 9, defect 5).
func hostileFiles() []struct{ name, src, want string } {
	var tables, nodes, ints, under strings.Builder
	for i := 0; tables.Len() < MaxFileSize-32; i++ {
		fmt.Fprintf(&tables, "[t%d]\n", i)
	}
	for nodes.Len() < MaxFileSize-32 {
		nodes.WriteString("[[node]]\n")
	}
	ints.WriteString("a = [")
	for ints.Len() < MaxFileSize-32 {
		ints.WriteString("1,")
	}
	ints.WriteString("1]\n")
	// The worst file within every limit: as many entries as allowed, each
	// with a path close to the longest, nested deep.
	key := strings.Repeat("k", 40)
	for i := 0; i < maxEntries/9-1; i++ { // 9 entries each
		fmt.Fprintf(&under, "[%s%d.%s.%s]\n%s.a.b = [[[1]]]\n", key, i, key, key, key)
	}
	long := strings.Repeat("k", 120)
	return []struct{ name, src, want string }{
		{"deep arrays", "a = " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000), ":1: nested more than 16 levels deep"},
		{"deep arrays, 400 KB", "a = " + strings.Repeat("[", 200000) + strings.Repeat("]", 200000), ":1: nested more than 16 levels deep"},
		{"deep inline tables", "a = " + strings.Repeat("{b=", 20000) + "1" + strings.Repeat("}", 20000), ":1: nested more than 16 levels deep"},
		{"dotted key", strings.Repeat("a.", 200000) + "a = 1", ":1: a dotted key of more than 16 parts"},
		{"dotted header", "[" + strings.Repeat("a.", 200000) + "a]\nx = 1", ":1: a dotted key of more than 16 parts"},
		{"long header, many keys", "[" + strings.Repeat(long+".", 15) + long + "]\n" + strings.Repeat("x = 1\n", 1000), ":1: a key path longer than 256 bytes"},
		{"unclosed", "[vrrp]\nvrid = 51\nvips = " + strings.Repeat("[", 40), ":3: nested more than 16 levels deep"},
		{"2 MiB", "# " + strings.Repeat("x", 2<<20) + "\n", "larger than 1048576 bytes (1 MiB)"},
		{"1 MiB of tables", tables.String(), "more than 20000 keys, tables and list elements"},
		{"1 MiB of [[node]]", nodes.String(), "more than 20000 keys, tables and list elements"},
		{"1 MiB array", ints.String(), "more than 20000 keys, tables and list elements"},
		{"just within the limits", under.String(), `unknown key "kkkk`},
	}
}

func TestHostileConfigs(t *testing.T) {
	if path := os.Getenv("VIPD_CONFIG_HOSTILE"); path != "" {
		start := time.Now()
		_, err := Load(path)
		fmt.Printf("took %d\nerror: %v\n", time.Since(start).Microseconds(), err)
		os.Exit(0)
	}
	maxTime, maxRSS := time.Second, int64(50<<10) // KiB
	if raceEnabled {
		maxTime, maxRSS = 10*time.Second, 400<<10
	}
	dir := t.TempDir()
	// The helper is this whole test binary: its peak RSS with an empty
	// file is what the program costs before any config; what a hostile
	// file may add is measured above that.
	run := func(path string) ([]byte, int64, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHostileConfigs$")
		cmd.Env = append(os.Environ(), "VIPD_CONFIG_HOSTILE="+path)
		out, err := cmd.Output()
		if err != nil {
			return out, 0, err
		}
		return out, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, nil
	}
	empty := filepath.Join(dir, "empty.toml")
	os.WriteFile(empty, nil, 0o644)
	_, base, err := run(empty)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range hostileFiles() {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("hostile%d.toml", i))
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			out, peak, err := run(path)
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			var us int64
			var msg string
			fmt.Sscanf(string(out), "took %d\n", &us)
			_, msg, _ = strings.Cut(string(out), "error: ")
			took := time.Duration(us) * time.Microsecond
			rss := peak - base
			t.Logf("%d bytes: refused in %s, peak RSS %d KiB (%d KiB above an empty file): %.120s", len(tc.src), took, peak, rss, strings.TrimSpace(msg))
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, path) {
				t.Errorf("error %q, want it to name the file and say %q", strings.TrimSpace(msg), tc.want)
			}
			if took > maxTime {
				t.Errorf("took %s to refuse, want under %s", took, maxTime)
			}
			if rss > maxRSS {
				t.Errorf("peak RSS %d KiB above an empty file's, want under %d KiB", rss, maxRSS)
			}
		})
	}
}
