package daemon

import (
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/fdlimit"
	"github.com/vipd/vipd/proxy"
)

// proxyConfig maps the file's frontends and backends onto the proxy: a
// frontend binds its instance's VIPs (or its vip, or its fixed address).
func proxyConfig(cfg *config.Config) proxy.Config {
	pc := proxy.Config{MaxConn: fdlimit.ForConfig(cfg).Limit()}
	balance := map[string]string{}
	for _, f := range cfg.Frontends {
		pc.Frontends = append(pc.Frontends, proxy.FrontendConfig{
			Name: f.Name, Backend: f.Backend, MaxConn: f.MaxConn, Binds: cfg.Binds(f),
			ConnectTimeout: f.ConnectTimeout, IdleTimeout: f.IdleTimeout,
		})
		if _, ok := balance[f.Backend]; !ok {
			balance[f.Backend] = f.Balance
		}
	}
	for _, b := range cfg.Backends {
		bc := proxy.BackendConfig{
			Name: b.Name, Balance: balance[b.Name], DrainTimeout: b.DrainTimeout,
			ProxyProtocol: b.ProxyProtocol, CloseOnDown: b.CloseOnDown,
		}
		for _, s := range b.Servers {
			bc.Servers = append(bc.Servers, proxy.ServerConfig{Name: s.Name, Addr: s.Addr})
		}
		pc.Backends = append(pc.Backends, bc)
	}
	return pc
}
