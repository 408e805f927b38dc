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
//     IFA_F_NODAD (usable at once, not tentative) and preferred lifetime 0
//     (deprecated, so RFC 6724 source selection never picks it). Operations
//     are idempotent.
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
//   - VRRPConn: the raw IPv4 socket for IP protocol 112 (RFC 9568 section
//     5.1.1): group 224.0.0.18 joined on one interface only, TTL 255, TOS 0xc0
//     (DSCP CS6, as keepalived), multicast loopback off, bound to the device;
//     or unicast to a peer list. Received TTL and destination come from
//     control messages so the runner can drop TTL != 255 and its own packets.
//     Over IPv6 (section 5.1.2; an IPv6 VRRPConfig.Source or IPv6 set), the
//     raw IPv6 socket: ff02::12 joined on the interface only, unicast and
//     multicast hop limit 255, loopback off, bound to the device, sent from
//     the link-local address (LinkLocal) in multicast mode, received hop
//     limit and destination from control messages. The checksum (with the
//     IPv6 pseudo-header) is computed and verified in user space by package
//     vrrp; IPV6_CHECKSUM is not set.
//   - Sysctls, InterfaceAddrs, LocalAddrs and LinkLocal: small helpers.
//
// # What it does not implement
//
//   - The VRRP packet codec and the decisions (which live in package vrrp),
//     the GARP refresh schedule (the daemon calls Burst), and the checks of
//     received packets (the runner drops by TTL, source and checksum).
//   - Anything on other operating systems: the stubs in netcfg_other.go let
//     the module build and return errors wrapping errors.ErrUnsupported.
//
// Every operation that can fail returns an error of the form
// "netcfg: OP THING on IFNAME: cause" that wraps the cause, so
// errors.Is(err, os.ErrPermission) reports a missing CAP_NET_ADMIN or
// CAP_NET_RAW.
package netcfg
