//go:build linux

package proxy

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// adoptKey names an adopted listener: Listen uses it for the frontend of
// that name binding that address.
type adoptKey struct {
	frontend string
	addr     netip.AddrPort
}

// Adopt takes over what an old process's Freeze exported, in the new
// process, after New (and Update) and before Run:
//
//   - listeners: Listen (and Update) use an adopted listener of the same
//     frontend name and address instead of binding; CloseAdopted closes
//     those left unused (call it once the config's listeners are up; Run's
//     end closes them too).
//   - connections join the loops with their frontend, backend and server
//     (counted in the active counts, so leastconn sees them), pending
//     bytes (written first), half-close state, deadlines and counters.
//     One whose frontend, backend or server is gone in this config is
//     still served to its end, never reset.
//   - the cumulative counters of frontends and servers of the same names
//     are added to this proxy's.
//
// Nothing moves before Run: the connections join their loops on its first
// turn. What closes connections in between (SetAdmin, SetDrainLeft,
// SetHealth with CloseOnDown, CloseConns) closes adopted ones too. Adopted
// while Run runs, they join before their loop's next command (a Freeze
// exports them). A malformed Handoff is refused whole (nothing adopted).
// Adopt takes ownership of files: it closes every one of them, used or
// not, on success and on error (it keeps duplicates of those it uses).
func (p *Proxy) Adopt(h *Handoff, files []*os.File) error {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if h == nil {
		return nil
	}
	if err := h.check(len(files)); err != nil {
		return fmt.Errorf("proxy: adopt: %w", err)
	}
	// Duplicate every fd first: after this nothing can fail.
	var dups []int
	dup := func(i int) (int, error) {
		fd, err := dupFile(files[i])
		if err == nil {
			dups = append(dups, fd)
			// The loops need it; it is set already unless someone cleared
			// it (os.File.Fd on a file made by net does).
			err = unix.SetNonblock(fd, true)
		}
		return fd, err
	}
	lfds := make([]int, len(h.Listeners))
	cfds := make([][2]int, len(h.Conns))
	err := func() error {
		for i, hl := range h.Listeners {
			fd, err := dup(hl.FD)
			if err != nil {
				return err
			}
			lfds[i] = fd
		}
		for i, hc := range h.Conns {
			cfds[i] = [2]int{-1, -1}
			fd, err := dup(hc.ClientFD)
			if err != nil {
				return err
			}
			cfds[i][0] = fd
			if hc.ServerFD >= 0 {
				if cfds[i][1], err = dup(hc.ServerFD); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	if err != nil {
		for _, fd := range dups {
			unix.Close(fd)
		}
		return fmt.Errorf("proxy: adopt: %w", err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, fd := range dups {
			unix.Close(fd)
		}
		return ErrClosed
	}
	if p.adopted == nil {
		p.adopted = make(map[adoptKey]*rawListener)
	}
	for i, hl := range h.Listeners {
		k := adoptKey{hl.Frontend, hl.Addr}
		if p.adopted[k] != nil {
			unix.Close(lfds[i])
			continue
		}
		p.adopted[k] = &rawListener{fd: lfds[i], adopted: true}
	}
	r := resolver{p: p, fes: map[string]*frontend{}, bes: map[string]*backend{}}
	per := make([][]*conn, len(p.loops))
	for i, hc := range h.Conns {
		c := r.conn(&hc, cfds[i])
		k := int(p.nextLoop.Add(1)) % len(p.loops)
		per[k] = append(per[k], c)
		p.loops[k].load.Add(1)
	}
	// The loop's own list, not queued closures: a command given before Run
	// that closes connections (a server put in maintenance, a drain carried
	// over with no time left) runs at once and must find these too.
	for k, cs := range per {
		if len(cs) > 0 {
			p.loops[k].async(func(l *loop) { l.adopting = append(l.adopting, cs...) })
		}
	}
	p.addCounters(h)
	p.log.Info().Int("listeners", len(h.Listeners)).Int("conns", len(h.Conns)).Msg("adopted from the old process")
	return nil
}

// check validates a Handoff against the number of files that came with it.
func (h *Handoff) check(nfiles int) error {
	fd := func(i int) error {
		if i < 0 || i >= nfiles {
			return fmt.Errorf("fd index %d out of range (%d files)", i, nfiles)
		}
		return nil
	}
	for _, hl := range h.Listeners {
		if err := fd(hl.FD); err != nil {
			return fmt.Errorf("listener %s %v: %w", hl.Frontend, hl.Addr, err)
		}
	}
	for _, hc := range h.Conns {
		if err := fd(hc.ClientFD); err != nil {
			return fmt.Errorf("connection from %v: %w", hc.Client, err)
		}
		switch hc.State {
		case ConnEstablished, ConnConnecting:
			if err := fd(hc.ServerFD); err != nil {
				return fmt.Errorf("connection from %v: server: %w", hc.Client, err)
			}
			if hc.Server == "" {
				return fmt.Errorf("connection from %v: %s without a server", hc.Client, hc.State)
			}
		case ConnWaiting:
			if hc.ServerFD != -1 {
				return fmt.Errorf("connection from %v: waiting with a server fd", hc.Client)
			}
		default:
			return fmt.Errorf("connection from %v: unknown state %q", hc.Client, hc.State)
		}
	}
	return nil
}

// dupFile duplicates f's descriptor (close-on-exec) without touching its
// blocking mode (os.File.Fd may clear O_NONBLOCK, shared with the old
// process's copy).
func dupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	return nfd, nil
}

// addCounters adds the old process's cumulative counters. p.mu is held.
func (p *Proxy) addCounters(h *Handoff) {
	for _, hf := range h.Frontends {
		if fe := p.frontend(hf.Name); fe != nil {
			fe.total.Add(hf.TotalConns)
			fe.bytesIn.Add(hf.BytesIn)
			fe.bytesOut.Add(hf.BytesOut)
		}
	}
	for _, hs := range h.Servers {
		if b := p.backends[hs.Backend]; b != nil {
			if s := b.server(hs.Name); s != nil {
				s.total.Add(hs.TotalConns)
				s.failed.Add(hs.FailedConns)
			}
		}
	}
}

// CloseAdopted closes the adopted listeners that Listen has not used
// (frontend or address gone from the config) and returns how many.
func (p *Proxy) CloseAdopted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closeAdoptedLocked()
}

func (p *Proxy) closeAdoptedLocked() int {
	n := 0
	for k, ln := range p.adopted {
		ln.close()
		delete(p.adopted, k)
		p.log.Info().Str("frontend", k.frontend).Stringer("bind", k.addr).Msg("adopted listener not in the config: closed")
		n++
	}
	return n
}

// takeAdopted returns the adopted listener for fe's address a, if any,
// and forgets it. p.mu is held.
func (p *Proxy) takeAdopted(fe *frontend, a netip.AddrPort) *rawListener {
	k := adoptKey{fe.name, a}
	ln := p.adopted[k]
	if ln != nil {
		delete(p.adopted, k)
	}
	return ln
}

// resolver finds, for adopted connections, this proxy's frontend, backend
// and server of the names the old process gave, or detached ones that
// serve the connection to its end without showing in Status. p.mu is held.
type resolver struct {
	p   *Proxy
	fes map[string]*frontend // detached, by name
	bes map[string]*backend
}

func (r *resolver) frontend(name string) *frontend {
	if fe := r.p.frontend(name); fe != nil {
		return fe
	}
	fe := r.fes[name]
	if fe == nil {
		fe = &frontend{name: name, listeners: map[netip.AddrPort]*listener{}}
		fe.connectTimeout.Store(int64(DefaultConnectTimeout))
		fe.be.Store(r.backend(""))
		r.fes[name] = fe
	}
	return fe
}

// backend returns the backend of that name, or a detached one with no
// servers (a connect retry through it finds none).
func (r *resolver) backend(name string) *backend {
	if b := r.p.backends[name]; b != nil && name != "" {
		return b
	}
	b := r.bes[name]
	if b == nil {
		b = &backend{name: name, picker: &leastConn{}}
		b.snap.Store(&snapshot{picker: b.picker})
		r.bes[name] = b
	}
	return b
}

func (r *resolver) conn(hc *HandoffConn, fds [2]int) *conn {
	p := r.p
	fe := r.frontend(hc.Frontend)
	var be *backend
	if b := p.backends[hc.Backend]; b != nil {
		be = b
	} else if hc.State == ConnWaiting {
		be = fe.be.Load() // nothing chosen yet: as a new connection would
	} else {
		be = r.backend(hc.Backend)
	}
	mono := func(t time.Time) int64 { return int64(t.Sub(p.epoch)) }
	c := &conn{fe: fe, be: be, cfd: int32(fds[0]), sfd: int32(fds[1]),
		last: mono(hc.LastActive)}
	c.setSource(hc.Client)
	c.setPending(0, hc.ToServer)
	c.setPending(1, hc.ToClient)
	for i, b := range [4]bool{hc.ClientEOF, hc.ServerShut, hc.ServerEOF, hc.ClientShut} {
		if b {
			c.flags |= [4]uint32{fC2SEOF, fC2SShut, fS2CEOF, fS2CShut}[i]
		}
	}
	if hc.Server != "" {
		if s := be.server(hc.Server); s != nil && s.addr == hc.ServerAddr {
			c.srv = s
		} else {
			c.srv = newServer(ServerConfig{Name: hc.Server, Addr: hc.ServerAddr}) // detached
		}
		c.srv.active.Add(1)
	}
	for _, name := range hc.Tried {
		if s := be.server(name); s != nil && int(c.tries) < maxTries {
			c.tried[c.tries] = s.id
			c.tries++
		}
	}
	switch hc.State {
	case ConnEstablished:
		c.flags |= fEstablished
	case ConnConnecting:
		c.deadline = mono(hc.ConnectDeadline)
		if c.srv != nil && int(c.tries) < maxTries && !c.hasTried(c.srv) {
			c.tried[c.tries] = c.srv.id
			c.tries++
		}
	}
	fe.active.Add(1)
	fe.slots.Add(1)
	p.active.Add(1)
	p.slots.Add(1)
	return c
}

// queue runs fn on the loop goroutine: soon if it runs, or on its first
// turn once Run starts it (never inline, unlike async).
func (l *loop) queue(fn func(*loop)) {
	l.mu.Lock()
	l.inbox = append(l.inbox, queued{fn: fn})
	w := l.wakeLocked()
	l.mu.Unlock()
	if w {
		l.wake()
	}
}

// joinAdopted joins the connections adopted before Run, or while it ran.
func (l *loop) joinAdopted() {
	cs := l.adopting
	l.adopting = nil
	for _, c := range cs {
		l.join(c)
	}
}

// join registers an adopted connection with the loop and carries on from
// its state: an established one writes its pending bytes first, a
// connecting one waits for its connect (its deadline kept), a waiting one
// connects now.
func (l *loop) join(c *conn) {
	c.cid = l.id()
	if err := sysEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.cfd), &unix.EpollEvent{Events: connEvents, Fd: c.cfd, Pad: c.cid}); err != nil {
		l.p.log.Error().Err(err).Str("frontend", c.fe.name).Msg("adopt: epoll_ctl")
		c.close(l)
		return
	}
	l.register(c.cfd, c)
	if c.sfd >= 0 {
		c.sid = l.id()
		if err := sysEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.sfd), &unix.EpollEvent{Events: connEvents, Fd: c.sfd, Pad: c.sid}); err != nil {
			l.p.log.Error().Err(err).Str("frontend", c.fe.name).Msg("adopt: epoll_ctl")
			c.close(l)
			return
		}
		l.register(c.sfd, c)
	}
	switch {
	case c.flags&fEstablished != 0:
		// Edge-triggered: the registration reports what is ready now;
		// assuming everything is costs at most an EAGAIN each.
		c.flags |= fCRead | fCWrite | fSRead | fSWrite
		c.run(l)
	case c.sfd >= 0:
		c.flags |= fConnecting
		c.ci = int32(len(l.connecting))
		l.connecting = append(l.connecting, c)
		l.scheduleSweep(c.deadline)
	default:
		c.connect(l)
	}
}
