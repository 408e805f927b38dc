package integration

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/release"
)

// releaseBuild is the release build the package and image tests share:
// vipd for every release architecture, built as `make package` and
// `make image` build it, once per test binary.
var releaseBuild struct {
	once    sync.Once
	root    string
	version string
	bins    map[string]string
	err     error
}

// releaseBinaries returns the module root, the version and the binaries
// by architecture.
func releaseBinaries(t *testing.T) (root, version string, bins map[string]string) {
	t.Helper()
	r := &releaseBuild
	r.once.Do(func() {
		if r.root, r.err = release.ModuleRoot(); r.err != nil {
			return
		}
		r.version = release.GitVersion(r.root)
		dir := filepath.Join(filepath.Dir(lab.Bin), "release")
		if r.err = os.MkdirAll(dir, 0o755); r.err != nil {
			return
		}
		r.bins, r.err = release.Binaries(context.Background(), r.root, dir, release.Arches, r.version, "")
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.root, r.version, r.bins
}
