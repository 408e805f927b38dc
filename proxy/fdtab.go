//go:build linux

package proxy

// connTable maps a loop's file descriptors (client and server sides) to
// their connection. File descriptors are small dense integers, so a slice
// indexed by fd does what a map did at 8 bytes a slot instead of a map
// entry's 20-45 and with no hashing per event. Each loop has its own table,
// sized by the highest fd it has held; only the loop touches it.
type connTable struct {
	s []*conn
	n int // registered fds
}

func (t *connTable) get(fd int32) *conn {
	if uint(fd) < uint(len(t.s)) {
		return t.s[fd]
	}
	return nil
}

func (t *connTable) set(fd int32, c *conn) {
	if fd < 0 {
		return
	}
	if int(fd) >= len(t.s) {
		n := max(2*len(t.s), int(fd)+1, 64)
		s := make([]*conn, n)
		copy(s, t.s)
		t.s = s
	}
	if t.s[fd] == nil {
		t.n++
	}
	t.s[fd] = c
}

func (t *connTable) del(fd int32) {
	if uint(fd) < uint(len(t.s)) && t.s[fd] != nil {
		t.s[fd] = nil
		t.n--
	}
}

// len returns the registered fds (two per connection with a server side).
func (t *connTable) len() int { return t.n }

// clients returns every connection once, by its client fd, in fd order.
func (t *connTable) clients() []*conn {
	var out []*conn
	for fd, c := range t.s {
		if c != nil && int32(fd) == c.cfd {
			out = append(out, c)
		}
	}
	return out
}
