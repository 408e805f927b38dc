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
	if s.admin == a {
		return nil
	}
	s.admin = a
	s.stopDrain()
	switch a {
	case AdminDrain:
		gen := s.drainGen
		s.drainStop = p.afterFunc(b.drainTimeout(), func() {
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
	if s.drainStop != nil {
		s.drainStop()
		s.drainStop = nil
	}
}

func afterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
