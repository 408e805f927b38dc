//go:build linux

package proxy

import (
	"net/netip"
	"testing"
	"unsafe"
)

// TestConnSize keeps an idle connection's own memory in the 128-byte size
// class (issue 15: at most 200 bytes per idle connection with its two fd
// table slots and the heap's overhead). It was 217 bytes, in the 224
// class, with pending bytes inline, per-connection counters, a
// netip.AddrPort and the tried servers' pointers.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 128 {
		t.Fatalf("conn is %d bytes, want at most 128 (the size class an idle connection pays)", n)
	}
}

func TestConnSource(t *testing.T) {
	for _, s := range []string{"192.0.2.7:40001", "[2001:db8::5]:443", "[::ffff:192.0.2.9]:80", "0.0.0.0:0"} {
		ap := netip.MustParseAddrPort(s)
		var c conn
		c.setSource(ap)
		if got := c.source(); got != ap {
			t.Errorf("source of %s: got %s", ap, got)
		}
	}
	var c conn
	c.setSource(netip.AddrPort{})
	if c.source().IsValid() {
		t.Error("no address came back as one")
	}
}

func TestFdTable(t *testing.T) {
	var tab fdTable
	a := &conn{cfd: 5, sfd: 3000, owner: 0}
	b := &conn{cfd: 7, sfd: -1, owner: 1}
	tab.set(a.cfd, a)
	tab.set(a.sfd, a)
	tab.set(b.cfd, b)
	tab.set(-1, b) // no server side: nothing
	if tab.get(5) != a || tab.get(3000) != a || tab.get(7) != b {
		t.Fatal("get returns the wrong connection")
	}
	for _, fd := range []int32{-1, 0, 6, 3001, 1 << 30} {
		if tab.get(fd) != nil {
			t.Fatalf("get(%d) found a connection", fd)
		}
	}
	var mine []*conn
	tab.each(0, func(c *conn) { mine = append(mine, c) })
	if len(mine) != 1 || mine[0] != a {
		t.Fatalf("loop 0 owns %v, want a once (not by its server fd, not b)", mine)
	}
	pages := len(*tab.dir.Load())
	tab.set(4000, b) // a page beyond: the directory grows, no page is copied
	if d := *tab.dir.Load(); len(d) <= pages || tab.get(3000) != a {
		t.Fatal("growing lost an entry")
	}
	if !tab.del(3000, a) {
		t.Fatal("del did not clear a's entry")
	}
	if tab.del(3000, a) || tab.del(1<<30, a) || tab.del(-1, a) { // again; no page there; no fd
		t.Fatal("del cleared what was not there")
	}
	if tab.del(5, b) { // 5 holds a, not b
		t.Fatal("del cleared another connection's entry")
	}
	if tab.get(3000) != nil || tab.get(5) != a {
		t.Fatal("del cleared the wrong entry")
	}
}

// A loop ignores an fd another loop now holds: the kernel may hand a
// closed fd to another loop's new socket while this loop still has a stale
// event for it.
func TestLookupOwner(t *testing.T) {
	p := &Proxy{}
	l0, l1 := &loop{p: p, index: 0}, &loop{p: p, index: 1}
	c := &conn{cfd: 9, sfd: 10}
	l1.register(c.cfd, c)
	l1.register(c.sfd, c)
	if l1.lookup(9) != c || l1.lookup(10) != c || l1.nfds != 2 {
		t.Fatal("the owner does not find its connection")
	}
	if l0.lookup(9) != nil || l0.lookup(10) != nil {
		t.Fatal("another loop found a connection it does not own")
	}
	if got := l0.clients(); len(got) != 0 {
		t.Fatalf("loop 0 lists %d connections of loop 1", len(got))
	}
	l1.unregister(c.sfd, c)
	if l1.lookup(10) != nil || l1.nfds != 1 || len(l1.clients()) != 1 {
		t.Fatal("unregister left the server side")
	}
	// A side that never registered (its epoll_ctl failed) is closed
	// through unregister too: the count stays right, and an entry the fd
	// number holds for another connection stays.
	d := &conn{cfd: 11, sfd: 12}
	l1.register(d.cfd, d)
	l1.unregister(d.sfd, d)
	if l1.nfds != 2 {
		t.Fatalf("nfds %d after unregistering a side never registered, want 2", l1.nfds)
	}
	l1.unregister(c.cfd, d)
	if l1.lookup(9) != c || l1.nfds != 2 {
		t.Fatal("unregister took another connection's entry")
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
