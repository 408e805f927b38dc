package daemon

import (
	"fmt"
	"net/netip"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/fdlimit"
	"github.com/vipd/vipd/proxy"
)

// proxyConfig maps the file's frontends and backends onto the proxy: a
// frontend binds every VIP on its port, or its fixed address. Without
// [global] maxconn the proxy-wide limit comes from RLIMIT_NOFILE and
// leaves the descriptors vipd needs for itself (internal/fdlimit).
func proxyConfig(cfg *config.Config, node *config.Node) proxy.Config {
	pc := proxy.Config{MaxConn: fdlimit.ForConfig(cfg).Limit()}
	balance := map[string]string{}
	for _, f := range cfg.Frontends {
		fc := proxy.FrontendConfig{
			Name: f.Name, Backend: f.Backend, MaxConn: f.MaxConn,
			ConnectTimeout: f.ConnectTimeout, IdleTimeout: f.IdleTimeout,
		}
		if f.Address.IsValid() {
			fc.Binds = []netip.AddrPort{netip.AddrPortFrom(f.Address, f.Port)}
		} else if cfg.VRRP != nil {
			for _, p := range cfg.VRRP.VIPs {
				fc.Binds = append(fc.Binds, netip.AddrPortFrom(p.Addr(), f.Port))
			}
		}
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
	return fmt.Sprintf("vrid-%d", cfg.VRRP.VRID)
}
