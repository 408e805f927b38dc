// Package release builds the vipd binaries that go into the release
// artefacts (the Debian package, the container image) exactly as
// `make build` builds bin/vipd, and holds the version and date rules they
// share. The tools in tools/package and tools/image, and the integration
// tests that check their output, call it; nothing here is linked into vipd.
package release

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Arches are the architectures vipd is released for (Go and Debian spell
// them alike).
var Arches = []string{"amd64", "arm64"}

// LDFlags are the linker flags of `make build` (Makefile LDFLAGS): a
// stripped binary that reports version.
func LDFlags(version string) string {
	return "-s -w -X github.com/vipd/vipd/internal/daemon.Version=" + version
}

// Binary builds a static vipd for linux/goarch into dir and returns its
// path. ldflags "" means LDFlags(version).
func Binary(ctx context.Context, root, dir, goarch, version, ldflags string) (string, error) {
	if ldflags == "" {
		ldflags = LDFlags(version)
	}
	out := filepath.Join(dir, "vipd-linux-"+goarch)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/vipd")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("release: go build vipd for linux/%s: %v\n%s", goarch, err, b)
	}
	return out, nil
}

// Binaries builds vipd for each architecture into dir (once each) and
// returns their paths by architecture.
func Binaries(ctx context.Context, root, dir string, arches []string, version, ldflags string) (map[string]string, error) {
	bins := map[string]string{}
	for _, arch := range arches {
		if bins[arch] != "" {
			continue
		}
		p, err := Binary(ctx, root, dir, arch, version, ldflags)
		if err != nil {
			return nil, err
		}
		bins[arch] = p
	}
	return bins, nil
}

// ModuleRoot is the directory of the vipd module (where go.mod is).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("release: go list -m: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// GitVersion is `git describe --tags --always --dirty` in root, as the
// Makefile's VERSION, or "dev" outside a git checkout.
func GitVersion(root string) string {
	out, err := git(root, "describe", "--tags", "--always", "--dirty")
	if err != nil || out == "" {
		return "dev"
	}
	return out
}

// Revision is the commit the tree is at, or "".
func Revision(root string) string {
	out, _ := git(root, "rev-parse", "HEAD")
	return out
}

// SourceDate is the time stamped on everything in the artefacts, so that
// the same commit builds the same bytes: $SOURCE_DATE_EPOCH when set
// (reproducible-builds.org), else the commit time, else now.
func SourceDate(root string) time.Time {
	for _, s := range []string{os.Getenv("SOURCE_DATE_EPOCH"), must(git(root, "log", "-1", "--format=%ct"))} {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}

func must(s string, _ error) string { return s }

func git(root string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

var (
	tagged   = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.+~]*?)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	untagged = regexp.MustCompile(`^([0-9a-f]{4,40}|dev)(-dirty)?$`)
)

// DebVersion maps a git describe version to a Debian one (a native
// package: no revision, so no hyphen), ordered as the commits are:
//
//	v1.2.3               -> 1.2.3
//	v1.2.3-4-gabcdef0    -> 1.2.3+git4.gabcdef0
//	abcdef0 (no tag yet) -> 0~gitabcdef0   (sorts before any release)
//	dev (no git)         -> 0~dev
//	...-dirty            -> ...+dirty / .dirty
func DebVersion(v string) (string, error) {
	if m := tagged.FindStringSubmatch(v); m != nil && !untagged.MatchString(v) {
		out := m[1]
		if m[2] != "" {
			out += "+git" + m[2] + ".g" + m[3]
		}
		if m[4] != "" {
			if strings.Contains(out, "+") {
				out += ".dirty"
			} else {
				out += "+dirty"
			}
		}
		return out, nil
	}
	if m := untagged.FindStringSubmatch(v); m != nil {
		out := "0~git" + m[1]
		if m[1] == "dev" {
			out = "0~dev"
		}
		if m[2] != "" {
			out += ".dirty"
		}
		return out, nil
	}
	return "", fmt.Errorf("release: cannot make a Debian version of %q (want vX.Y.Z, vX.Y.Z-N-gHASH or a commit hash, optionally -dirty)", v)
}
