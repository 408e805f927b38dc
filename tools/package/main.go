// Command package builds vipd's Debian packages, dist/vipd_<version>_<arch>.deb
// for amd64 and arm64 (`make package`). It needs Go and nothing else: the
// package is written by nfpm, used as a library (internal/release/deb).
//
//	go run ./tools/package [-version V] [-arch amd64,arm64] [-out dist] [-ldflags ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"

	"github.com/vipd/vipd/internal/release"
	"github.com/vipd/vipd/internal/release/deb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	root, err := release.ModuleRoot()
	if err != nil {
		return err
	}
	version := flag.String("version", release.GitVersion(root), "vipd version (git describe)")
	arches := flag.String("arch", strings.Join(release.Arches, ","), "architectures, comma-separated")
	out := flag.String("out", "dist", "output directory")
	ldflags := flag.String("ldflags", "", "go build -ldflags (default: make build's, with -version)")
	maintainer := flag.String("maintainer", deb.DefaultMaintainer, "the Maintainer field")
	flag.Parse()

	tmp, err := os.MkdirTemp("", "vipd-package-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The host's own build prints the man page and the completions.
	bins, err := release.Binaries(ctx, root, tmp, append(strings.Split(*arches, ","), runtime.GOARCH), *version, *ldflags)
	if err != nil {
		return err
	}
	date := release.SourceDate(root)
	for _, arch := range strings.Split(*arches, ",") {
		path, err := deb.Build(ctx, deb.Options{
			Root: root, Version: *version, Arch: arch, Binary: bins[arch], HostBinary: bins[runtime.GOARCH],
			Out: *out, Date: date, Maintainer: *maintainer,
		})
		if err != nil {
			return err
		}
		fmt.Println(path)
	}
	return nil
}
