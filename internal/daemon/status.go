package daemon

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/vrrp"
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Status builds the status document (DESIGN.md section 6). Every instance's
// part comes from what its runner published after the effects of its last
// step: MASTER here means the VIP and the listeners exist.
func (d *Daemon) Status() control.Status {
	cfg, node := d.config()
	st := control.Status{
		Node: node.Name, Version: Version, Mode: "starting", Started: d.started, PID: os.Getpid(), LastRestart: d.getLastRestart(),
		Instances: []control.Instance{}, Frontends: []control.Frontend{}, Backends: []control.Backend{},
	}
	if !d.up.Load() {
		return st
	}
	st.Mode = d.mode()
	trk, reasons := d.trk.status()
	st.Trackers = trk
	names := map[string]string{}
	for _, n := range cfg.Nodes {
		names[n.Address.String()] = n.Name
	}
	for _, inst := range d.vrrpInstances() {
		st.Instances = append(st.Instances, d.instanceStatus(inst, reasons[inst.name], names))
	}
	if cfg.VRRP != nil {
		st.Peers = d.peers.list(time.Now())
		d.livenessStatus(&st)
	}
	ps := d.proxy.Status()
	for _, f := range ps.Frontends {
		fs := control.Frontend{
			Name: f.Name, Listening: f.Listening, ActiveConns: f.ActiveConns, TotalConns: uint64(f.TotalConns),
			BytesIn: f.BytesIn, BytesOut: f.BytesOut, Healthy: d.proxy.Healthy(f.Name), Backend: f.Backend,
		}
		for _, b := range f.Binds {
			fs.Binds = append(fs.Binds, b.String())
		}
		if len(fs.Binds) > 0 {
			fs.Bind = fs.Binds[0]
		}
		st.Frontends = append(st.Frontends, fs)
	}
	checks := d.health.group.Snapshot()
	for _, b := range ps.Backends {
		bs := control.Backend{Name: b.Name, Servers: []control.Server{}}
		for _, s := range b.Servers {
			ss := control.Server{
				Name: s.Name, Addr: s.Addr.String(), State: s.State.String(),
				ActiveConns: s.ActiveConns, TotalConns: uint64(s.TotalConns), FailedConns: uint64(s.FailedConns),
			}
			if ev, ok := checks[checkKey{kind: checkServer, backend: b.Name, server: s.Name}.String()]; ok {
				ss.Health = ev.Status.String()
				ss.LastCheck = checkText(ev.Result.OK, ev.Result.Detail)
				ss.CheckedAt = ev.Result.At
				ss.LatencyMs = ms(ev.Result.Latency)
			} else {
				ss.Health = "UNCHECKED"
			}
			bs.Servers = append(bs.Servers, ss)
		}
		st.Backends = append(st.Backends, bs)
	}
	sort.Slice(st.Frontends, func(i, j int) bool { return st.Frontends[i].Name < st.Frontends[j].Name })
	st.LastDrill = d.drills.last()
	st.Findings = d.live.get()
	if b := d.bgpSide(); b != nil {
		st.BGP = b.status()
	}
	return st
}

func (d *Daemon) instanceStatus(inst *instance, reason string, names map[string]string) control.Instance {
	rs := inst.runner.Status()
	v := inst.cfg
	in := control.Instance{
		Name: inst.name, VRID: int(v.VRID), Interface: inst.ifname, Version: int(rs.Version),
		State: rs.State.String(), Priority: int(rs.Priority), EffectivePriority: int(rs.EffectivePriority),
		PriorityReason: reason, LastTransition: rs.LastTransition, LastReason: rs.LastReason,
		Transitions: rs.Transitions, AdvertIntervalMs: ms(v.AdvertInterval), MasterIntervalMs: ms(rs.MasterInterval),
		DownIntervalMs: ms(rs.DownInterval), SkewTimeMs: ms(rs.SkewTime), Ready: rs.Ready, Unicast: v.Unicast,
		Checksum: v.Checksum, AdvertsSent: rs.AdvertsSent, AdvertsReceived: rs.AdvertsReceived,
		Drops: map[string]uint64{}, Fault: rs.EffectFault, RetryAt: rs.RetryAt,
	}
	if v.Version == 2 {
		in.Checksum = "rfc3768"
	}
	if rs.MasterAddr.IsValid() {
		in.MasterAddr = rs.MasterAddr.String()
	}
	for _, p := range v.VIPs {
		in.VIPs = append(in.VIPs, p.String())
	}
	for k, n := range rs.Drops {
		in.Drops[string(k)] = n
	}
	if len(rs.Notices) > 0 {
		in.Notices = map[string]uint64{}
		for k, n := range rs.Notices {
			in.Notices[string(k)] = n
		}
	}
	if len(rs.EffectErrors) > 0 {
		in.EffectErrors = rs.EffectErrors
	}
	for _, s := range rs.Senders {
		cs := control.Sender{
			Addr: s.Addr.String(), Name: names[s.Addr.String()], Version: int(s.Version), Priority: int(s.Priority),
			Interval: ms(s.Interval), LastSeen: s.LastSeen, Count: s.Count, Dropped: s.Dropped, Problem: s.Problem,
		}
		switch {
		case s.Checksum != 0 && s.Version == 2:
			cs.Checksum = "rfc3768" // the message alone: the only VRRPv2 form
		case s.Checksum != 0:
			cs.Checksum = s.Checksum.String()
		}
		for _, a := range s.VIPs {
			cs.VIPs = append(cs.VIPs, a.String())
		}
		// A foreign router's own problem ("speaks VRRPv2; set version =
		// 2 to join it") would be the wrong advice: it is not to be joined.
		if p := vrrp.ForeignProblem(s.Addr, v.VRID, cs.Name != "").String(); p != "" {
			in.Problems = append(in.Problems, p)
		} else if s.Problem != "" {
			in.Problems = append(in.Problems, s.Problem)
		}
		in.Senders = append(in.Senders, cs)
	}
	for _, t := range rs.Recent {
		in.Recent = append(in.Recent, control.Transition{At: t.At, From: t.From.String(), To: t.To.String(), Reason: t.Reason})
	}
	return in
}

func checkText(ok bool, detail string) string {
	if ok {
		if detail == "" {
			return "ok"
		}
		return "ok: " + detail
	}
	if detail == "" {
		return "failed"
	}
	return "failed: " + detail
}

func plural(n int, s string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, s)
	}
	return fmt.Sprintf("%d %ss", n, s)
}
