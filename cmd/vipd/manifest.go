package main

import (
	"fmt"
	"io"
	"os"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/daemon"
	"github.com/vipd/vipd/internal/manifest"
)

// cmdManifest prints the static pod or the Talos patch for a config
// (DESIGN.md section 6): YAML on stdout, what the operator must still do
// on the nodes on stderr.
func cmdManifest(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("manifest", stderr)
	cfgPath := fs.String("c", "/etc/vipd/vipd.toml", "config file")
	image := fs.String("image", "", "container image (default "+manifest.ImageRepo+":VERSION, the name the image archive carries)")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || (pos[0] != "static-pod" && pos[0] != "talos") {
		fmt.Fprintln(stderr, "usage: vipd manifest static-pod|talos -c FILE [--image REF]")
		return 2
	}
	raw, err := os.ReadFile(*cfgPath)
	if err != nil {
		return fail(stderr, fmt.Errorf("vipd: %w", err))
	}
	cfg, err := config.Parse(*cfgPath, raw)
	if err != nil {
		return fail(stderr, err)
	}
	o := manifest.Options{Image: *image, Version: daemon.Version}
	var out []byte
	var warnings []string
	if pos[0] == "static-pod" {
		out, warnings, err = manifest.StaticPod(cfg, o)
	} else {
		out, warnings, err = manifest.Talos(cfg, raw, o)
	}
	if err != nil {
		return fail(stderr, err)
	}
	stdout.Write(out)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	return 0
}
