// Command vipd gives a Kubernetes / Talos control plane one stable, highly
// available endpoint: a VRRPv3 election moves a virtual IP between load
// balancer hosts and the master's embedded TCP proxy forwards to the
// health-checked API servers. The same binary is the operator's CLI.
package main

import (
	"context"
	"os"

	"github.com/vipd/vipd/internal/daemon"
)

// main registers for no signal: `vipd run` decides what every signal means
// in one place (run.go). A second registration here would deliver one
// Ctrl-C twice and turn a handover into a hard stop.
//
// A running daemon starts this binary with daemon.BcryptHelperArg to check
// a login's password at low priority (internal/daemon/bcrypt.go); that is
// not an operator command, so it is answered before run reads a command.
func main() {
	if len(os.Args) == 2 && os.Args[1] == daemon.BcryptHelperArg {
		os.Exit(daemon.BcryptHelper(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
