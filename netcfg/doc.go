// Package netcfg is vipd's access to the host network stack: everything the
// daemon needs to claim a virtual IP (VIP) and to speak VRRP on the wire.
//
// # What it implements
//
//   - Addresses: add, remove and query a VIP with netlink (RTM_NEWADDR,
//     RTM_DELADDR). The VIP is added as an extra address that the kernel never
//     picks as the node's source address: a /32 by default, which Linux lists
//     after the node address; a shorter prefix inside the node's subnet becomes
//     a true secondary and is added with IFA_F_NOPREFIXROUTE so no duplicate
//     subnet route appears. An IPv6 VIP (/128 by default) is added with
//     IFA_F_NODAD (never tentative) and preferred lifetime 0 (deprecated,
//     so RFC 6724 source selection never picks it); as the kernel installs
//     its local route a moment later, from a workqueue, AddVIP waits for
//     that route so the VIP takes traffic when it returns. Operations are
//     idempotent.
//   - WatchVIPs and WatchLink: netlink subscriptions that report a VIP removed
//     behind vipd's back (systemd-networkd restarts do this) and the
//     operational state of an interface (for the interface tracker).
//   - Announcer and Burst: gratuitous ARP for an IPv4 VIP, framed like
//     keepalived 2.2.7 (ARP request with sender IP = target IP = VIP and target
//     MAC ff:ff:ff:ff:ff:ff, broadcast from the interface's own MAC), plus an
//     ARP reply of the same shape. See vrrp/testdata/README.md. For an IPv6
//     VIP, NewAnnouncer's announcer sends an unsolicited neighbour
//     advertisement (RFC 4861 section 7.2.6: override set, target = VIP,
//     target link-layer address = the interface's MAC) to ff02::1 from the
//     link-local address with hop limit 255 (github.com/mdlayher/ndp).
//   - VRRPConn (ListenVRRP): the raw socket for IP protocol 112, over IPv4
//     (RFC 9568 section 5.1.1) or, with an IPv6 VRRPConfig.Source or IPv6
//     set, over IPv6 (section 5.1.2). Both families are set up by one list
//     of steps reading a per-family table of socket options: bound to the
//     device, the group (224.0.0.18 or ff02::12) joined on that interface
//     only, or unicast to a peer list; TTL (hop limit) 255, TOS (traffic
//     class) 0xc0 (DSCP CS6, as keepalived), multicast loopback off; over
//     IPv4 DF clear. Over IPv6 in multicast mode adverts are sent from the
//     link-local address (LinkLocal). ReadFrom reports the received TTL (hop
//     limit) and destination from control messages, and -1 as the TTL when
//     the kernel sent none, so the runner can apply section 7.1's TTL rule to
//     multicast adverts and drop its own packets. The IPv6 checksum (with
//     the pseudo-header) is computed and verified in user space by package
//     vrrp; IPV6_CHECKSUM is not set.
//   - Probe: who holds an address on the segment, asked with nothing but
//     probes (vipd doctor): RFC 5227 ARP probes (sender IP 0.0.0.0) for
//     IPv4, neighbour solicitations from the link-local address for IPv6.
//   - Sysctls, LocalAddrs and LinkLocal: small helpers.
//
// # Files
//
// One concern per file, the portable part (interfaces, codecs, config
// checks) in NAME.go and the Linux part in NAME_linux.go: addresses (VIPs
// with netlink, LocalAddrs, LinkLocal), watch (the reconciling netlink
// subscription behind WatchVIPs and WatchLink), announce (GARP frames,
// unsolicited neighbour advertisements, Burst), probe (ARP probes and
// neighbour solicitations for vipd doctor), vrrpconn (the VRRP socket
// and its per-family setup table) and sysctl. netcfg_other.go holds the
// stubs for other operating systems.
//
// # What it does not implement
//
//   - The VRRP packet codec and the decisions (which live in package vrrp),
//     the GARP refresh schedule (the daemon calls Burst), and the checks of
//     received packets (the runner drops by TTL, source and checksum).
//   - Anything on other operating systems: the stubs in netcfg_other.go let
//     the package build there and fail with "not supported on GOOS", an
//     error wrapping errors.ErrUnsupported. NewAnnouncerConn, Burst and
//     LocalAddrs work everywhere.
//
// Every operation that can fail returns an error of the form
// "netcfg: OP THING on IFNAME: cause" that wraps the cause, so
// errors.Is(err, os.ErrPermission) reports a missing CAP_NET_ADMIN or
// CAP_NET_RAW.
package netcfg
