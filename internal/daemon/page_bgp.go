package daemon

import (
	"fmt"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/control"
)

// bgpView is the page's BGP section: why each VIP is or is not announced,
// and the sessions with the routers.
type bgpView struct {
	B        control.BGP
	Drill    string
	VIPs     []bgpVIPRow
	Sessions []bgpSessionRow
}

type bgpVIPRow struct {
	VIP, State, Routers, Frontends, Why, Since string
}

type bgpSessionRow struct {
	Peer, ASN, State, Uptime, Hold, Prefixes, Flaps, BFD, LastError string
}

// bgpHeadline is the node's one word when it only announces: ANNOUNCED
// (every VIP), WITHDRAWN (none), DRAINING, or PARTIAL.
func bgpHeadline(b *control.BGP) (state, vips string) {
	counts := map[string]int{}
	var list []string
	for _, v := range b.VIPs {
		counts[v.State]++
		list = append(list, v.VIP)
	}
	switch {
	case counts["draining"] > 0:
		state = "DRAINING"
	case counts["announced"] == len(b.VIPs):
		state = "ANNOUNCED"
	case counts["announced"] == 0:
		state = "WITHDRAWN"
	default:
		state = "PARTIAL"
	}
	return state, strings.Join(list, ", ")
}

func buildBGPView(b *control.BGP, now time.Time) *bgpView {
	v := &bgpView{B: *b}
	if !b.DrillUntil.IsZero() {
		v.Drill = "drill: holding back until " + b.DrillUntil.Format("15:04:05")
	}
	for _, x := range b.VIPs {
		r := bgpVIPRow{
			VIP: x.VIP, State: strings.ToUpper(x.State), Routers: plural(x.Peers, "router"),
			Frontends: strings.Join(x.Frontends, ", "), Why: x.Reason,
		}
		if x.State == "draining" && !x.WithdrawAt.IsZero() {
			r.Why += " (withdrawn in " + human(x.WithdrawAt.Sub(now)) + ")"
		}
		if !x.Since.IsZero() {
			r.Since = human(now.Sub(x.Since)) + " ago"
		}
		v.VIPs = append(v.VIPs, r)
	}
	for _, s := range b.Sessions {
		r := bgpSessionRow{
			Peer: s.Peer, ASN: fmt.Sprint(s.ASN), State: strings.ToUpper(s.State), Uptime: "—",
			Hold: fmt.Sprintf("%g s", s.HoldTimeS), Prefixes: fmt.Sprintf("%d sent · %d received", s.PrefixesSent, s.PrefixesReceived),
			Flaps: fmt.Sprint(s.Flaps), BFD: s.BFD, LastError: s.LastError,
		}
		if s.UptimeS > 0 {
			r.Uptime = human(time.Duration(s.UptimeS * float64(time.Second)))
		}
		v.Sessions = append(v.Sessions, r)
	}
	return v
}

// bgpStatusLine is the BGP part of systemd's one-line STATUS: "BGP 1/1
// VIPs announced, 2/2 sessions up".
func bgpStatusLine(b *control.BGP) string {
	announced, up := 0, 0
	for _, v := range b.VIPs {
		if v.State == "announced" {
			announced++
		}
	}
	for _, s := range b.Sessions {
		if s.State == "established" {
			up++
		}
	}
	line := fmt.Sprintf("BGP %d/%d VIPs announced, %d/%d sessions up", announced, len(b.VIPs), up, len(b.Sessions))
	if b.Drained {
		line += " (drained)"
	}
	return line
}
