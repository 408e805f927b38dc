//go:build linux

package lab

import (
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Helpers for the benchmark programs' markdown reports.

// ReplaceSection returns text with the section that starts at the line
// heading ("## Failover") and runs to the next "## " line replaced by
// section; ok is false, and text returned unchanged, when there is no such
// section.
func ReplaceSection(text, heading, section string) (out string, ok bool) {
	lines := strings.SplitAfter(text, "\n")
	start, end := -1, len(lines)
	for i, ln := range lines {
		if start < 0 && strings.TrimSpace(ln) == heading {
			start = i
			continue
		}
		if start >= 0 && strings.HasPrefix(ln, "## ") {
			end = i
			break
		}
	}
	if start < 0 {
		return text, false
	}
	return strings.Join(lines[:start], "") + section + strings.Join(lines[end:], ""), true
}

// Median is the median of ds (the mean of the middle two for an even
// count), 0 for none.
func Median(ds []time.Duration) time.Duration {
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

// Versions names what a benchmark ran on: the kernel release and the first
// line of keepalived's and HAProxy's version output.
func Versions() (kernel, keepalived, haproxy string) {
	first := func(b []byte) string { return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]) }
	k, _ := exec.Command("uname", "-r").Output()
	kav, _ := exec.Command(KeepalivedBin, "--version").CombinedOutput()
	hav, _ := exec.Command(HAProxyBin, "-v").Output()
	return first(k), first(kav), first(hav)
}
