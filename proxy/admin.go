//go:build linux

package proxy

import (
	"fmt"
	"time"
)

// closeServer closes the connections to s on every loop, without waiting.
func (p *Proxy) closeServer(s *server) {
	for _, l := range p.loops {
		l.async(func(l *loop) { l.closeAll(func(c *conn) bool { return c.srv == s }) })
	}
}

// SetHealth records a health-check result. Unknown names are ignored.
func (p *Proxy) SetHealth(backend, server string, up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.backends[backend]
	if b == nil {
		return
	}
	s := b.server(server)
	if s == nil || s.up == up {
		return
	}
	s.up = up
	p.log.Info().Str("backend", b.name).Str("server", s.name).Bool("up", up).Stringer("state", s.state()).Msg("server health changed")
	b.rebuild(p)
	if !up && b.cfg.CloseOnDown {
		p.closeServer(s)
	}
}

// SetAdmin sets a server ready, draining or in maintenance. Drain stops new
// connections and closes those left after the backend's DrainTimeout; maint
// closes its connections now.
func (p *Proxy) SetAdmin(backend, server string, a Admin) error {
	return p.setAdmin(backend, server, a, -1)
}

// SetDrainLeft puts a server in DRAIN whose remaining connections are
// closed after left rather than after the backend's whole DrainTimeout: a
// hitless restart carries a drain's deadline (ServerStatus.DrainEnds) over
// to the new process, so a restart never extends a drain. A left of 0 or
// less closes them at once.
func (p *Proxy) SetDrainLeft(backend, server string, left time.Duration) error {
	return p.setAdmin(backend, server, AdminDrain, max(left, 0))
}

// setAdmin is SetAdmin; left >= 0 sets a DRAIN's time left (even on a
// server already draining), < 0 takes the backend's DrainTimeout.
func (p *Proxy) setAdmin(backend, server string, a Admin, left time.Duration) error {
	if a > AdminMaint {
		return fmt.Errorf("proxy: invalid admin state %d", a)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.backends[backend]
	if b == nil {
		return fmt.Errorf("%w: backend %q", ErrUnknown, backend)
	}
	s := b.server(server)
	if s == nil {
		return fmt.Errorf("%w: server %q in backend %q", ErrUnknown, server, backend)
	}
	if s.admin == a && left < 0 {
		return nil
	}
	s.admin = a
	s.stopDrain()
	switch a {
	case AdminDrain:
		gen := s.drainGen
		d := b.drainTimeout()
		if left >= 0 {
			d = left
		}
		s.drainEnds = time.Now().Add(d)
		s.drainStop = p.afterFunc(d, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if s.admin == AdminDrain && s.drainGen == gen && !p.closed {
				p.log.Info().Str("backend", b.name).Str("server", s.name).Int64("conns", s.active.Load()).Msg("drain timeout: closing remaining connections")
				p.closeServer(s)
			}
		})
	case AdminMaint:
		p.closeServer(s)
	}
	p.log.Info().Str("backend", b.name).Str("server", s.name).Stringer("admin", a).Stringer("state", s.state()).Msg("server admin state changed")
	b.rebuild(p)
	return nil
}

func (s *server) stopDrain() {
	s.drainGen++
	s.drainEnds = time.Time{}
	if s.drainStop != nil {
		s.drainStop()
		s.drainStop = nil
	}
}

func afterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
