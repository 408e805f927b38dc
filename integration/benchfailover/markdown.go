package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%s ms", commas(int(d.Round(time.Millisecond)/time.Millisecond)))
}

func commas(n int) string {
	s := fmt.Sprint(n)
	if n >= 1000 {
		return s[:len(s)-3] + "," + s[len(s)-3:]
	}
	return s
}

// writeSection replaces the "## Failover" section of path (up to the next
// "## " heading), creating the file when needed, and keeps a "## Proxy"
// heading for the proxy benchmark.
func writeSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n\n"
	}
	lines := strings.SplitAfter(text, "\n")
	start, end := -1, len(lines)
	for i, ln := range lines {
		if start < 0 && strings.TrimSpace(ln) == "## Failover" {
			start = i
			continue
		}
		if start >= 0 && strings.HasPrefix(ln, "## ") {
			end = i
			break
		}
	}
	section = strings.TrimRight(section, "\n") + "\n\n"
	var out string
	if start < 0 {
		// Before "## Proxy" if present, else at the end.
		idx := slices.IndexFunc(lines, func(s string) bool { return strings.TrimSpace(s) == "## Proxy" })
		if idx < 0 {
			out = strings.TrimRight(text, "\n") + "\n\n" + section
		} else {
			out = strings.Join(lines[:idx], "") + section + strings.Join(lines[idx:], "")
		}
	} else {
		out = strings.Join(lines[:start], "") + section + strings.Join(lines[end:], "")
	}
	if !strings.Contains(out, "\n## Proxy") {
		out = strings.TrimRight(out, "\n") + "\n\n## Proxy\n\n(see integration/benchproxy)\n"
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
