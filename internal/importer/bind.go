package importer

import (
	"net/netip"
)

// bindFrontends decides where each frontend listens: HAProxy bound an
// address (or every address, "*"); vipd binds the VIPs of an instance while
// it is MASTER, or a fixed address always.
func bindFrontends(r *report, out *outConfig, nodeAddrs map[netip.Addr]string) {
	for _, fe := range out.Frontends {
		target := "frontend:" + fe.Name
		ip := fe.bind
		if len(out.Instances) == 0 {
			// Single LB: no VIP, the frontend always listens.
			fe.Address = ip
			if ip.IsUnspecified() {
				r.chose(fe.pos, target, "no keepalived configuration, so no VIP: the frontend listens on every address (address = %q), always", ip)
			}
			continue
		}
		var inst *outInstance
		for _, o := range out.Instances {
			for _, v := range o.VIPs {
				if v.Addr() == ip {
					inst = o
				}
			}
		}
		switch {
		case inst != nil:
			if len(out.Instances) > 1 || len(inst.VIPs) > 1 {
				fe.VIP = ip
			}
		case ip.IsUnspecified() || nodeAddrs[ip] != "":
			inst = out.Instances[0]
			for _, o := range out.Instances {
				if o.VIPs != nil && o.VIPs[0].Addr().Is4() == ip.Is4() {
					inst = o
					break
				}
			}
			why := "HAProxy listened on every address"
			if !ip.IsUnspecified() {
				why = "haproxy.cfg binds " + ip.String() + ", node " + nodeAddrs[ip] + "'s own address, and the vipd file serves every node"
			}
			if len(out.Instances) > 1 && len(inst.VIPs) > 0 {
				fe.VIP = inst.VIPs[0].Addr()
				r.chose(fe.pos, target, "%s; a vipd frontend binds one instance's VIP: chose %s of instance %s (the first); change vip if this port belongs to another VIP", why, fe.VIP, inst.Name)
			} else {
				r.chose(fe.pos, target, "%s; vipd listens on the VIPs only, and only while MASTER: clients must use the VIP", why)
			}
		default:
			fe.Address = ip
			r.chose(fe.pos, target, "%s is not a VIP: the frontend listens there on every node, always (address = %q)", ip, ip)
		}
	}
}
