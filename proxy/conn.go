//go:build linux

package proxy

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

const (
	connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
	// maxTries bounds the servers tried for one client connection.
	maxTries = 4
)

// Connection flags.
const (
	fCRead uint32 = 1 << iota // client readable since the last EAGAIN (edge-triggered)
	fCWrite
	fSRead
	fSWrite
	fC2SEOF  // client sent FIN
	fS2CEOF  // server sent FIN
	fC2SShut // FIN forwarded to the server
	fS2CShut // FIN forwarded to the client
	fEstablished
	fConnecting // on the loop's connecting list
	fAgain      // on the loop's again list
	fClosed
	fC2SBulk // client to server moves by splice (the last read filled the buffer)
	fS2CBulk
	fCHup // the client's FIN or an error was signalled: read until EOF
	fSHup
	fParked // on the loop's parked list, waiting for a file descriptor
)

// conn is one proxied connection. It holds no buffer while idle: a pipe is
// taken from the loop's pool only while bytes are in flight, and pending
// bytes hang off a pointer. Its size is the memory an idle connection
// costs beside the kernel's sockets (TestConnSize keeps it in the 160-byte
// size class), so what only some connections need stays out of it.
type conn struct {
	fe       *frontend
	be       *backend
	srv      *server
	srcIP    [16]byte         // client address from accept (source, setSource)
	pipes    [2]*pipe         // [0] client->server, [1] server->client
	pend     *[2][]byte       // bytes read but not yet written, only after a short write (pending)
	deadline int64            // connect deadline
	last     int64            // last activity, for the idle timeout
	tried    [maxTries]uint32 // ids of the servers tried, tries of them
	cfd, sfd int32
	cid, sid int32 // registration ids: stale epoll events are ignored
	ci       int32 // index in the loop's connecting list, with fConnecting
	flags    uint32
	tries    uint8
	owner    uint16 // index of the loop that registered it (fdtab.go)
	srcPort  uint16
	srcKind  uint8 // 0: none, 4: IPv4, 6: IPv6 (a v4-mapped address stays one)
}

// setSource keeps the client's address in 19 bytes instead of a
// netip.AddrPort's 32.
func (c *conn) setSource(ap netip.AddrPort) {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		c.srcKind = 0
		return
	case a.Is4():
		c.srcKind = 4
	default:
		c.srcKind = 6
	}
	c.srcIP, c.srcPort = a.As16(), ap.Port()
}

// source returns the client's address as accepted.
func (c *conn) source() netip.AddrPort {
	switch c.srcKind {
	case 4:
		return netip.AddrPortFrom(netip.AddrFrom16(c.srcIP).Unmap(), c.srcPort)
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom16(c.srcIP), c.srcPort)
	}
	return netip.AddrPort{}
}

// hasTried reports whether s was tried for this connection already.
func (c *conn) hasTried(s *server) bool {
	for _, id := range c.tried[:c.tries] {
		if id == s.id {
			return true
		}
	}
	return false
}

// pending returns the bytes of direction d read but not yet written.
func (c *conn) pending(d int) []byte {
	if c.pend == nil {
		return nil
	}
	return c.pend[d]
}

// setPending keeps b as direction d's unwritten bytes, and drops the
// holder when both directions are empty.
func (c *conn) setPending(d int, b []byte) {
	if len(b) == 0 {
		b = nil
		if c.pend == nil {
			return
		}
	}
	if c.pend == nil {
		c.pend = new([2][]byte)
	}
	c.pend[d] = b
	if c.pend[0] == nil && c.pend[1] == nil {
		c.pend = nil
	}
}

func (l *loop) id() int32 {
	l.nextID++
	if l.nextID <= 0 {
		l.nextID = 1
	}
	return l.nextID
}

// adopt registers a new client connection and starts connecting.
func (l *loop) adopt(c *conn) {
	c.cid = l.id()
	if err := sysEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.cfd), &unix.EpollEvent{Events: connEvents, Fd: c.cfd, Pad: c.cid}); err != nil {
		l.load.Add(-1)
		c.closeUnadopted(l.p)
		return
	}
	l.register(c.cfd, c)
	c.last = l.now
	c.be = c.fe.be.Load()
	c.connect(l)
}

// connect tries eligible servers not tried yet, up to maxTries, and closes
// the client when none is left.
func (c *conn) connect(l *loop) {
	for c.tries < maxTries {
		s := c.pick()
		if s == nil {
			break
		}
		c.tried[c.tries] = s.id
		c.tries++
		fd, err := l.serverSocket(s.raw.family)
		if err != nil {
			if outOfFds(err) {
				// Not the server's fault: wait for an fd, the server untried.
				c.tries--
				c.tried[c.tries] = 0
				l.park(c, err)
				return
			}
			s.failed.Add(1)
			if ok, held := l.p.socketWarn.allow(l.now); ok {
				l.p.log.Warn().Err(err).Int("repeated", held).Msg("socket for server connection")
			}
			break
		}
		// The options accepted sockets inherit from the listener.
		for _, o := range inheritedOpts {
			sysSetsockoptInt(fd, o[0], o[1], o[2])
		}
		err = connectRaw(fd, &s.raw)
		if err != nil && err != unix.EINPROGRESS {
			sysClose(fd)
			s.failed.Add(1)
			l.p.log.Debug().Err(err).Str("backend", c.be.name).Str("server", s.name).Msg("connect failed")
			continue
		}
		c.srv = s
		s.active.Add(1)
		c.sfd = int32(fd)
		c.sid = l.id()
		if err := sysEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: connEvents, Fd: c.sfd, Pad: c.sid}); err != nil {
			c.close(l)
			return
		}
		l.register(c.sfd, c)
		if err == nil {
			c.established(l)
			c.run(l)
			return
		}
		c.deadline = l.now + c.fe.connectTimeout.Load()
		if c.flags&fConnecting == 0 {
			c.flags |= fConnecting
			c.ci = int32(len(l.connecting))
			l.connecting = append(l.connecting, c)
		}
		l.scheduleSweep(c.deadline)
		return
	}
	if c.tries == 0 {
		l.p.log.Warn().Str("frontend", c.fe.name).Str("backend", c.be.name).Msg("no server available")
	}
	c.close(l)
}

func (c *conn) pick() *server {
	snap := c.be.snap.Load()
	cand := snap.servers
	if c.tries > 0 {
		var buf [8]*server
		f := buf[:0]
		for _, s := range cand {
			if !c.hasTried(s) {
				f = append(f, s)
			}
		}
		cand = f
	}
	if len(cand) == 0 {
		return nil
	}
	ip := c.source().Addr()
	return snap.picker.pick(ip, cand)
}

func (c *conn) connectFailed(l *loop, err error) {
	l.dropConnecting(c)
	s := c.srv
	s.failed.Add(1)
	s.active.Add(-1)
	l.p.log.Debug().Err(err).Str("backend", c.be.name).Str("server", s.name).Msg("connect failed")
	c.srv = nil
	l.unregister(c.sfd, c)
	sysClose(int(c.sfd))
	c.sfd = -1
	c.connect(l)
}

func (c *conn) established(l *loop) {
	l.dropConnecting(c)
	c.flags |= fEstablished
	c.srv.total.Add(1)
	if c.be.snap.Load().proxyProto {
		dst := netipFromFd(int(c.cfd))
		hdr := appendProxyHeaderV2(make([]byte, 0, 52), c.source(), dst)
		if n, err := sysWrite(int(c.sfd), hdr); err != nil || n != len(hdr) {
			c.close(l)
		}
	}
}

func (c *conn) clientEvent(l *loop, ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fCRead
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fCHup
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fCWrite
	}
	if c.flags&fEstablished == 0 {
		if ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.close(l) // client gone while we connect
		}
		return
	}
	c.run(l)
}

func (c *conn) serverEvent(l *loop, ev uint32) {
	if c.flags&fEstablished == 0 {
		if ev&unix.EPOLLERR != 0 || ev&unix.EPOLLOUT == 0 {
			err, _ := unix.GetsockoptInt(int(c.sfd), unix.SOL_SOCKET, unix.SO_ERROR)
			c.connectFailed(l, unix.Errno(err))
			return
		}
		c.established(l)
		if c.flags&fClosed != 0 {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fSRead
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fSHup
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.flags |= fSWrite
	}
	c.run(l)
}

// close closes both sides and releases everything the connection holds.
func (c *conn) close(l *loop) {
	if c.flags&fClosed != 0 {
		return
	}
	l.dropConnecting(c)
	c.flags |= fClosed
	l.load.Add(-1)
	if l.fdRetryAt != 0 {
		l.fdRetryAt = l.now // fds freed: parked clients and accepting retry now
	}
	l.unregister(c.cfd, c)
	sysClose(int(c.cfd))
	if c.sfd >= 0 {
		l.unregister(c.sfd, c)
		sysClose(int(c.sfd))
	}
	for d, p := range c.pipes {
		if p != nil {
			c.pipes[d] = nil
			l.putPipe(p)
		}
	}
	if c.srv != nil {
		c.srv.active.Add(-1)
		c.srv = nil
	}
	c.release(l.p)
}

// closeUnadopted closes a connection no loop has registered.
func (c *conn) closeUnadopted(p *Proxy) {
	c.flags |= fClosed
	sysClose(int(c.cfd))
	c.release(p)
}

func (c *conn) release(p *Proxy) {
	c.fe.active.Add(-1)
	p.active.Add(-1)
	p.unadmit(c.fe)
}

func netipFromFd(fd int) netip.AddrPort {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return sockaddrToAddrPort(sa)
}

func closeFd(fd int) { sysClose(fd) }
