// Command vipd gives a Kubernetes / Talos control plane one stable, highly
// available endpoint: a VRRPv3 election moves a virtual IP between load
// balancer hosts and the master's embedded TCP proxy forwards to the
// health-checked API servers. The same binary is the operator's CLI.
package main

import (
	"context"
	"os"
)

// main registers for no signal: `vipd run` decides what every signal means
// in one place (run.go). A second registration here would deliver one
// Ctrl-C twice and turn a handover into a hard stop.
func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
