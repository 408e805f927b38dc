//go:build linux

package proxy

import (
	"sync"
	"sync/atomic"
)

// fdTable maps the proxy's file descriptors (both sides of every
// connection, in every loop) to their connection. File descriptors are
// small dense integers unique in the process, so one table indexed by fd
// serves all loops: 8 bytes a descriptor, 16 an idle connection, where a
// map per loop cost an entry of 20-45 bytes per descriptor and a table per
// loop would cost 8 bytes per descriptor per loop. It grows by pages that
// are never copied or freed, so growing leaves no garbage behind (a
// doubling slice left as much garbage as it held, and the garbage is RSS
// too).
//
// An entry is written only by the loop that owns the descriptor, and read
// by it; the entries are atomic because a descriptor one loop closes may be
// reused at once by the kernel for another loop's socket, and that loop
// may still hold a stale event for it (loop.lookup checks the owner).
type fdTable struct {
	mu  sync.Mutex                // serialises adding pages
	dir atomic.Pointer[[]*fdPage] // copied on write, so readers take no lock
}

const (
	fdPageBits = 9
	fdPageSize = 1 << fdPageBits
)

type fdPage [fdPageSize]atomic.Pointer[conn]

func (t *fdTable) get(fd int32) *conn {
	d := t.dir.Load()
	if fd < 0 || d == nil {
		return nil
	}
	pi := int(fd) >> fdPageBits
	if pi >= len(*d) || (*d)[pi] == nil {
		return nil
	}
	return (*d)[pi][fd&(fdPageSize-1)].Load()
}

func (t *fdTable) set(fd int32, c *conn) {
	if fd >= 0 {
		t.page(int(fd) >> fdPageBits)[fd&(fdPageSize-1)].Store(c)
	}
}

// del clears fd's entry if it holds c, and says whether it did.
func (t *fdTable) del(fd int32, c *conn) bool {
	if pg := t.pageIfAny(int(fd) >> fdPageBits); fd >= 0 && pg != nil {
		return pg[fd&(fdPageSize-1)].CompareAndSwap(c, nil)
	}
	return false
}

func (t *fdTable) pageIfAny(pi int) *fdPage {
	if d := t.dir.Load(); d != nil && pi >= 0 && pi < len(*d) {
		return (*d)[pi]
	}
	return nil
}

func (t *fdTable) page(pi int) *fdPage {
	if pg := t.pageIfAny(pi); pg != nil {
		return pg
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old []*fdPage
	if d := t.dir.Load(); d != nil {
		old = *d
	}
	if pi < len(old) && old[pi] != nil {
		return old[pi]
	}
	d := make([]*fdPage, max(len(old), pi+1))
	copy(d, old)
	d[pi] = new(fdPage)
	t.dir.Store(&d)
	return d[pi]
}

// each calls fn for every connection in the table whose owner is loop,
// once (by its client fd), in fd order. fn may unregister connections.
func (t *fdTable) each(loop int, fn func(*conn)) {
	d := t.dir.Load()
	if d == nil {
		return
	}
	for pi, pg := range *d {
		if pg == nil {
			continue
		}
		for i := range pg {
			c := pg[i].Load()
			if c != nil && int(c.owner) == loop && c.cfd == int32(pi<<fdPageBits+i) {
				fn(c)
			}
		}
	}
}

// register puts fd, one side of c, in the proxy's table. c's owner is
// this loop from its first registration on.
func (l *loop) register(fd int32, c *conn) {
	if fd == c.cfd {
		// The client side registers first: the owner is written once,
		// before any other loop can find c in the table.
		c.owner = uint16(l.index)
	}
	l.p.fds.set(fd, c)
	l.nfds++
}

// unregister takes fd, one side of c, out of the proxy's table. A side
// that never registered (its epoll_ctl failed, or an adopted connection
// closed before it joined) is left alone, and not counted.
func (l *loop) unregister(fd int32, c *conn) {
	if l.p.fds.del(fd, c) {
		l.nfds--
	}
}

// lookup returns the connection of an event's fd if this loop owns it.
func (l *loop) lookup(fd int32) *conn {
	if c := l.p.fds.get(fd); c != nil && int(c.owner) == l.index {
		return c
	}
	return nil
}

// clients returns the loop's connections, once each, in fd order.
func (l *loop) clients() []*conn {
	var out []*conn
	l.p.fds.each(l.index, func(c *conn) { out = append(out, c) })
	return out
}
