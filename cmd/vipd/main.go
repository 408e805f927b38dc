// Command vipd gives a Kubernetes / Talos control plane one stable, highly
// available endpoint: a VRRPv3 election moves a virtual IP between load
// balancer hosts and the master's embedded TCP proxy forwards to the
// health-checked API servers. The same binary is the operator's CLI.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
