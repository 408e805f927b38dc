//go:build linux

package lab

import (
	"os"
	"slices"
	"strings"
)

// WriteSection replaces the section of the markdown file path that starts
// with the line heading ("## Failover") and runs up to the next "## "
// heading, creating the file when needed. A new section goes before
// "## Proxy" when that heading is there, else at the end; a "## Proxy"
// heading is kept for the proxy benchmark. The benchmarks write their
// sections of docs/benchmarks.md with it.
func WriteSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n\n"
	}
	section = strings.TrimRight(section, "\n") + "\n\n"
	out, ok := ReplaceSection(text, heading, section)
	if !ok {
		lines := strings.SplitAfter(text, "\n")
		idx := slices.IndexFunc(lines, func(s string) bool { return strings.TrimSpace(s) == "## Proxy" })
		if idx < 0 {
			out = strings.TrimRight(text, "\n") + "\n\n" + section
		} else {
			out = strings.Join(lines[:idx], "") + section + strings.Join(lines[idx:], "")
		}
	}
	if !strings.Contains(out, "\n## Proxy") {
		out = strings.TrimRight(out, "\n") + "\n\n## Proxy\n\n(see integration/benchproxy)\n"
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
