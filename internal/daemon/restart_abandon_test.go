package daemon

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// abandonCloses is a proxy whose Abandon closes the control listener, as
// the end of the proxy's Run does in a real daemon: the run group ends and
// the control server shuts down.
type abandonCloses struct {
	*fakeProxy
	ln net.Listener
}

func (p abandonCloses) Abandon() { p.ln.Close() }

// The old process hands the control socket over: its path must outlive
// the old process's listener, whenever that closes during abandon.
func TestAbandonKeepsControlPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vipd.sock")
	ln, err := net.Listen("unix", path) // unlinks on close, as control.Listen's does
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{ctlLn: ln, proxy: abandonCloses{&fakeProxy{}, ln}}
	d.abandon(&frozen{proxy: true})
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the control socket's path is gone after the handover: %v", err)
	}
}
