//go:build linux

package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// Probe asks the segment on cfg.Interface who holds each target, and only
// there, sending nothing but probes: for IPv4 the ARP probe of RFC 5227
// section 2.1.1 (sender IP 0.0.0.0, so no host learns anything from it),
// for IPv6 a neighbour solicitation from the link-local address to the
// target's solicited-node group (RFC 4861 section 7.2.2), which makes no
// host change its entry for the target. It listens until ctx ends and
// returns every host that claimed a target (answers, and any other
// announcement of a target heard meanwhile), each once; this host's own
// frames are not claims. It needs CAP_NET_RAW.
func Probe(ctx context.Context, cfg ProbeConfig) ([]Claim, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("netcfg: probe on %s: %w: %w", cfg.Interface, ErrNoInterface, err)
	}
	var v4, v6 []netip.Addr
	for _, t := range cfg.Targets {
		if t.Unmap().Is4() {
			v4 = append(v4, t.Unmap())
		} else {
			v6 = append(v6, t)
		}
	}
	var (
		mu   sync.Mutex
		all  []Claim
		errs []error
		wg   sync.WaitGroup
	)
	run := func(f func() ([]Claim, error)) {
		wg.Go(func() {
			c, err := f()
			mu.Lock()
			defer mu.Unlock()
			all = append(all, c...)
			errs = append(errs, err)
		})
	}
	if len(v4) > 0 {
		c4 := cfg
		c4.Targets = v4
		run(func() ([]Claim, error) {
			pc, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
			if err != nil {
				return nil, fmt.Errorf("netcfg: ARP probe on %s: %w", ifi.Name, err)
			}
			defer pc.Close()
			return probeARP(ctx, ifi, pc, c4)
		})
	}
	if len(v6) > 0 {
		c6 := cfg
		c6.Targets = v6
		run(func() ([]Claim, error) { return probeNDP(ctx, ifi, c6) })
	}
	wg.Wait()
	return all, errors.Join(errs...)
}

// probeNDP solicits every IPv6 target from the link-local address and
// collects the neighbour advertisements for them. ndp's reader drops this
// host's own messages (our kernel answering a looped-back solicitation
// for a VIP it holds).
func probeNDP(ctx context.Context, ifi *net.Interface, cfg ProbeConfig) ([]Claim, error) {
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("netcfg: NDP probe on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	var got claims
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, _, src, err := c.ReadFrom()
			if err != nil {
				return
			}
			na, ok := m.(*ndp.NeighborAdvertisement)
			if !ok || !slices.Contains(cfg.Targets, na.TargetAddress) {
				continue
			}
			cl := Claim{Addr: na.TargetAddress, From: src.WithZone("")}
			for _, o := range na.Options {
				if ll, ok := o.(*ndp.LinkLayerAddress); ok && ll.Direction == ndp.Target {
					cl.MAC = ll.Addr
				}
			}
			got.add(cl)
		}
	}()
	err = probeRounds(ctx, cfg.Rounds, cfg.Gap, func() error {
		for _, t := range cfg.Targets {
			group, err := ndp.SolicitedNodeMulticast(t)
			if err != nil {
				return err
			}
			ns := &ndp.NeighborSolicitation{TargetAddress: t,
				Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}}}
			if err := c.WriteTo(ns, nil, group); err != nil {
				return err
			}
		}
		return nil
	})
	c.SetReadDeadline(time.Unix(1, 0))
	<-done
	if err != nil {
		return got.get(), fmt.Errorf("netcfg: NDP probe on %s: %w", ifi.Name, err)
	}
	return got.get(), nil
}
