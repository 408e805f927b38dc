package daemon

import (
	"context"
	"sync"
)

// aux are the node's side services that bind their own sockets by
// address and hold no state worth handing over: the status beacon and
// the liveness connections. A hitless restart stops them in the old
// process (liveness says goodbye first, so the peers do not take the
// ending for a crash) and the new process binds them afresh; a rollback
// starts them again.
type aux struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startAux starts the beacon and the liveness connections under ctx.
func (d *Daemon) startAux(ctx context.Context) {
	cfg, node := d.config()
	if cfg.VRRP == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &aux{cancel: cancel}
	d.auxMu.Lock()
	// A fresh one each time: one that said goodbye stays leaving.
	d.liveness = d.newLiveness(cfg, node, d.insts)
	d.aux = a
	d.auxMu.Unlock()
	a.done.Add(2)
	go func() { defer a.done.Done(); d.runBeacon(ctx) }()
	go func() { defer a.done.Done(); d.runLiveness(ctx) }()
}

// stopAux says goodbye to the peers and stops the beacon and the liveness
// connections, waiting until their sockets are closed.
func (d *Daemon) stopAux(reason string) {
	d.byeLiveness(reason)
	d.auxMu.Lock()
	a := d.aux
	d.aux = nil
	d.auxMu.Unlock()
	if a != nil {
		a.cancel()
		a.done.Wait()
	}
}
