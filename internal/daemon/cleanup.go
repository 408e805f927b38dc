package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/vrrp"
)

// `vipd cleanup` runs after a vipd process ended (systemd's ExecStopPost):
// a crashed master leaves its VIPs on the interface, and its kernel keeps
// answering ARP for them and refusing connections until the new master's
// gratuitous ARP wins every cache. Cleanup lets go of them, make before
// break: it sends the priority-0 advert the dead master could not send
// (backups that have not taken over yet do so after Skew_Time; a new
// master answers at once with an advert), waits until another router is
// heard as master, bounded by the slowest backup's Master_Down_Interval,
// and then removes the VIPs. Removing them before the successor holds the
// VIP would turn the old master's refusals into silently dropped SYNs,
// which clients retry only after a second.

// CleanupOptions configure Cleanup.
type CleanupOptions struct {
	ConfigPath string
	NodeName   string
	OS         OS
	Out        io.Writer // one line per thing done
	Log        zerolog.Logger

	// status asks the control socket whether a vipd runs (tests).
	status func(ctx context.Context, socket string) (control.Status, error)
}

// Cleanup removes this node's VIPs if no live vipd holds them.
func Cleanup(ctx context.Context, o CleanupOptions) error {
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return err
	}
	if err := o.OS.fill(); err != nil {
		return err
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.status == nil {
		o.status = func(ctx context.Context, socket string) (control.Status, error) {
			return control.NewClient(socket).Status(ctx)
		}
	}
	hostname, _ := os.Hostname()
	local, _ := o.OS.LocalAddrs()
	node, err := cfg.SelectNode(o.NodeName, hostname, local)
	if err != nil {
		return err
	}
	if cfg.VRRP == nil {
		fmt.Fprintln(o.Out, "single-LB mode: no VIP to let go of")
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	st, err := o.status(sctx, cfg.Control.Socket)
	cancel()
	if err == nil {
		fmt.Fprintf(o.Out, "a live vipd (node %s) answers on %s: it holds the VIPs; nothing to do\n", st.Node, cfg.Control.Socket)
		return nil
	}
	var errs []error
	for i := range cfg.Instances {
		if err := cleanupInstance(ctx, o, cfg, node, &cfg.Instances[i]); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", cfg.Instances[i].Name, err))
		}
	}
	return errors.Join(errs...)
}

func cleanupInstance(ctx context.Context, o CleanupOptions, cfg *config.Config, node *config.Node, in *config.Instance) error {
	pl, err := planInstance(&o.OS, cfg, node, in, o.Log)
	if err != nil {
		return err
	}
	var held []netip.Prefix
	for _, p := range pl.managed {
		has, err := o.OS.Addrs.HasVIP(pl.ifname, p)
		if err != nil {
			return err
		}
		if has {
			held = append(held, p)
		}
	}
	if len(held) == 0 {
		fmt.Fprintf(o.Out, "%s: no VIP of this node on %s: nothing to do\n", in.Name, pl.ifname)
		return nil
	}
	start := time.Now()
	successor, err := awaitSuccessor(ctx, &o.OS, pl)
	switch {
	case err != nil:
		fmt.Fprintf(o.Out, "%s: cannot hand over (%v); removing the VIPs at once\n", in.Name, err)
	case successor.IsValid():
		fmt.Fprintf(o.Out, "%s: %s is master (heard after %v)\n", in.Name, successor, time.Since(start).Round(time.Millisecond))
	default:
		fmt.Fprintf(o.Out, "%s: no other router took over within %v; removing the VIPs anyway (no vipd serves them here)\n", in.Name, successorWait(pl))
	}
	var errs []error
	for _, p := range held {
		if err := o.OS.Addrs.RemoveVIP(pl.ifname, p); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(o.Out, "%s: removed %s from %s\n", in.Name, p, pl.ifname)
	}
	return errors.Join(errs...)
}

// successorWait bounds the wait for a new master: the Master_Down_Interval
// of the slowest possible backup (priority 1), plus one interval.
func successorWait(pl instancePlan) time.Duration {
	m := pl.rc.Machine
	return vrrp.DownInterval(m.Version, 1, m.AdvertInterval) + m.AdvertInterval
}

// awaitSuccessor sends priority 0 for the dead master (again after one
// interval, in case it was lost) and returns the first router heard
// advertising a non-zero priority on the VRID, or an invalid address when
// none was within successorWait.
func awaitSuccessor(ctx context.Context, os *OS, pl instancePlan) (netip.Addr, error) {
	conn, err := pl.listenVRRP(os)
	if err != nil {
		return netip.Addr{}, err
	}
	pkts, err := pl.rc.Adverts(0)
	if err != nil {
		conn.Close()
		return netip.Addr{}, err
	}
	send := func() {
		for _, p := range pkts {
			conn.WriteTo(p.B, p.Dst)
		}
	}
	heard := make(chan netip.Addr, 1)
	go func() {
		defer close(heard)
		buf := make([]byte, 1500)
		for {
			n, src, dst, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if src == pl.src || src == pl.rc.Machine.Addr {
				continue
			}
			var adv vrrp.Advertisement
			if adv.UnmarshalBinary(buf[:n]) != nil || adv.VRID != pl.rc.Machine.VRID || adv.Priority == 0 {
				continue
			}
			if _, err := vrrp.VerifyChecksum(buf[:n], src, dst); err != nil {
				continue
			}
			heard <- src
			return
		}
	}()
	defer func() {
		conn.Close()
		for range heard {
		}
	}()
	send()
	again := time.NewTimer(pl.rc.Machine.AdvertInterval)
	defer again.Stop()
	limit := time.NewTimer(successorWait(pl))
	defer limit.Stop()
	for {
		select {
		case a, ok := <-heard:
			if !ok {
				return netip.Addr{}, errors.New("the VRRP socket closed")
			}
			return a, nil
		case <-again.C:
			send()
		case <-limit.C:
			return netip.Addr{}, nil
		case <-ctx.Done():
			return netip.Addr{}, ctx.Err()
		}
	}
}
