//go:build linux

package proxy

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps an idle connection's own memory in the 160-byte size
// class (issue 15: at most 200 bytes per idle connection with the fd
// table's two slots). It was 217 bytes, in the 224 class, with pending
// bytes inline and per-connection counters.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 160 {
		t.Fatalf("conn is %d bytes, want at most 160 (the size class an idle connection pays)", n)
	}
}

func TestConnTable(t *testing.T) {
	var tab connTable
	a := &conn{cfd: 5, sfd: 300}
	b := &conn{cfd: 7, sfd: -1}
	tab.set(a.cfd, a)
	tab.set(a.sfd, a)
	tab.set(b.cfd, b)
	tab.set(-1, b) // no server side: nothing
	if tab.len() != 3 {
		t.Fatalf("len %d, want 3", tab.len())
	}
	if tab.get(5) != a || tab.get(300) != a || tab.get(7) != b {
		t.Fatal("get returns the wrong connection")
	}
	for _, fd := range []int32{-1, 0, 6, 301, 1 << 30} {
		if tab.get(fd) != nil {
			t.Fatalf("get(%d) found a connection", fd)
		}
	}
	if got := tab.clients(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("clients %v, want a then b once each", got)
	}
	tab.set(5, a) // again: counted once
	tab.del(300)
	tab.del(300) // again: nothing
	tab.del(1 << 30)
	if tab.len() != 2 || tab.get(300) != nil {
		t.Fatalf("after del: len %d, get(300) %v", tab.len(), tab.get(300))
	}
}

func TestConnPending(t *testing.T) {
	var c conn
	c.setPending(0, nil)
	if c.pend != nil {
		t.Fatal("an empty pending allocated its holder")
	}
	c.setPending(1, []byte("ab"))
	if string(c.pending(1)) != "ab" || c.pending(0) != nil {
		t.Fatalf("pending %q %q", c.pending(0), c.pending(1))
	}
	c.setPending(0, []byte("x"))
	c.setPending(1, []byte{})
	if c.pend == nil || string(c.pending(0)) != "x" || c.pending(1) != nil {
		t.Fatal("one direction emptied lost the other")
	}
	c.setPending(0, nil)
	if c.pend != nil {
		t.Fatal("both directions empty: the holder is kept")
	}
}
