//go:build linux

package proxy

import (
	"errors"
	"net/netip"
	"slices"
	"time"
)

// Update applies a new configuration: only the differences. Established
// connections are never dropped by a reload (even to removed servers);
// listeners of unchanged binds are untouched; new binds are bound at once
// if the proxy is listening.
func (p *Proxy) Update(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.apply(cfg)
	var errs []error
	for _, fe := range p.frontends {
		if !fe.listening {
			continue
		}
		for _, a := range fe.binds {
			if fe.listeners[a] != nil {
				continue
			}
			ln, err := p.bind(fe, a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.serveLocked(fe, a, ln)
		}
	}
	return errors.Join(errs...)
}

// apply makes the proxy's frontends and backends match cfg, reusing what is
// unchanged. It does not bind new addresses. p.mu is held.
func (p *Proxy) apply(cfg Config) {
	p.maxConn.Store(int64(cfg.MaxConn))
	maxPipes := cfg.MaxPipes
	if maxPipes == 0 {
		maxPipes = cfg.MaxConn / 2
	}
	p.maxPipes.Store(int64(maxPipes))
	backends := make(map[string]*backend, len(cfg.Backends))
	for _, bc := range cfg.Backends {
		b := p.backends[bc.Name]
		if b == nil {
			b = &backend{name: bc.Name}
		}
		if b.picker == nil || b.cfg.Balance != bc.Balance {
			b.picker = newPicker(bc.Balance)
		}
		servers := make([]*server, 0, len(bc.Servers))
		for _, sc := range bc.Servers {
			s := b.server(sc.Name)
			if s == nil || s.addr != sc.Addr {
				s = newServer(sc)
			}
			servers = append(servers, s)
		}
		for _, old := range b.servers {
			if !slices.Contains(servers, old) {
				old.stopDrain() // its connections stay until they end
			}
		}
		b.cfg = bc
		b.cfg.Servers = slices.Clone(bc.Servers)
		b.servers = servers
		b.rebuild(p)
		backends[bc.Name] = b
	}
	for name, b := range p.backends {
		if backends[name] == nil {
			for _, s := range b.servers {
				s.stopDrain()
			}
		}
	}
	p.backends = backends

	var idleMin time.Duration
	frontends := make([]*frontend, 0, len(cfg.Frontends))
	for _, fc := range cfg.Frontends {
		fe := p.frontend(fc.Name)
		if fe == nil {
			fe = &frontend{name: fc.Name, listeners: make(map[netip.AddrPort]*listener)}
		}
		fe.be.Store(backends[fc.Backend])
		fe.maxConn.Store(int64(fc.MaxConn))
		ct := fc.ConnectTimeout
		if ct == 0 {
			ct = DefaultConnectTimeout
		}
		fe.connectTimeout.Store(int64(ct))
		fe.idle.Store(int64(fc.IdleTimeout))
		if fc.IdleTimeout > 0 && (idleMin == 0 || fc.IdleTimeout < idleMin) {
			idleMin = fc.IdleTimeout
		}
		fe.binds = slices.Clone(fc.Binds)
		fe.unlisten(p, func(a netip.AddrPort) bool { return slices.Contains(fe.binds, a) })
		frontends = append(frontends, fe)
	}
	for _, fe := range p.frontends {
		if !slices.Contains(frontends, fe) {
			fe.unlisten(p, nil) // its connections stay until they end
		}
	}
	p.frontends = frontends
	p.idleMin.Store(int64(idleMin))
	p.gate.signal() // limits may have been raised
}

func (p *Proxy) frontend(name string) *frontend {
	for _, fe := range p.frontends {
		if fe.name == name {
			return fe
		}
	}
	return nil
}
