//go:build linux

package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// RaiseNofile raises the soft RLIMIT_NOFILE to the hard one: a benchmark
// holds thousands of connections (and so do the processes it starts).
func RaiseNofile() {
	var r unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &r) == nil {
		r.Cur = r.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &r)
	}
}

// PrepareBench is what a benchmark against keepalived + HAProxy needs
// before its first run: root, both binaries, the file limit raised, a
// temporary directory (the caller removes it) and Bin set to vipdBin, or
// to vipd built from this tree into that directory when vipdBin is empty.
func PrepareBench(tempPrefix, vipdBin string) (root string, err error) {
	if os.Geteuid() != 0 {
		return "", errors.New("needs root (network namespaces)")
	}
	for _, bin := range []string{KeepalivedBin, HAProxyBin} {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s missing (apt-get install keepalived haproxy)", bin)
		}
	}
	RaiseNofile()
	root, err = os.MkdirTemp("", tempPrefix)
	if err != nil {
		return "", err
	}
	Bin = vipdBin
	if Bin == "" {
		Bin = filepath.Join(root, "vipd")
		build := exec.Command("go", "build", "-o", Bin, "github.com/vipd/vipd/cmd/vipd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			os.RemoveAll(root)
			return "", fmt.Errorf("build vipd: %w", err)
		}
	}
	return root, nil
}
