// Package ociimage builds vipd's container image without a container
// daemon or a base image to pull: one layer on an empty base (the static
// binary, /etc/passwd and /etc/group for the non-root user, the mount
// points), one image per architecture, an OCI index over them, written as
// an OCI image layout and packed into a tar archive (the oci-archive
// format skopeo and podman read).
//
// # Capabilities
//
// The container runs as UID/GID manifest.UID, not root. A non-root process
// has no capabilities after exec unless the binary carries file
// capabilities or the runtime sets ambient ones, and Kubernetes sets no
// ambient capabilities. So /usr/bin/vipd carries the file capabilities
// cap_net_admin,cap_net_raw,cap_net_bind_service=ep (the
// security.capability extended attribute, in the layer as a PAX record),
// and the pod adds exactly these three to the bounding set and drops all
// others (`vipd manifest`): the kernel grants a file capability only if it
// is in the bounding set, so the pod's securityContext stays the limit.
// Run as root instead (podman run --user 0), vipd has what the runtime
// gives root.
package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vipd/vipd/internal/manifest"
)

// Capabilities are the three vipd needs: CAP_NET_ADMIN (addresses,
// netlink, interface sysctls), CAP_NET_RAW (VRRP is IP protocol 112 on a
// raw socket; gratuitous ARP on a packet socket), CAP_NET_BIND_SERVICE
// (frontends below port 1024), by their Linux numbers.
var Capabilities = map[string]uint{"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13}

// CapabilityXattr is the value of security.capability that grants
// Capabilities as permitted and effective (struct vfs_cap_data, revision
// 2, little-endian: magic_etc, then permitted and inheritable for the low
// and the high 32 capabilities).
func CapabilityXattr() []byte {
	var low uint32
	for _, n := range Capabilities {
		low |= 1 << n
	}
	const revision2, effective = 0x02000000, 0x000001
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], revision2|effective)
	binary.LittleEndian.PutUint32(b[4:], low) // permitted, caps 0-31
	return b
}

// xattrKey is how a tar PAX record carries an extended attribute.
const xattrKey = "SCHILY.xattr.security.capability"

// Options describe one image build.
type Options struct {
	// Version is vipd's version (git describe); it is the image tag.
	Version string
	// Revision is the source commit, for the revision label.
	Revision string
	// Created stamps the config, the files and the archive.
	Created time.Time
	// Binaries maps an architecture (amd64, arm64) to vipd built for it.
	Binaries map[string]string
	// Out is the directory the archive is written to.
	Out string
}

// Tag is the image tag for a version.
func Tag(version string) string { return manifest.ImageTag(version) }

// ArchiveName is the archive's file name in Out.
func ArchiveName(version string) string { return "vipd-" + Tag(version) + "-oci.tar" }

// Labels are the OCI annotations on the image config and the index.
func Labels(o Options) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "vipd",
		"org.opencontainers.image.description": "VRRP virtual IP and TCP proxy for a Kubernetes or Talos control plane",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.source":      "https://github.com/vipd/vipd",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
	}
}

// Build writes the archive and returns its path.
func Build(o Options) (string, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	arches := make([]string, 0, len(o.Binaries))
	for a := range o.Binaries {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	for _, arch := range arches {
		img, err := archImage(o, arch)
		if err != nil {
			return "", err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	idx = mutate.Annotations(idx, Labels(o)).(v1.ImageIndex)

	dir, err := os.MkdirTemp("", "vipd-oci-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", err
	}
	// ref.name lets skopeo and podman address the image by tag
	// (oci-archive:FILE:TAG); io.containerd.image.name is the name
	// `ctr images import` gives it, the default of `vipd manifest`.
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": Tag(o.Version),
		"io.containerd.image.name":          manifest.ImageRepo + ":" + Tag(o.Version),
	})); err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(o.Out, ArchiveName(o.Version))
	if err := tarDir(dir, path+".tmp", o.Created); err != nil {
		return "", err
	}
	return path, os.Rename(path+".tmp", path)
}

// archImage is the image for one architecture.
func archImage(o Options, arch string) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binaries[arch])
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(bin, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: o.Created},
			CreatedBy: "tools/image: vipd " + o.Version + " on an empty base",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", manifest.UID, manifest.UID),
		Entrypoint: []string{manifest.BinaryPath},
		Cmd:        []string{"run", "-c", manifest.ContainerConfig},
		WorkingDir: "/",
		Labels:     Labels(o),
		// SIGTERM is the planned handover (priority 0).
		StopSignal: "SIGTERM",
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the image's only layer.
func rootfs(bin []byte, mtime time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nvipd:x:%d:%d:vipd:/nonexistent:/sbin/nologin\n", manifest.UID, manifest.UID)
	group := fmt.Sprintf("root:x:0:\nvipd:x:%d:\n", manifest.UID)
	type entry struct {
		name     string
		mode     int64
		uid      int
		data     []byte
		dir      bool
		capXattr bool
	}
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/vipd/", mode: 0o755, dir: true},
		// The control socket's directory, owned by the container user
		// (a pod mounts an emptyDir over it; a plain `podman run` uses
		// it as it is).
		{name: "run/", mode: 0o755, dir: true},
		{name: "run/vipd/", mode: 0o755, uid: manifest.UID, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/bin/", mode: 0o755, dir: true},
		{name: manifest.BinaryPath[1:], mode: 0o755, data: bin, capXattr: true},
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime,
			Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		}
		if e.capXattr {
			h.PAXRecords = map[string]string{xattrKey: string(CapabilityXattr())}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// tarDir packs an OCI layout directory into an archive, in name order
// with fixed owners and times, so the same inputs give the same bytes.
func tarDir(dir, path string, mtime time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range names {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Mode: 0o644, Typeflag: tar.TypeReg, Size: fi.Size(), Format: tar.FormatPAX}
		if fi.IsDir() {
			h.Name += "/"
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
