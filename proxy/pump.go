//go:build linux

package proxy

import "golang.org/x/sys/unix"

const (
	// spliceBudget bounds the system calls per direction per wake-up so
	// one bulk stream cannot starve the loop's other connections: at most
	// about 4 MiB moved (half of them splices into a pipe of pipeSize).
	spliceBudget = 8
	// pipeSize is the capacity asked of pooled pipes: 1 MiB, the largest
	// an unprivileged process may set (fs.pipe-max-size). Against 256 KiB
	// it halved the proxy's CPU per byte with 8 bulk streams and took a
	// quarter off with one (fewer splices and wake-ups per byte). A pipe
	// holds pages only while bytes are in flight; an empty one costs its
	// ring of slot headers (about 10 KiB). Where the size is refused
	// (fs.pipe-user-pages-soft, 64 MiB of pipes per user by default) the
	// pipe keeps the default 64 KiB and only moves less per call.
	pipeSize = 1 << 20
	// maxFreePipes bounds the empty pipes a loop keeps for the next bulk
	// transfer (8 loops x 8 pipes x 1 MiB stay under the per-user soft
	// limit above).
	maxFreePipes = 8
	// bufSize is the loop's shared read buffer; a read that fills it
	// switches the direction to splice.
	bufSize = 64 << 10
	// smallRead switches a spliced direction back to the buffer.
	smallRead = 16 << 10
)

type pipe struct {
	r, w int
	n    int // bytes buffered
	cap  int
}

// run moves whatever can move in both directions.
func (c *conn) run(l *loop) {
	c.last = l.now
	more := false
	for d := range 2 {
		m, ok := c.pump(l, d)
		if !ok {
			c.close(l)
			return
		}
		more = more || m
	}
	if c.flags&(fC2SShut|fS2CShut) == fC2SShut|fS2CShut {
		c.close(l)
		return
	}
	if more && c.flags&fAgain == 0 {
		c.flags |= fAgain
		l.again = append(l.again, c)
	}
}

var dirFlags = [2]struct{ read, write, eof, shut, bulk, hup uint32 }{
	{fCRead, fSWrite, fC2SEOF, fC2SShut, fC2SBulk, fCHup},
	{fSRead, fCWrite, fS2CEOF, fS2CShut, fS2CBulk, fSHup},
}

// pump moves one direction (0: client to server, 1: server to client)
// until the source has nothing or the destination is full. Small reads go
// through the loop's shared buffer (recv+send, and a short recv means the
// socket is drained, saving the EAGAIN probe); once a read fills the
// buffer the direction switches to splice through a pooled pipe, zero-copy,
// until reads get small again. Nothing stays held while the connection is
// idle. It reports whether its budget ran out with work left, and false in
// ok on a fatal error.
func (c *conn) pump(l *loop, d int) (more, ok bool) {
	f := dirFlags[d]
	if c.flags&f.shut != 0 {
		return false, true
	}
	src, dst := int(c.cfd), int(c.sfd)
	counter := &c.fe.bytesIn
	if d == 1 {
		src, dst = dst, src
		counter = &c.fe.bytesOut
	}
	for range spliceBudget {
		if p := c.pipes[d]; p != nil && p.n > 0 {
			if c.flags&f.write == 0 {
				return false, true
			}
			n, err := sysSplice(p.r, dst, p.n)
			if err != nil {
				if err == unix.EAGAIN {
					c.flags &^= f.write
					return false, true
				}
				if err == unix.EINTR {
					continue
				}
				return false, false
			}
			p.n -= int(n)
			counter.Add(uint64(n))
			if p.n == 0 {
				c.pipes[d] = nil
				l.putPipe(p)
			}
			continue
		}
		if pend := c.pending(d); len(pend) > 0 {
			if c.flags&f.write == 0 {
				return false, true
			}
			n, err := sysWrite(dst, pend)
			if err != nil {
				if err == unix.EAGAIN {
					c.flags &^= f.write
					return false, true
				}
				if err == unix.EINTR {
					continue
				}
				return false, false
			}
			counter.Add(uint64(n))
			c.setPending(d, pend[n:])
			continue
		}
		if c.flags&f.eof != 0 {
			// The other direction already finished: close (in run) sends
			// this FIN, so skip the shutdown call.
			if c.flags&(fC2SShut|fS2CShut) == 0 {
				sysShutdown(dst, unix.SHUT_WR)
			}
			c.flags |= f.shut
			return false, true
		}
		if c.flags&f.read == 0 {
			return false, true
		}
		if c.flags&f.bulk != 0 {
			p := c.pipes[d]
			if p == nil {
				if p = l.getPipe(); p == nil {
					c.flags &^= f.bulk // out of fds: copy through the buffer
					continue
				}
				c.pipes[d] = p
			}
			n, err := sysSplice(src, p.w, p.cap)
			switch {
			case err == unix.EAGAIN:
				c.flags &^= f.read
				c.pipes[d] = nil
				l.putPipe(p)
				return false, true
			case err == unix.EINTR:
				continue
			case err != nil:
				return false, false
			case n == 0:
				c.flags |= f.eof
			case n < smallRead:
				c.flags &^= f.bulk
			}
			p.n = int(n)
			continue
		}
		if c.flags&f.write == 0 {
			return false, true // backpressure: leave the bytes in the socket
		}
		n, err := sysRead(src, l.buf)
		switch {
		case err == unix.EAGAIN:
			c.flags &^= f.read
			return false, true
		case err == unix.EINTR:
			continue
		case err != nil:
			return false, false
		case n == 0:
			c.flags |= f.eof
			continue
		case n == len(l.buf):
			c.flags |= f.bulk
		case c.flags&f.hup == 0:
			// A short read emptied the receive queue; new data brings a
			// new edge. After a FIN or error was signalled keep reading
			// until EOF.
			c.flags &^= f.read
		}
		w, err := sysWrite(dst, l.buf[:n])
		if err != nil {
			if err != unix.EAGAIN {
				return false, false
			}
			w = 0
			c.flags &^= f.write
		}
		counter.Add(uint64(w))
		if w < n {
			c.setPending(d, append([]byte(nil), l.buf[w:n]...))
		}
	}
	return true, true
}

func (l *loop) getPipe() *pipe {
	if n := len(l.free); n > 0 {
		p := l.free[n-1]
		l.free = l.free[:n-1]
		return p
	}
	// Reserve a place under the bound before opening: the loops share it,
	// and a look then an add let two loops both take the last place
	// (TestPipeBudgetLoops).
	max := l.p.maxPipes.Load()
	for {
		n := l.p.pipes.Load()
		if max > 0 && n >= max {
			return nil // at the bound: the caller copies
		}
		if l.p.pipes.CompareAndSwap(n, n+1) {
			break
		}
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		l.p.pipes.Add(-1)
		return nil
	}
	p := &pipe{r: fds[0], w: fds[1], cap: 1 << 16}
	if n, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize); err == nil {
		p.cap = n
	}
	return p
}

func (l *loop) putPipe(p *pipe) {
	if p.n == 0 && len(l.free) < maxFreePipes {
		l.free = append(l.free, p)
		return
	}
	sysClose(p.r)
	sysClose(p.w)
	l.p.pipes.Add(-1)
}
