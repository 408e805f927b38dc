package importer

import (
	"net/netip"
	"strings"
	"time"
)

// Why vrrp_instance settings are not carried over.
var kaInstanceReasons = map[string]string{
	"dont_track_primary":          "vipd always tracks the VRRP interface's link and goes FAULT while it is down",
	"use_vmac":                    "vipd claims the VIP with the host's MAC and gratuitous ARP; clients' ARP caches follow the GARP burst",
	"vmac_xmit_base":              "vipd uses no virtual MAC",
	"native_ipv6":                 "vipd picks the address family from the VIPs",
	"accept":                      "already what vipd does: accept mode is always on (the proxy must receive the VIP's traffic)",
	"no_accept":                   "vipd always accepts traffic for the VIP: its proxy listens there",
	"strict_mode":                 "vipd has no strict mode",
	"skip_check_adv_addr":         "no vipd equivalent",
	"check_unicast_src":           "already what vipd does: in unicast mode it accepts adverts only from the [[node]] addresses",
	"debug":                       "vipd's log level is [log] level",
	"smtp_alert":                  "vipd sends no mail; [notify] runs a command on every transition",
	"lvs_sync_daemon_interface":   "LVS has no vipd equivalent",
	"unicast_ttl":                 "vipd sends unicast adverts with TTL 255",
	"unicast_fault_no_peer":       "no vipd equivalent",
	"kernel_rx_buf_size":          "vipd sizes its own socket buffers",
	"higher_prio_send_advert":     "already what vipd does: a master that hears a lower priority advertises at once (RFC 9568)",
	"down_timer_adverts":          "vipd's master down interval is RFC 9568's 3 adverts plus skew",
	"track_src_ip":                "no vipd equivalent",
	"linkbeat_use_polling":        "vipd watches the link through netlink",
	"notify_stop":                 "vipd runs [notify] on state transitions only",
	"notify_deleted":              "vipd runs [notify] on state transitions only",
	"notify_master_rx_lower_pri":  "vipd re-announces by itself when it hears a lower priority",
	"notify_priority_changes":     "vipd runs [notify] on state transitions only",
	"garp_master_delay":           "vipd sends one burst (garp_repeat rounds garp_interval apart) and refreshes every garp_refresh; it has no second burst",
	"garp_master_refresh_repeat":  "vipd's refresh sends one round",
	"track_file":                  "vipd has no file trackers; a [[track]] with type = \"script\" can test the file",
	"track_bfd":                   "vipd has no BFD",
	"old_unicast_checksum":        "vipd's checksum setting is [vrrp] checksum (the VRRPv3 IPv4 pseudo-header form by default)",
	"mcast_src_ip_from_interface": "vipd takes the source address from the interface",
	"owner_ignore_adverts":        "no vipd equivalent",
}

func (k *kaReader) instance(st *kaStmt) {
	in := &kaInstance{Name: argOr(st, 0), Pos: st.Pos, file: k.f, Notify: map[string]val[[]string]{}}
	if in.Name == "" {
		k.r.errorf(st.Pos, "vrrp_instance without a name; write vrrp_instance VI_1 { ... }")
		in.Name = "VI_" + st.Pos.String()
	}
	for _, b := range st.Block {
		b.done = true
		k.instanceKey(in, b)
	}
	// "dev" on a VIP: the same link as the adverts, or the link itself
	// when the instance names no interface.
	for _, v := range in.VIPs {
		switch {
		case v.Dev == "":
		case !in.Interface.Set:
			in.Interface.set(v.Dev, v.Pos)
		case v.Dev != in.Interface.V:
			k.r.errorf(v.Pos, "%s dev %s: the VIP is on %s but the adverts go out on %s (line %d); vipd adds an instance's VIPs to the instance's interface: move this VIP into a vrrp_instance of its own on %s",
				v.Prefix, v.Dev, v.Dev, in.Interface.V, in.Interface.Pos.Line, v.Dev)
		}
	}
	k.f.instances = append(k.f.instances, in)
}

func (k *kaReader) instanceKey(in *kaInstance, b *kaStmt) {
	switch b.key() {
	case "state":
		s := strings.ToUpper(argOr(b, 0))
		if s != "MASTER" && s != "BACKUP" {
			k.r.errorf(b.Pos, "state %s: keepalived takes MASTER or BACKUP%s", argOr(b, 0), placeholder(argOr(b, 0)))
			return
		}
		in.State.set(s, b.Pos)
	case "interface":
		if w := argOr(b, 0); w == "" || placeholder(w) != "" {
			k.r.errorf(b.Pos, "interface %s: needs an interface name%s", w, placeholder(w))
		} else {
			in.Interface.set(w, b.Pos)
		}
	case "virtual_router_id":
		in.vridWritten = true
		if v, ok := k.intArg(b, 1, 255, "the VRID is the same on every node of the instance"); ok {
			in.VRID.set(v, b.Pos)
		}
	case "priority":
		if v, ok := k.intArg(b, 1, 255, "1..254, or 255 for the address owner"); ok {
			in.Priority.set(v, b.Pos)
		}
	case "advert_int":
		if v, ok := k.secondsArg(b, 10*time.Millisecond, 255*time.Second); ok {
			in.Advert.set(v, b.Pos)
		}
	case "version":
		if v, ok := k.intArg(b, 2, 3, "version 2 or version 3"); ok {
			in.Version.set(v, b.Pos)
		}
	case "nopreempt":
		in.Nopreempt.set(true, b.Pos)
	case "preempt":
		in.Nopreempt.set(false, b.Pos)
	case "preempt_delay":
		if v, ok := k.secondsArg(b, 0, 1000*time.Second); ok {
			in.PreemptDelay.set(v, b.Pos)
		}
	case "authentication":
		k.auth(in, b)
	case "auth_hmac":
		markAll(b.Block)
		k.r.errorf(b.Pos, "auth_hmac: keepalived's HMAC extension is not VRRP and vipd does not speak it; remove it from every node (or use auth_type PASS) before mixing in vipd")
	case "virtual_ipaddress", "virtual_ipaddress_excluded":
		k.vips(in, b, b.key() == "virtual_ipaddress_excluded")
	case "unicast_src_ip", "mcast_src_ip":
		a, err := netip.ParseAddr(argOr(b, 0))
		if err != nil || a.Zone() != "" {
			k.r.errorf(b.Pos, "%s %s: not an IP address%s", b.key(), argOr(b, 0), placeholder(argOr(b, 0)))
			return
		}
		if b.key() == "unicast_src_ip" {
			in.UnicastSrc.set(a.Unmap(), b.Pos)
		} else {
			in.McastSrc.set(a.Unmap(), b.Pos)
		}
	case "unicast_peer":
		for _, p := range b.Block {
			p.done = true
			a, err := netip.ParseAddr(p.key())
			if err != nil || a.Zone() != "" {
				k.r.errorf(p.Pos, "unicast_peer %s: not an IP address%s", p.key(), placeholder(p.key()))
				continue
			}
			if len(p.Words) > 1 {
				k.r.notCarried(p.Pos, "", "unicast_peer %s: %s: vipd sends unicast adverts with TTL 255 and takes no per-peer options", a, strings.Join(p.args(), " "))
			}
			var v val[netip.Addr]
			v.set(a.Unmap(), p.Pos)
			in.Peers = append(in.Peers, v)
		}
	case "track_interface":
		for _, t := range b.Block {
			t.done = true
			ti := kaTrackIf{Name: t.key(), Pos: t.Pos}
			if len(t.Words) >= 3 && t.Words[1] == "weight" {
				if v, ok := k.intArg(&kaStmt{Pos: t.Pos, Words: t.Words[1:]}, -254, 254, "keepalived's range is -253..253"); ok {
					ti.Weight = v
				}
			}
			in.TrackIfs = append(in.TrackIfs, ti)
		}
	case "track_script", "track_process":
		for _, t := range b.Block {
			t.done = true
			ref := kaTrackRef{Name: t.key(), Pos: t.Pos, isProcess: b.key() == "track_process"}
			if len(t.Words) >= 3 && t.Words[1] == "weight" {
				if v, ok := k.intArg(&kaStmt{Pos: t.Pos, Words: t.Words[1:]}, -254, 254, "keepalived's range is -253..253"); ok {
					ref.Weight.set(v, t.Pos)
				}
				if len(t.Words) >= 4 && t.Words[3] == "reverse" {
					k.r.errorf(t.Pos, "%s %s weight %s reverse: vipd has no reverse weights; rewrite the script to succeed when it should add to the priority", b.key(), t.key(), t.Words[2])
				}
			}
			in.TrackScripts = append(in.TrackScripts, ref)
		}
	case "notify_master", "notify_backup", "notify_fault", "notify":
		text := strings.Join(b.args(), " ")
		if len(b.args()) == 1 {
			text = b.args()[0]
		}
		argv, ok := splitArgv(text)
		if !ok || len(argv) == 0 {
			k.r.errorf(b.Pos, "%s %q: not a command line", b.key(), text)
			return
		}
		var v val[[]string]
		v.set(argv, b.Pos)
		in.Notify[strings.TrimPrefix(b.key(), "notify_")] = v
	case "garp_master_repeat":
		if v, ok := k.intArg(b, 1, 100, "vipd sends 1..100 rounds"); ok {
			in.GARPRepeat.set(v, b.Pos)
		}
	case "garp_master_refresh":
		if v, ok := k.secondsArg(b, 0, 24*time.Hour); ok {
			in.GARPRefresh.set(v, b.Pos)
		}
	case "garp_lower_prio_repeat":
		if v, ok := k.intArg(b, 0, 100, "vipd sends 0..100 rounds"); ok {
			in.LowerRepeat.set(v, b.Pos)
		}
	case "garp_lower_prio_delay":
		if v, ok := k.secondsArg(b, 0, time.Hour); ok {
			in.LowerDelay.set(v, b.Pos)
		}
	case "virtual_routes", "virtual_rules":
		markAll(b.Block)
		k.r.errorf(b.Pos, "%s: vipd adds and removes only the VIPs, not routes or rules, so the master would lack them; move them into the hosts' network configuration (routes via the VIP work once it is there), then import again", b.key())
	default:
		markAll(b.Block)
		if reason, ok := kaInstanceReasons[b.key()]; ok {
			k.r.notCarried(b.Pos, "", "%s: %s", b.key(), reason)
			return
		}
		b.done = false
	}
}

func (k *kaReader) auth(in *kaInstance, b *kaStmt) {
	for _, a := range b.Block {
		a.done = true
		switch a.key() {
		case "auth_type":
			t := strings.ToUpper(argOr(a, 0))
			switch t {
			case "PASS":
				in.AuthType.set(t, a.Pos)
			case "AH":
				in.AuthType.set(t, a.Pos)
				k.r.errorf(a.Pos, "auth_type AH: vipd does not speak IPsec AH authentication (RFC 3768 removed it; keepalived's is not interoperable); switch every keepalived node to auth_type PASS, or remove authentication, before mixing in vipd")
			default:
				k.r.errorf(a.Pos, "auth_type %s: keepalived takes PASS or AH%s", argOr(a, 0), placeholder(argOr(a, 0)))
			}
		case "auth_pass":
			p := argOr(a, 0)
			if p == "" || placeholder(p) != "" {
				k.r.errorf(a.Pos, "auth_pass %s: needs the password%s", p, placeholder(p))
				continue
			}
			if len(p) > 8 {
				k.r.chose(a.Pos, "", "auth_pass: %d characters; keepalived sends and compares only the first 8 (it logs \"Truncating auth_pass\"), so auth_pass = %q", len(p), p[:8])
				p = p[:8]
			}
			in.AuthPass.set(p, a.Pos)
		default:
			a.done = false
		}
	}
}

func (k *kaReader) vips(in *kaInstance, b *kaStmt, excluded bool) {
	for _, v := range b.Block {
		v.done = true
		pfx, err := parseKaVIP(v.key())
		if err != "" {
			k.r.errorf(v.Pos, "%s %s: %s%s", b.key(), v.key(), err, placeholder(v.key()))
			continue
		}
		words := v.args()
		dev := ""
		for i := 0; i < len(words); i++ {
			opt := words[i]
			arg := ""
			if i+1 < len(words) {
				arg = words[i+1]
			}
			switch opt {
			case "dev":
				i++
				dev = arg
			case "brd", "broadcast", "scope", "label", "metric", "preferred_lft", "table":
				i++
				k.r.notCarried(v.Pos, "", "%s: %s %s: vipd adds the VIP as a plain secondary address", v.key(), opt, arg)
			case "no_track", "track", "home", "-nodad", "nodad", "noprefixroute", "autojoin":
				k.r.notCarried(v.Pos, "", "%s: %s: vipd adds the VIP as a plain secondary address", v.key(), opt)
			default:
				k.r.notCarried(v.Pos, "", "%s: %s: not an address option vipd import knows", v.key(), opt)
			}
		}
		in.VIPs = append(in.VIPs, kaVIP{Prefix: pfx, Pos: v.Pos, Excluded: excluded, Dev: dev, Bare: !strings.Contains(v.key(), "/")})
	}
}

// parseKaVIP reads "192.168.30.30", "192.168.30.30/24" or an IPv6 VIP.
func parseKaVIP(s string) (netip.Prefix, string) {
	var (
		pfx netip.Prefix
		err error
	)
	if strings.Contains(s, "/") {
		pfx, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil || pfx.Addr().Zone() != "" {
		return pfx, "not an IP address or prefix"
	}
	if a := pfx.Addr(); a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.Is4In6() {
		return pfx, "not a unicast address a VIP can be"
	}
	return pfx, ""
}

// effective keepalived values of an instance, defaults applied as
// keepalived applies them (vrrp.c vrrp_complete_instance).
func kaVersion(in *kaInstance) int {
	switch {
	case in.Version.Set:
		return in.Version.V
	case in.file.version.Set:
		return in.file.version.V
	}
	for _, v := range in.VIPs {
		if v.Prefix.Addr().Is6() {
			return 3 // keepalived's default for IPv6
		}
	}
	return 2
}

func kaPriority(in *kaInstance) int {
	switch {
	case in.Priority.Set:
		return in.Priority.V
	case in.State.V == "MASTER":
		return kaOwnerPriority
	}
	return kaDefaultPriority
}

func kaAdvert(in *kaInstance) time.Duration {
	if !in.Advert.Set {
		return kaDefaultAdvert
	}
	return in.Advert.V
}

// kaPreempt: keepalived clears nopreempt and preempt_delay with state
// MASTER, and nopreempt with priority 255.
func kaPreempt(in *kaInstance) (bool, time.Duration) {
	if in.State.V == "MASTER" || kaPriority(in) == kaOwnerPriority {
		return true, 0
	}
	if in.Nopreempt.V {
		return false, 0
	}
	return true, in.PreemptDelay.V
}
