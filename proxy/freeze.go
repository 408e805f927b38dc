//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// freezeMax bounds Freeze when its ctx has no earlier deadline: a loop
// answers its command queue within one wake-up, so this is only reached
// if a loop is stuck.
const freezeMax = 2 * time.Second

// freezeState is one handoff under way. decided is closed by Resume or
// Abandon (or by a failed Freeze, as a resume); abandon is written before.
type freezeState struct {
	// names are the servers' names by id, read under p.mu before the
	// loops park: the loops export tried servers by name and may not read
	// the backends' server lists, which Update rewrites under p.mu. A
	// server added since is named from its backend's snapshot
	// (conn.serverName).
	names    map[uint32]string
	decided  chan struct{}
	abandon  bool
	complete bool // Freeze returned successfully: Resume/Abandon may decide
}

// connExport is a loop's view of one connection at the freeze: the fds
// are the loop's own, duplicated by Freeze once every loop is parked.
type connExport struct {
	h        HandoffConn
	cfd, sfd int32
}

// Freeze stops every event loop at a safe point (between events, through
// its command queue): first every loop stops accepting, then each exports
// its connections and waits. From then on nothing is read, written,
// accepted or closed until Resume or Abandon; new clients wait in the
// listeners' backlog (which the adopter accepts from). Bytes sitting in a
// splice pipe are read out into the Handoff, so no pipe crosses over.
//
// The files are duplicates (close-on-exec) of the proxy's sockets, for
// SCM_RIGHTS; the caller owns and closes them. The proxy keeps its own fds
// until Abandon. Freeze returns within ctx (and 2 s at most); on error
// nothing stays frozen. Listen, Unlisten, Update and CloseConns called
// during a freeze block until Resume or Abandon: do not call them from the
// goroutine that decides. The loops answer once Run runs them. Only
// Listen's listeners are exported, not those given to Serve, nor the
// connections Serve's goroutine accepts from a listener that is not TCP.
func (p *Proxy) Freeze(ctx context.Context) (*Handoff, []*os.File, error) {
	ctx, cancel := context.WithTimeout(ctx, freezeMax)
	defer cancel()
	p.frzMu.Lock()
	if p.frz != nil {
		p.frzMu.Unlock()
		return nil, nil, ErrFrozen
	}
	fs := &freezeState{decided: make(chan struct{})}
	p.frz = fs
	p.frzMu.Unlock()

	h, files, err := p.freeze(ctx, fs)
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		p.frzMu.Lock()
		p.frz = nil
		p.frzMu.Unlock()
		if err != ErrClosed {
			err = fmt.Errorf("proxy: freeze: %w", err)
		}
		return nil, nil, err
	}
	p.frzMu.Lock()
	fs.complete = true
	p.frzMu.Unlock()
	p.log.Info().Int("listeners", len(h.Listeners)).Int("conns", len(h.Conns)).Msg("frozen for a handoff")
	return h, files, nil
}

// freeze does Freeze's work; on error it has thawed every loop and returns
// the files it made so far for the caller to close.
func (p *Proxy) freeze(ctx context.Context, fs *freezeState) (*Handoff, []*os.File, error) {
	h := &Handoff{}
	var files []*os.File
	addFile := func(fd int32, name string) (int, error) {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("dup %s fd: %w", name, err)
		}
		files = append(files, os.NewFile(uintptr(nfd), name))
		return len(files) - 1, nil
	}

	// Listeners and the counters' owners, while nothing is frozen: a
	// caller blocked on a frozen loop may hold p.mu later.
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	for _, fe := range p.frontends {
		for a, l := range fe.listeners {
			i, err := addFile(int32(l.ln.fd), "vipd-listener")
			if err != nil {
				p.mu.Unlock()
				return nil, files, err
			}
			h.Listeners = append(h.Listeners, HandoffListener{Frontend: fe.name, Addr: a, FD: i})
		}
	}
	fes := append([]*frontend(nil), p.frontends...)
	type namedServer struct {
		backend string
		s       *server
	}
	var servers []namedServer
	fs.names = make(map[uint32]string)
	for _, b := range p.backends {
		for _, s := range b.servers {
			servers = append(servers, namedServer{b.name, s})
			fs.names[s.id] = s.name
		}
	}
	p.mu.Unlock()

	// Phase 1: no loop accepts any more, so none hands a new connection
	// to another that has parked already.
	// Queued, never run inline (as async does before a loop has started):
	// parkForHandoff blocks its caller.
	acks := make(chan struct{}, len(p.loops))
	for _, l := range p.loops {
		l.queue(func(l *loop) {
			l.frozen = true
			acks <- struct{}{}
		})
	}
	for range p.loops {
		select {
		case <-acks:
		case <-ctx.Done():
			for _, l := range p.loops {
				l.queue(func(l *loop) { l.thaw() }) // after the freeze
			}
			return nil, files, ctx.Err()
		}
	}

	// Phase 2: each loop exports its connections and parks until decided.
	exports := make(chan []connExport, len(p.loops))
	for _, l := range p.loops {
		l.queue(func(l *loop) { l.parkForHandoff(fs, exports) })
	}
	var all []connExport
	for range p.loops {
		select {
		case e := <-exports:
			all = append(all, e...)
		case <-ctx.Done():
			close(fs.decided) // parked loops resume, the others will not park
			return nil, files, ctx.Err()
		}
	}
	// Every loop is parked: its fds stay as they are until decided.
	for _, e := range all {
		i, err := addFile(e.cfd, "vipd-client")
		if err == nil {
			e.h.ClientFD, e.h.ServerFD = i, -1
			if e.sfd >= 0 {
				e.h.ServerFD, err = addFile(e.sfd, "vipd-server")
			}
		}
		if err != nil {
			close(fs.decided)
			return nil, files, err
		}
		h.Conns = append(h.Conns, e.h)
	}
	for _, fe := range fes {
		h.Frontends = append(h.Frontends, HandoffFrontend{Name: fe.name, TotalConns: fe.total.Load(),
			BytesIn: fe.bytesIn.Load(), BytesOut: fe.bytesOut.Load()})
	}
	for _, ns := range servers {
		h.Servers = append(h.Servers, HandoffServer{Backend: ns.backend, Name: ns.s.name,
			TotalConns: ns.s.total.Load(), FailedConns: ns.s.failed.Load()})
	}
	return h, files, nil
}

// thaw lets the loop accept again, from whatever waits in the backlogs.
func (l *loop) thaw() {
	l.frozen = false
	l.lnWork = true
}

// parkForHandoff exports the loop's connections and blocks the loop goroutine (a
// safe point: between events) until the handoff is decided, unless it
// was decided (a failed Freeze) before the loop got here.
func (l *loop) parkForHandoff(fs *freezeState, out chan<- []connExport) {
	select {
	case <-fs.decided:
	default:
		out <- l.export(fs.names)
		<-fs.decided
	}
	if fs.abandon {
		// The new process holds the same sockets: closing ours sends
		// nothing (no shutdown, no linger change, not the last reference).
		l.closeAll(nil)
		l.stop = true
		return
	}
	l.now = l.clock()
	l.thaw()
}

// Resume ends a freeze for a rollback: every loop carries on exactly
// where it stopped and accepting resumes. Bytes Freeze read out of splice
// pipes are written from the connection's buffer instead.
func (p *Proxy) Resume() error {
	p.frzMu.Lock()
	fs := p.frz
	if fs == nil || !fs.complete {
		p.frzMu.Unlock()
		return ErrNotFrozen
	}
	p.frz = nil
	p.frzMu.Unlock()
	close(fs.decided)
	p.log.Info().Msg("handoff rolled back: resumed")
	return nil
}

// Abandon ends a freeze after a successful handoff: the proxy closes its
// own fds of every connection and listener without shutdown(2), SO_LINGER
// or RST (the new process holds the same sockets), stops its loops, and
// afterwards holds no fds. Counters and logs do not report the connections
// as closed. The proxy is closed afterwards (ErrClosed); Run returns when
// its ctx is done. Without a freeze it does nothing.
func (p *Proxy) Abandon() {
	p.frzMu.Lock()
	fs := p.frz
	if fs == nil || !fs.complete {
		p.frzMu.Unlock()
		return
	}
	p.frz = nil
	p.frzMu.Unlock()
	fs.abandon = true
	close(fs.decided)
	// A parked loop holds own until it has let go and returned from run.
	for _, l := range p.loops {
		l.own.Lock()
		l.own.Unlock()
	}
	p.closeLoops()
	p.mu.Lock()
	p.closed = true
	n := 0
	for _, fe := range p.frontends {
		for a, l := range fe.listeners {
			l.ln.close()
			delete(fe.listeners, a)
			n++
		}
		fe.listening = false
	}
	for _, b := range p.backends {
		for _, s := range b.servers {
			s.stopDrain()
		}
	}
	p.closeAdoptedLocked()
	p.mu.Unlock()
	p.log.Info().Int("listeners", n).Msg("handed over to the new process")
}

// serverName names server id for a connection's export: from names, the
// servers Freeze saw before the loops parked; else the connection's own
// server (one the config no longer has); else the servers the
// connection's backend offers now, from the snapshot the loops pick from
// (one an Update added after Freeze looked, and the connection tried
// before its loop parked). Only a server added and removed again within
// the freeze goes unnamed: the new process may try it once more.
func (c *conn) serverName(id uint32, names map[uint32]string) (string, bool) {
	if name, ok := names[id]; ok {
		return name, true
	}
	if c.srv != nil && c.srv.id == id {
		return c.srv.name, true
	}
	if c.be != nil {
		for _, s := range c.be.snap.Load().servers {
			if s.id == id {
				return s.name, true
			}
		}
	}
	return "", false
}

// export reads every connection's splice pipes out into its pending
// bytes (so no pipe crosses over, and on Resume they are written first
// all the same) and describes each connection.
func (l *loop) export(names map[uint32]string) []connExport {
	p := l.p
	wall := func(t int64) time.Time { return p.epoch.Add(time.Duration(t)).Round(0) }
	var out []connExport
	var broken []*conn
	for _, c := range l.clients() {
		if !c.drainPipes(l) {
			broken = append(broken, c)
			continue
		}
		h := HandoffConn{
			Frontend: c.fe.name, Client: c.source(),
			ToServer: c.pending(0), ToClient: c.pending(1),
			ClientEOF: c.flags&fC2SEOF != 0, ServerShut: c.flags&fC2SShut != 0,
			ServerEOF: c.flags&fS2CEOF != 0, ClientShut: c.flags&fS2CShut != 0,
			LastActive: wall(c.last),
		}
		if c.be != nil {
			h.Backend = c.be.name
		}
		switch {
		case c.flags&fEstablished != 0:
			h.State = ConnEstablished
		case c.sfd >= 0:
			h.State = ConnConnecting
			h.ConnectDeadline = wall(c.deadline)
		default:
			h.State = ConnWaiting
		}
		if c.srv != nil {
			h.Server, h.ServerAddr = c.srv.name, c.srv.addr
		}
		for _, id := range c.tried[:c.tries] {
			if name, ok := c.serverName(id, names); ok {
				h.Tried = append(h.Tried, name)
			}
		}
		if idle := c.fe.idle.Load(); idle > 0 {
			h.IdleDeadline = wall(c.last + idle)
		}
		out = append(out, connExport{h: h, cfd: c.cfd, sfd: c.sfd})
	}
	for _, c := range broken {
		c.close(l)
	}
	return out
}

// drainPipes moves the bytes in c's splice pipes to its pending bytes and
// returns the pipes to the pool. A pipe and pending bytes never hold data
// in the same direction at once (pump reads only when both are empty), so
// the order of the bytes is kept. False if a pipe could not be read (the
// connection cannot be kept whole).
func (c *conn) drainPipes(l *loop) bool {
	for d, pp := range c.pipes {
		if pp == nil {
			continue
		}
		if pp.n > 0 {
			buf := make([]byte, pp.n)
			got := 0
			for got < len(buf) {
				n, err := sysRead(pp.r, buf[got:])
				if err == unix.EINTR {
					continue
				}
				if err != nil || n == 0 {
					l.p.log.Error().Err(errors.Join(err, errors.New("short read"))).Str("frontend", c.fe.name).
						Msg("freeze: reading a splice pipe")
					return false
				}
				got += n
			}
			c.setPending(d, append(buf, c.pending(d)...))
			pp.n = 0
		}
		c.pipes[d] = nil
		l.putPipe(pp)
	}
	return true
}
