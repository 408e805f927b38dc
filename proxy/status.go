//go:build linux

package proxy

import (
	"net/netip"
	"slices"
	"time"
)

// Status is a point-in-time view of the proxy.
type Status struct {
	Frontends []FrontendStatus `json:"frontends"`
	Backends  []BackendStatus  `json:"backends"`
	// ActiveConns counts every open proxied connection.
	ActiveConns int64 `json:"active_conns"`
}

// FrontendStatus describes one frontend.
type FrontendStatus struct {
	Name        string           `json:"name"`
	Binds       []netip.AddrPort `json:"binds"`
	Backend     string           `json:"backend"`
	Listening   bool             `json:"listening"`
	ActiveConns int64            `json:"active_conns"`
	TotalConns  int64            `json:"total_conns"`
	BytesIn     uint64           `json:"bytes_in"`
	BytesOut    uint64           `json:"bytes_out"`
}

// BackendStatus describes one backend.
type BackendStatus struct {
	Name     string         `json:"name"`
	FailOpen bool           `json:"fail_open"`
	Servers  []ServerStatus `json:"servers"`
}

// ServerStatus describes one server.
type ServerStatus struct {
	Name    string         `json:"name"`
	Addr    netip.AddrPort `json:"addr"`
	State   State          `json:"state"`
	Healthy bool           `json:"healthy"`
	Admin   string         `json:"admin"`
	// DrainEnds is when a DRAIN server's remaining connections are closed
	// (its backend's DrainTimeout after the drain began); absent otherwise.
	DrainEnds   time.Time `json:"drain_ends,omitzero"`
	ActiveConns int64     `json:"active_conns"`
	TotalConns  int64     `json:"total_conns"`
	FailedConns int64     `json:"failed_conns"`
}

// Status returns counters and states. Connection counts are exact: they
// move when a connection is accepted, connected and closed.
func (p *Proxy) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{ActiveConns: p.active.Load()}
	for _, fe := range p.frontends {
		fs := FrontendStatus{
			Name:        fe.name,
			Binds:       slices.Clone(fe.binds),
			Listening:   len(fe.listeners) > 0,
			ActiveConns: fe.active.Load(),
			TotalConns:  fe.total.Load(),
			BytesIn:     fe.bytesIn.Load(),
			BytesOut:    fe.bytesOut.Load(),
		}
		if b := fe.be.Load(); b != nil {
			fs.Backend = b.name
		}
		st.Frontends = append(st.Frontends, fs)
	}
	names := make([]string, 0, len(p.backends))
	for n := range p.backends {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b := p.backends[n]
		bs := BackendStatus{Name: b.name, FailOpen: b.failOpen}
		for _, s := range b.servers {
			bs.Servers = append(bs.Servers, ServerStatus{
				Name: s.name, Addr: s.addr, State: s.state(), Healthy: s.up, Admin: s.admin.String(), DrainEnds: s.drainEnds,
				ActiveConns: s.active.Load(), TotalConns: s.total.Load(), FailedConns: s.failed.Load(),
			})
		}
		st.Backends = append(st.Backends, bs)
	}
	return st
}

// Healthy counts the UP servers (not DOWN, DRAIN or MAINT) behind a
// frontend, for the VRRP "backends" tracker. 0 for an unknown frontend.
func (p *Proxy) Healthy(frontend string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	fe := p.frontend(frontend)
	if fe == nil {
		return 0
	}
	b := fe.be.Load()
	if b == nil {
		return 0
	}
	n := 0
	for _, s := range b.servers {
		if s.state() == StateUp {
			n++
		}
	}
	return n
}
