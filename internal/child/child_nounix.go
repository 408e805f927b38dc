//go:build !unix

package child

import "os/exec"

// killProcessGroup is a no-op where process groups do not exist: only the
// program itself is killed on cancellation.
func killProcessGroup(*exec.Cmd) {}
