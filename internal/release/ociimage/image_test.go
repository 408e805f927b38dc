package ociimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/manifest"
)

// fakeBuild builds an image of stand-in binaries (the integration test
// builds the real one); it returns the archive's path.
func fakeBuild(t *testing.T, out string) (string, Options) {
	t.Helper()
	dir := t.TempDir()
	o := Options{Version: "v1.2.3-4-gabcdef0", Revision: "abcdef0123", Created: time.Unix(1700000000, 0).UTC(), Binaries: map[string]string{}, Out: out}
	for _, arch := range []string{"arm64", "amd64"} {
		p := filepath.Join(dir, arch)
		os.WriteFile(p, []byte("#!vipd for "+arch), 0o755)
		o.Binaries[arch] = p
	}
	path, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	return path, o
}

// untar unpacks an OCI archive into dir.
func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
			continue
		}
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
}

func TestImage(t *testing.T) {
	path, o := fakeBuild(t, t.TempDir())
	if filepath.Base(path) != "vipd-v1.2.3-4-gabcdef0-oci.tar" {
		t.Errorf("archive name %s", filepath.Base(path))
	}
	dir := t.TempDir()
	if err := untar(path, dir); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, _ := top.IndexManifest()
	if len(tm.Manifests) != 1 || tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1.2.3-4-gabcdef0" ||
		tm.Manifests[0].Annotations["io.containerd.image.name"] != manifest.ImageRepo+":v1.2.3-4-gabcdef0" {
		t.Fatalf("index.json: %+v", tm.Manifests)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	// go-containerregistry's validation reads every blob and checks every
	// digest, size and media type.
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate.Index: %v", err)
	}
	im, _ := idx.IndexManifest()
	if diff := cmp.Diff(Labels(o), im.Annotations); diff != "" {
		t.Errorf("index annotations (-want +got):\n%s", diff)
	}
	var arches []string
	for _, d := range im.Manifests {
		arches = append(arches, d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != d.Platform.Architecture || cf.OS != "linux" {
			t.Errorf("config platform %s/%s in the %s entry", cf.OS, cf.Architecture, d.Platform.Architecture)
		}
		c := cf.Config
		if c.User != "65532:65532" || !cmp.Equal(c.Entrypoint, []string{"/usr/bin/vipd"}) || c.StopSignal != "SIGTERM" {
			t.Errorf("config %+v", c)
		}
		if c.Labels["org.opencontainers.image.version"] != o.Version || c.Labels["org.opencontainers.image.source"] != "https://github.com/vipd/vipd" {
			t.Errorf("labels %v", c.Labels)
		}
		files := layerFiles(t, img)
		bin := files["usr/bin/vipd"]
		if bin == nil || string(bin.data) != "#!vipd for "+d.Platform.Architecture {
			t.Errorf("%s: /usr/bin/vipd is %+v", d.Platform.Architecture, bin)
			continue
		}
		if bin.h.Mode != 0o755 || bin.h.Uid != 0 || bin.h.PAXRecords[xattrKey] != string(CapabilityXattr()) {
			t.Errorf("/usr/bin/vipd mode %o uid %d xattr %q", bin.h.Mode, bin.h.Uid, bin.h.PAXRecords[xattrKey])
		}
		if run := files["run/vipd/"]; run == nil || run.h.Uid != manifest.UID {
			t.Errorf("/run/vipd not owned by %d: %+v", manifest.UID, run)
		}
		if p := files["etc/passwd"]; p == nil || !strings.Contains(string(p.data), "vipd:x:65532:65532:") {
			t.Errorf("/etc/passwd: %+v", p)
		}
	}
	if !cmp.Equal(arches, []string{"amd64", "arm64"}) {
		t.Errorf("index platforms %v, want amd64 and arm64", arches)
	}
}

// TestImageReproducible: the same inputs give the same archive.
func TestImageReproducible(t *testing.T) {
	a, _ := fakeBuild(t, t.TempDir())
	b, _ := fakeBuild(t, t.TempDir())
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Error("two builds of the same inputs differ")
	}
}

type layerFile struct {
	h    *tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]*layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out[h.Name] = &layerFile{h: h, data: data}
	}
}

// TestCapabilityXattrMatchesSetcap: the attribute written into the layer
// is byte for byte what libcap's setcap writes for the same capabilities.
func TestCapabilityXattrMatchesSetcap(t *testing.T) {
	setcap, err := exec.LookPath("setcap")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("SKIP: needs root and setcap (libcap2-bin)")
	}
	f := filepath.Join(t.TempDir(), "bin")
	os.WriteFile(f, []byte("x"), 0o755)
	if out, err := exec.Command(setcap, "cap_net_admin,cap_net_raw,cap_net_bind_service=ep", f).CombinedOutput(); err != nil {
		t.Skipf("SKIP: setcap on %s: %v %s (file system without xattrs?)", f, err, out)
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(f, "security.capability", buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], CapabilityXattr()) {
		t.Errorf("setcap wrote % x, CapabilityXattr is % x", buf[:n], CapabilityXattr())
	}
}
