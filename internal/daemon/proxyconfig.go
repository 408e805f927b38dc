package daemon

import (
	"net/netip"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/proxy"
)

func netipAddrPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// proxyConfig maps the file's frontends and backends onto the proxy: a
// frontend binds every VIP on its port, or its fixed address.
func proxyConfig(cfg *config.Config, node *config.Node) proxy.Config {
	pc := proxy.Config{MaxConn: cfg.Global.MaxConn}
	balance := map[string]string{}
	for _, f := range cfg.Frontends {
		fc := proxy.FrontendConfig{
			Name: f.Name, Backend: f.Backend, MaxConn: f.MaxConn,
			ConnectTimeout: f.ConnectTimeout, IdleTimeout: f.IdleTimeout,
		}
		fc.Binds = cfg.Binds(f)
		if _, ok := balance[f.Backend]; !ok {
			balance[f.Backend] = f.Balance
		}
		pc.Frontends = append(pc.Frontends, fc)
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

func instanceName(cfg *config.Config) string {
	if cfg.VRRP == nil {
		return "single"
	}
	return cfg.Instances[0].Name
}
