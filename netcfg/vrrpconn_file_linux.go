//go:build linux

package netcfg

import (
	"fmt"
	"net"
	"os"
)

// File returns a duplicate of the socket's descriptor (close-on-exec), to
// hand the socket to a new vipd process (a hitless restart). The socket
// is the same: the new process reads what this one leaves queued, and the
// group membership stays as long as either holds a descriptor.
func (c *VRRPConn) File() (*os.File, error) {
	f, err := c.conn.File()
	if err != nil {
		return nil, fmt.Errorf("netcfg: vrrp socket on %s: %w", c.ifname, err)
	}
	return f, nil
}

// VRRPConnFromFile takes up a VRRP socket another process opened with
// ListenVRRP(cfg) and handed over (File): it sets nothing on the socket,
// which is already bound to the interface, in the group and with its
// options; cfg gives what is sent with every packet. f stays the caller's
// to close.
func VRRPConnFromFile(f *os.File, cfg VRRPConfig) (*VRRPConn, error) {
	dsts, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("netcfg: vrrp socket on %s: %w: %w", cfg.Interface, ErrNoInterface, err)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("netcfg: vrrp socket on %s: %w", cfg.Interface, err)
	}
	ipc, ok := pc.(*net.IPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("netcfg: vrrp socket on %s: descriptor is a %T, not a raw IP socket", cfg.Interface, pc)
	}
	fam := &vrrpIPv4
	if cfg.ipv6() {
		fam = &vrrpIPv6
	}
	return &VRRPConn{
		ifname: cfg.Interface,
		fam:    fam,
		conn:   ipc,
		wcm:    fam.pktinfo(cfg.Source.WithZone(""), ifi.Index),
		dsts:   dsts,
	}, nil
}
