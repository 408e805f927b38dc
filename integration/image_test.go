package integration

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/manifest"
	"github.com/vipd/vipd/internal/release"
	"github.com/vipd/vipd/internal/release/ociimage"
)

// TestImageHAPair builds the image as `make image` does, validates the
// archive with go-containerregistry and with Debian's skopeo, takes the
// vipd binary for this machine out of the image's layer (with its file
// capabilities), and runs the HA-pair scenario of TestMasterTerminated
// with it, both nodes as the image's non-root user with nothing but the
// binary's file capabilities inside a bounding set of the three the pod
// adds: election, then a SIGTERM handover that costs a client connecting
// every 10 ms no failed connection.
func TestImageHAPair(t *testing.T) {
	lab.RequireRoot(t)
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("SKIP: needs setpriv (util-linux)")
	}
	root, version, bins := releaseBinaries(t)
	o := ociimage.Options{Version: version, Revision: release.Revision(root), Created: release.SourceDate(root), Binaries: bins, Out: t.TempDir()}
	archive, err := ociimage.Build(o)
	if err != nil {
		t.Fatal(err)
	}
	idx := openArchive(t, archive)
	if err := validate.Index(idx); err != nil {
		t.Fatalf("go-containerregistry validate.Index: %v", err)
	}
	skopeoInspect(t, archive, version)

	img := imageFor(t, idx, runtime.GOARCH)
	bin := filepath.Join(t.TempDir(), "vipd")
	extractBinary(t, img, bin)
	if a, b := fileBytes(t, bin), fileBytes(t, bins[runtime.GOARCH]); !bytes.Equal(a, b) {
		t.Fatal("the binary in the image is not the one built")
	}
	os.Chmod(filepath.Dir(bin), 0o755)

	masterTerminated(t, lab.PairOptions{Bin: bin, User: manifest.UID}, func(p *pairLab) {
		for _, n := range []*lab.Node{p.n1, p.n2} {
			st := procStatus(t, n.Pid())
			// Non-root, and exactly the three capabilities, from the
			// file capabilities alone.
			if uid := strings.Fields(st["Uid"]); len(uid) == 0 || uid[0] != strconv.Itoa(manifest.UID) {
				t.Errorf("%s runs as uid %v, want %d", n.Name, uid, manifest.UID)
			}
			if st["CapEff"] != "0000000000003400" || st["CapInh"] != "0000000000000000" || st["CapAmb"] != "0000000000000000" {
				t.Errorf("%s capabilities: effective %s inheritable %s ambient %s; want 3400 (NET_BIND_SERVICE, NET_ADMIN, NET_RAW) from file caps only",
					n.Name, st["CapEff"], st["CapInh"], st["CapAmb"])
			}
			t.Logf("%s (%s) from the image: uid %d, CapEff %s, VmRSS %s", n.Name, n.State(), manifest.UID, st["CapEff"], st["VmRSS"])
		}
	})
}

// openArchive unpacks an oci-archive and returns the image index its
// index.json points to.
func openArchive(t *testing.T, archive string) v1.ImageIndex {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xf", archive, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf %s: %v %s", archive, err, out)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("index.json: %v, %+v", err, m)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// skopeoInspect reads the archive with Debian's skopeo: an index with
// amd64 and arm64, each image with the version and source labels.
func skopeoInspect(t *testing.T, archive, version string) {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Error("skopeo not installed (.ci/deps installs it)")
		return
	}
	ref := "oci-archive:" + archive + ":" + ociimage.Tag(version)
	raw, err := exec.Command("skopeo", "inspect", "--raw", ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw %s: %v", ref, err)
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	var arches []string
	for _, d := range index.Manifests {
		arches = append(arches, d.Platform.Architecture)
	}
	sort.Strings(arches)
	if fmt.Sprint(arches) != "[amd64 arm64]" || index.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("skopeo sees %s with %v, want an OCI index of amd64 and arm64", index.MediaType, arches)
	}
	for _, arch := range release.Arches {
		out, err := exec.Command("skopeo", "inspect", "--override-os", "linux", "--override-arch", arch, ref).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s (%s): %v\n%s", ref, arch, err, out)
		}
		var info struct {
			Architecture, Os string
			Labels           map[string]string
		}
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatal(err)
		}
		if info.Architecture != arch || info.Os != "linux" ||
			info.Labels["org.opencontainers.image.version"] != version ||
			info.Labels["org.opencontainers.image.source"] != "https://github.com/vipd/vipd" {
			t.Errorf("skopeo inspect (%s): %+v", arch, info)
		}
	}
}

func imageFor(t *testing.T, idx v1.ImageIndex, arch string) v1.Image {
	t.Helper()
	m, _ := idx.IndexManifest()
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Architecture == arch {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no %s image in the index", arch)
	return nil
}

// extractBinary writes /usr/bin/vipd from the image's layers to path with
// its mode and its security.capability attribute, as a container runtime
// unpacks it.
func extractBinary(t *testing.T, img v1.Image, path string) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if "/"+h.Name != manifest.BinaryPath {
				continue
			}
			data, _ := io.ReadAll(tr)
			if err := os.WriteFile(path, data, os.FileMode(h.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
			capability := h.PAXRecords["SCHILY.xattr.security.capability"]
			if capability == "" {
				t.Fatal("/usr/bin/vipd in the image has no file capabilities")
			}
			if err := unix.Setxattr(path, "security.capability", []byte(capability), 0); err != nil {
				t.Skipf("SKIP: cannot set file capabilities on %s: %v", path, err)
			}
			rc.Close()
			return
		}
		rc.Close()
	}
	t.Fatalf("no %s in the image", manifest.BinaryPath)
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// procStatus reads /proc/PID/status into a map.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st
}
