// Package doctor is `vipd doctor`: a preflight an operator runs on each node
// before starting vipd, and again while it runs. It looks at the host and
// the segment the way the daemon will use them and reports each problem as
// a finding: a severity, what was seen, and the fix.
//
// # What it checks
//
// For every VRRP instance: the interface exists and is up, the node address
// is on it, the IPv6 link-local address when VRRP runs over IPv6 multicast;
// the sysctls that break or weaken a takeover (rp_filter, arp_ignore,
// arp_announce, disable_ipv6 and accept_dad); the firewall (nftables, and
// iptables-legacy) for rules that drop VRRP (IP protocol 112, 224.0.0.18)
// or the status beacons; and, during a listen window, whether another host
// already answers for a VIP (RFC 5227 ARP probes, neighbour solicitations
// for IPv6), which VRRP routers speak on the VRID (a foreign router, a peer
// with another version, interval, checksum form or password, judged by the
// runner's own receive checks, vrrp.Checker) and whether every other node
// was heard (adverts or status beacons). For the node: something already
// listening on a frontend's port on the wildcard address (the
// kube-apiserver co-location trap, found by proxy's CheckBinds), every
// backend server's configured check run once from here, the config file's
// mode and the control socket's directory and group, and the warnings of
// `vipd check`.
//
// # What it does not do
//
// It sends nothing but probes (ARP probes with sender IP 0.0.0.0, neighbour
// solicitations, and the backends' own health checks), and only on the
// configured interfaces; it never adds or removes an address, binds a VIP
// or sends a VRRP advert, so it can run beside a running vipd (its raw
// sockets are listeners of their own). What the config maps to (instances,
// probes, frontends) comes from package daemon (daemon.DoctorPlan), so
// doctor checks what the daemon would run. BGP sessions are not checked yet
// (see the place marked in run.go).
package doctor
