package daemon

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/bgp"
	"github.com/vipd/vipd/internal/config"
)

// bgpLink is where an announced VIP is put on the host. IP_FREEBIND lets
// the proxy bind a VIP that is not local, but the kernel delivers a
// packet to a socket only when its destination is a local address: with
// the VIP on no interface a router's SYN is dropped (measured in the FRR
// lab, docs/bgp.md). The loopback needs no dummy interface, which this
// lab's kernel does not have either.
const bgpLink = "lo"

// bgpEffects carries out the BGP announcer's actions on the host and the
// routers: the listeners of the frontends that bind each VIP, the VIP on
// the loopback, and the speaker's announcements. It is the only code that
// touches them, and it runs on the BGP runner's goroutine.
type bgpEffects struct {
	log zerolog.Logger
	os  *OS
	px  Proxy
	sp  Speaker

	mu        sync.Mutex // frontends and attrs change on reload
	frontends map[netip.Addr][]string
	attrs     bgp.Attrs

	// Runner goroutine only.
	held map[netip.Addr]bool // this process put the VIP on the loopback
}

// bgpFrontends maps each [bgp] VIP to the frontends that bind it.
func bgpFrontends(cfg *config.Config) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	if cfg.BGP == nil {
		return out
	}
	for _, p := range cfg.BGP.VIPs {
		out[p.Addr()] = nil
	}
	for _, f := range cfg.Frontends {
		if v, ok := cfg.BGPVIPOf(f); ok {
			out[v] = append(out[v], f.Name)
		}
	}
	return out
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

func (e *bgpEffects) frontendsOf(v netip.Addr) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.frontends[v]
}

// reconfigure takes a reload's frontends and attributes; it returns the
// VIPs that gained a frontend (an announced one must bind it) and whether
// the attributes changed.
func (e *bgpEffects) reconfigure(fes map[netip.Addr][]string, attrs bgp.Attrs) (gained []netip.Addr, attrsChanged bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for v, list := range fes {
		for _, f := range list {
			if !slices.Contains(e.frontends[v], f) {
				gained = append(gained, v)
				break
			}
		}
	}
	attrsChanged = !sameAttrs(e.attrs, attrs)
	e.frontends, e.attrs = fes, attrs
	return gained, attrsChanged
}

func sameAttrs(a, b bgp.Attrs) bool {
	eq := func(x, y *uint32) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.MED, b.MED) && eq(a.LocalPref, b.LocalPref) && slices.Equal(a.Communities, b.Communities)
}

// do carries out one action; the error of an action the announcer must
// hear about (listen, add VIP, announce, drain) is returned, the others
// are logged here.
func (e *bgpEffects) do(a bgp.Action) error {
	v := a.VIP
	switch a.Kind {
	case bgp.ActionListen:
		if fes := e.frontendsOf(v); len(fes) > 0 {
			return e.px.Listen(fes...)
		}
	case bgp.ActionAddVIP:
		if err := e.os.Addrs.AddVIP(bgpLink, hostPrefix(v)); err != nil {
			return err
		}
		e.held[v] = true
	case bgp.ActionAnnounce:
		e.mu.Lock()
		attrs := e.attrs
		e.mu.Unlock()
		return e.sp.Announce(hostPrefix(v), attrs)
	case bgp.ActionDrain:
		return e.sp.Drain(hostPrefix(v), a.Reason)
	case bgp.ActionWithdraw:
		if err := e.sp.Withdraw(hostPrefix(v), a.Reason); err != nil {
			e.log.Error().Err(err).Stringer("vip", v).Msg("withdraw refused by the speaker")
		}
	case bgp.ActionRemoveVIP:
		e.removeVIP(v)
	case bgp.ActionUnlisten:
		if fes := e.frontendsOf(v); len(fes) > 0 {
			e.px.Unlisten(fes...)
		}
	case bgp.ActionCloseConns:
		if fes := e.frontendsOf(v); len(fes) > 0 {
			e.px.CloseConns(fes...)
		}
	}
	return nil
}

func (e *bgpEffects) removeVIP(v netip.Addr) {
	p := hostPrefix(v)
	if !e.held[v] {
		if has, err := e.os.Addrs.HasVIP(bgpLink, p); err == nil && has {
			e.log.Warn().Stringer("vip", v).Str("interface", bgpLink).
				Msg("removing a VIP this process did not add (left behind by a previous run: a node that does not announce it must not answer for it)")
		}
	}
	if err := e.os.Addrs.RemoveVIP(bgpLink, p); err != nil {
		e.log.Error().Err(err).Stringer("vip", v).Str("interface", bgpLink).Msg("cannot remove the VIP; this host keeps answering for it locally")
		return
	}
	delete(e.held, v)
}
