//go:build linux

package doctor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/netcfg"
)

// HostEnv is the real host: netlink, /proc/sys, the nft and iptables-save
// programs, raw sockets that only listen, and netcfg.Probe.
func HostEnv() Env {
	return Env{
		Links:   links,
		RouteIf: routeIf,
		Sysctl:  netcfg.NewSysctls().Get,
		Command: command,
		Stat: func(path string) (FileInfo, error) {
			fi, err := os.Stat(path)
			if err != nil {
				return FileInfo{}, err
			}
			st, _ := fi.Sys().(*syscall.Stat_t)
			out := FileInfo{Mode: fi.Mode()}
			if st != nil {
				out.UID, out.GID = int(st.Uid), int(st.Gid)
			}
			return out, nil
		},
		LookupGroup: func(name string) (int, error) {
			g, err := user.LookupGroup(name)
			if err != nil {
				return 0, err
			}
			return strconv.Atoi(g.Gid)
		},
		LookupUser: func(name string) (int, []int, error) {
			u, err := user.Lookup(name)
			if err != nil {
				return 0, nil, err
			}
			uid, _ := strconv.Atoi(u.Uid)
			ids, _ := u.GroupIds()
			var gids []int
			for _, id := range ids {
				if g, err := strconv.Atoi(id); err == nil {
					gids = append(gids, g)
				}
			}
			return uid, gids, nil
		},
		ListenVRRP: func(ifname string, ipv6 bool) (PacketSource, error) {
			// Multicast mode joins the group; nothing is ever written
			// on this socket.
			c, err := netcfg.ListenVRRP(netcfg.VRRPConfig{Interface: ifname, IPv6: ipv6})
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		ListenUDP: listenUDP,
		Probe:     netcfg.Probe,
	}
}

func links() ([]Link, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []Link
	for _, l := range ls {
		a := l.Attrs()
		lk := Link{Name: a.Name, AdminUp: a.Flags&net.FlagUp != 0,
			OperUp: a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown && a.RawFlags&unix.IFF_LOWER_UP != 0}
		for _, ad := range addrs {
			if ad.LinkIndex != a.Index || ad.IPNet == nil {
				continue
			}
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok {
				continue
			}
			ones, _ := ad.Mask.Size()
			lk.Addrs = append(lk.Addrs, Addr{Prefix: netip.PrefixFrom(ip.Unmap(), ones),
				Tentative: ad.Flags&unix.IFA_F_TENTATIVE != 0, DADFailed: ad.Flags&unix.IFA_F_DADFAILED != 0})
		}
		out = append(out, lk)
	}
	return out, nil
}

func routeIf(dst netip.Addr) (string, error) {
	rs, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		return "", fmt.Errorf("route to %s: %w", dst, err)
	}
	l, err := netlink.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}

func command(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin/", "/sbin/"} {
			if _, serr := os.Stat(dir + name); serr == nil {
				path, err = dir+name, nil
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNotInstalled)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr limitedBuffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := string(stderr.b)
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", name, ErrNotInstalled)
		}
		if msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		if strings.Contains(msg, "Operation not permitted") || strings.Contains(msg, "Permission denied") {
			err = fmt.Errorf("%w (%w)", err, os.ErrPermission)
		}
		return nil, err
	}
	return out, nil
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 512 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// udpSource is a raw UDP socket: it sees a copy of every UDP datagram
// delivered to this host, so it hears the status beacons whether or not a
// vipd holds the port, without binding it (a vipd starting meanwhile must
// not find its port taken). It never sends.
type udpSource struct {
	c    *net.IPConn
	port uint16
}

func listenUDP(port uint16, v6 bool) (PacketSource, error) {
	network, laddr := "ip4:udp", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:udp", "::"
	}
	c, err := net.ListenPacket(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("raw UDP socket: %w", err)
	}
	return &udpSource{c: c.(*net.IPConn), port: port}, nil
}

// ReadFrom returns the payload of the next datagram to the port.
func (u *udpSource) ReadFrom(b []byte) (int, netip.Addr, netip.Addr, int, error) {
	buf := make([]byte, 65536)
	for {
		n, from, err := u.c.ReadFrom(buf) // the IPv4 header is stripped by package net
		if err != nil {
			return 0, netip.Addr{}, netip.Addr{}, 0, err
		}
		if n < 8 || binary.BigEndian.Uint16(buf[2:4]) != u.port {
			continue
		}
		src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		return copy(b, buf[8:n]), src.Unmap(), netip.Addr{}, -1, nil
	}
}

func (u *udpSource) SetReadDeadline(t time.Time) error { return u.c.SetReadDeadline(t) }
func (u *udpSource) Close() error                      { return u.c.Close() }
