// Command image builds vipd's container image without a container daemon
// (`make image`): a static vipd on an empty base, for amd64 and arm64,
// under one OCI index, written to dist/vipd-<version>-oci.tar (an OCI
// image layout in a tar archive; see internal/release/ociimage). Nothing is
// pushed anywhere.
//
//	go run ./tools/image [-version V] [-arch amd64,arm64] [-out dist] [-ldflags ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/vipd/vipd/internal/release"
	"github.com/vipd/vipd/internal/release/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	root, err := release.ModuleRoot()
	if err != nil {
		return err
	}
	version := flag.String("version", release.GitVersion(root), "vipd version (git describe); the image tag")
	arches := flag.String("arch", strings.Join(release.Arches, ","), "architectures, comma-separated")
	out := flag.String("out", "dist", "output directory")
	ldflags := flag.String("ldflags", "", "go build -ldflags (default: make build's, with -version)")
	flag.Parse()

	tmp, err := os.MkdirTemp("", "vipd-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bins, err := release.Binaries(ctx, root, tmp, strings.Split(*arches, ","), *version, *ldflags)
	if err != nil {
		return err
	}
	path, err := ociimage.Build(ociimage.Options{Version: *version, Revision: release.Revision(root), Created: release.SourceDate(root), Binaries: bins, Out: *out})
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
