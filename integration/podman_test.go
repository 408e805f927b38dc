package integration

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/release"
	"github.com/vipd/vipd/internal/release/ociimage"
)

// TestImagePodman runs the image with Debian's podman as the master of an
// HA pair (the backup is the host's vipd): read-only root, all
// capabilities dropped but the three, the image's own user. It must take
// the VIP, and `podman stop` (SIGTERM, the image's StopSignal) must hand it
// over to the backup without a failed client connection, as the kubelet's
// stop of the static pod does.
func TestImagePodman(t *testing.T) {
	lab.RequireRoot(t)
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("SKIP: podman not installed")
	}
	root, version, bins := releaseBinaries(t)
	archive, err := ociimage.Build(ociimage.Options{Version: version, Revision: release.Revision(root), Created: release.SourceDate(root), Binaries: bins, Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ref := podmanLoad(t, archive)
	flags := podmanFlags(t, ref)

	l := lab.NewLab(t)
	lb1, lb2, client := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("client", 100)
	vip := l.Addr(10)
	base, _ := os.ReadFile(l.WriteConfig(t, lab.PairOptions{VIP: vip}, []lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)}))
	// The container's config: in a directory its user can read.
	cfgDir, err := os.MkdirTemp("", "vipd-podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(cfgDir) })
	os.Chmod(cfgDir, 0o755)
	os.WriteFile(filepath.Join(cfgDir, "vipd.toml"), base, 0o644)
	sock := filepath.Join(l.Dir(), "lb2.sock")
	cfg2 := filepath.Join(l.Dir(), "lb2.toml")
	os.WriteFile(cfg2, append(base, fmt.Sprintf("\n[control]\nsocket = %q\n", sock)...), 0o644)

	// What the README asks of a host that runs vipd in a container, which
	// cannot write /proc/sys: the sysctls vipd would set itself. Without
	// arp_announce = 2, an ARP request lb1 sends from the VIP during the
	// handover can point the client back at lb1 (a failed connect).
	nsSysctl(t, lb1, "net.ipv4.conf.all.promote_secondaries=1")
	nsSysctl(t, lb1, "net.ipv4.conf.eth0.promote_secondaries=1")
	nsSysctl(t, lb1, "net.ipv4.conf.all.arp_announce=2")

	name := "vipd-test-" + l.ID
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", "-t", "0", name).Run() })
	args := append([]string{"run", "--rm", "--name", name, "--network", "ns:/run/netns/" + lb1.NS,
		"--read-only", "--cap-drop", "all", "--cap-add", lab.NetCaps,
		"-v", cfgDir + ":/etc/vipd:ro"}, flags...)
	args = append(args, ref, "run", "-c", "/etc/vipd/vipd.toml", "--node", "lb1")
	logPath := filepath.Join(l.Dir(), "podman.log")
	logf, _ := os.Create(logPath)
	defer logf.Close()
	pod := exec.Command("podman", args...)
	pod.Stdout, pod.Stderr = logf, logf
	if err := pod.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pod.Wait() }()
	podLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	n2 := l.StartNode(lb2, "lb2", cfg2, sock)
	if err := lab.WaitFor(10*time.Second, func() error {
		if got := lab.Holders(vip, lb1, lb2); len(got) != 1 || got[0] != "lb1" {
			return fmt.Errorf("VIP held by %v, want the container on lb1", got)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n--- container log ---\n%s", err, podLog())
	}
	n2.AwaitState("BACKUP", 3*time.Second)

	pr := lab.StartProber(t, client, netip.AddrPortFrom(vip, 6443), false)
	waitProbeOK(t, pr)
	if out, err := exec.Command("podman", "stop", "-t", "15", name).CombinedOutput(); err != nil {
		t.Fatalf("podman stop: %v %s", err, out)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the container exited with %v after podman stop\n%s", err, podLog())
		}
	case <-time.After(20 * time.Second):
		pod.Process.Signal(syscall.SIGKILL)
		t.Fatalf("the container did not exit\n%s", podLog())
	}
	n2.AwaitState("MASTER", 2*time.Second)
	lab.AwaitHolder(t, vip, lb2, time.Second, lb1, lb2)
	waitProbeOKAfter(t, pr, time.Now().Add(300*time.Millisecond))
	samples := pr.Stop()
	gap, failed := lab.Gap(samples)
	var resets int
	var errs []string
	for _, p := range samples {
		if p.OK {
			continue
		}
		errs = append(errs, p.Err)
		if strings.HasSuffix(p.Err, "connect: connection reset by peer") {
			resets++
		}
	}
	t.Logf("podman stop handover: client gap %s, %d failed connects %q", gap, failed, errs)
	// One handshake the VIP's move cut in two (SYN to the old holder, the
	// final ACK to the new one, which resets it; splitHandshake in
	// migrate_measure_test.go) is the one loss any L2 VIP without
	// connection sync allows per move. In the full suite this test saw
	// one failed connect in 2 runs of 3 (a 10 ms gap) and never alone; the
	// error is logged above so that the next failure names its kind (the
	// zero-loss handover itself is held by TestMasterTerminated and the
	// drills).
	if failed > 1 {
		t.Errorf("%d client connects failed when the container stopped (%q, %d resets); want at most one (a handshake the move split)\n%s", failed, errs, resets, podLog())
	}
	if !strings.Contains(podLog(), "handing the VIP over") {
		t.Errorf("the container did not hand over on SIGTERM:\n%s", podLog())
	}
}

// podmanLoad loads the archive into podman's storage and returns the
// image's name; the image is removed at the end unless it was there
// before.
func podmanLoad(t *testing.T, archive string) string {
	t.Helper()
	// The archive names the image ghcr.io/vipd/vipd:<tag>; an operator's
	// copy of that name stays.
	tag, _ := exec.Command("tar", "-xOf", archive, "index.json").Output()
	name := regexp.MustCompile(`"io.containerd.image.name":\s*"([^"]+)"`).FindSubmatch(tag)
	had := name != nil && exec.Command("podman", "image", "exists", string(name[1])).Run() == nil
	out, err := exec.Command("podman", "load", "-i", archive).CombinedOutput()
	m := regexp.MustCompile(`Loaded image(?:\(s\))?: (\S+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}
	ref := string(m[1])
	if !had {
		t.Cleanup(func() { exec.Command("podman", "rmi", "--force", ref).Run() })
	}
	return ref
}

// podmanFlags finds how podman runs a container on this machine: as it
// is, or with runc and the process limits spelled out (crun refuses a
// cgroup v1/v2 hybrid, and a sandbox may forbid raising RLIMIT_NOFILE and
// RLIMIT_NPROC to podman's defaults). It skips the test, saying why, when
// podman cannot run containers here.
func podmanFlags(t *testing.T, ref string) []string {
	t.Helper()
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	limits := []string{"--ulimit", fmt.Sprintf("nofile=%d:%d", lim.Cur, lim.Max), "--ulimit", "nproc=4096:4096"}
	var why []string
	for _, flags := range [][]string{nil, limits, append([]string{"--runtime", "runc"}, limits...)} {
		args := append(append([]string{"run", "--rm", "--network", "none", "--cap-drop", "all", "--cap-add", lab.NetCaps}, flags...), ref, "version")
		out, err := exec.Command("podman", args...).CombinedOutput()
		if err == nil && strings.HasPrefix(string(out), "vipd ") {
			return flags
		}
		why = append(why, fmt.Sprintf("%v: %s", flags, strings.TrimSpace(string(out))))
	}
	t.Skipf("SKIP: podman cannot run containers here:\n%s", strings.Join(why, "\n"))
	return nil
}
