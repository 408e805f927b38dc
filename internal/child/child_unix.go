//go:build unix

package child

import (
	"os/exec"
	"syscall"
)

// killProcessGroup makes cmd the leader of a new process group and, on
// cancellation, kills the whole group rather than the leader alone.
func killProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
