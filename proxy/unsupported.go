//go:build !linux

package proxy

// The proxy is Linux-only: its event loops are epoll sets of raw sockets,
// it moves bulk data with splice(2) and binds VIPs with IP_FREEBIND (see
// doc.go). Built for another OS, the package stops the build with this one
// error rather than a page of undefined epoll names; vipd is a Linux
// daemon, and the module's portable packages (config, vrrp, health,
// netcfg's stub) build everywhere.
var _ = vipd_proxy_builds_only_on_linux_epoll_splice_ip_freebind
