//go:build !unix

package health

import "os/exec"

// killProcessGroup is a no-op where process groups do not exist: only the
// script itself is killed on cancellation.
func killProcessGroup(*exec.Cmd) {}
