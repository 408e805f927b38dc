//go:build linux

package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// resubscribeBackoff bounds how fast a watcher re-subscribes after the
// kernel dropped its netlink socket (ENOBUFS when events overflowed).
const (
	resubscribeBackoff = 100 * time.Millisecond
	maxResubscribes    = 10 // consecutive failures before giving up
)

// watch runs one netlink subscription at a time until ctx is done. After
// each (re-)subscription, sync reconciles with the current state so that
// events lost before or between subscriptions are not lost for the caller.
func watch[T any](ctx context.Context, subscribe func(chan T, chan struct{}) error, sync func() error, handle func(T)) error {
	failures := 0
	for {
		ch := make(chan T, 64)
		done := make(chan struct{})
		err := subscribe(ch, done)
		if err == nil {
			err = sync()
		}
		if err == nil {
			failures = 0
			err = func() error {
				for {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case u, ok := <-ch:
						if !ok {
							return nil // socket dropped: resubscribe
						}
						handle(u)
					}
				}
			}()
		}
		close(done)
		// Drain so the library's reader goroutine, possibly blocked on a
		// send, sees the closed socket and exits. The socket is closed, so
		// this ends after at most the buffered messages.
		for range ch {
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			if failures >= maxResubscribes {
				return err
			}
		}
		t := time.NewTimer(resubscribeBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// WatchVIPs calls removed(p) whenever one of vips disappears from ifname
// (an RTM_DELADDR for it), until ctx is done; it then returns nil. After
// subscribing, and again after any re-subscription, it also reports every
// VIP that is already missing, so a removal between AddVIP and WatchVIPs is
// not lost. Callers therefore start it after adding the VIPs and cancel it
// before removing them. removed runs on the calling goroutine and should
// not block for long.
func WatchVIPs(ctx context.Context, ifname string, vips []netip.Prefix, removed func(netip.Prefix)) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netcfg: watch addresses on %s: %w", ifname, err)
	}
	defer h.Close()
	l, err := link(h, ifname)
	if err != nil {
		return fmt.Errorf("netcfg: watch addresses on %s: %w", ifname, err)
	}
	index := l.Attrs().Index
	want := make(map[netip.Prefix]bool, len(vips))
	for _, p := range vips {
		want[p] = true
	}
	subscribe := func(ch chan netlink.AddrUpdate, done chan struct{}) error {
		return netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
			// Errors end the subscription (the channel closes) and watch
			// re-subscribes; nothing to do here.
			ErrorCallback: func(error) {},
		})
	}
	sync := func() error {
		for _, p := range vips {
			has, err := hasPrefix(h, index, p)
			if err != nil {
				return err
			}
			if !has {
				removed(p)
			}
		}
		return nil
	}
	handle := func(u netlink.AddrUpdate) {
		if u.NewAddr || u.LinkIndex != index {
			return
		}
		if p, ok := ipNetPrefix(&u.LinkAddress); ok && want[p] {
			removed(p)
		}
	}
	if err := watch(ctx, subscribe, sync, handle); err != nil {
		return fmt.Errorf("netcfg: watch addresses on %s: %w", ifname, err)
	}
	return nil
}

// linkUp is the operational state the interface tracker wants: the
// interface is administratively up and the kernel considers it running
// (carrier present and RFC 2863 operstate up or unknown).
func linkUp(a *netlink.LinkAttrs) bool {
	return a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_RUNNING != 0
}

// WatchLink calls changed with ifname's operational state once at the
// start and then on every change, until ctx is done; it then returns nil.
// A missing, deleted or renamed interface is down; one created later under
// the name is picked up. changed runs on the calling goroutine.
func WatchLink(ctx context.Context, ifname string, changed func(up bool)) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netcfg: watch link %s: %w", ifname, err)
	}
	defer h.Close()
	var (
		reported bool
		last     bool
		index    int
	)
	report := func(up bool) {
		if reported && up == last {
			return
		}
		reported, last = true, up
		changed(up)
	}
	subscribe := func(ch chan netlink.LinkUpdate, done chan struct{}) error {
		return netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
			ErrorCallback: func(error) {},
		})
	}
	sync := func() error {
		l, err := link(h, ifname)
		if errors.Is(err, ErrNoInterface) {
			index = 0
			report(false)
			return nil
		}
		if err != nil {
			return err
		}
		index = l.Attrs().Index
		report(linkUp(l.Attrs()))
		return nil
	}
	handle := func(u netlink.LinkUpdate) {
		a := u.Attrs()
		switch {
		case a.Name == ifname && u.Header.Type == unix.RTM_DELLINK:
			index = 0
			report(false)
		case a.Name == ifname:
			index = a.Index
			report(linkUp(a))
		case index != 0 && a.Index == index:
			// Renamed away from ifname.
			index = 0
			report(false)
		}
	}
	if err := watch(ctx, subscribe, sync, handle); err != nil {
		return fmt.Errorf("netcfg: watch link %s: %w", ifname, err)
	}
	return nil
}
