package daemon

import (
	"fmt"
	"sort"
	"time"

	"github.com/vipd/vipd/internal/control"
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Status builds the status document (DESIGN.md section 6).
func (d *Daemon) Status() control.Status {
	cfg := d.config()
	st := control.Status{
		Node: d.node.Name, Version: Version, Mode: "starting", Started: d.started,
		Instances: []control.Instance{}, Frontends: []control.Frontend{}, Backends: []control.Backend{},
	}
	if !d.up.Load() {
		return st
	}
	st.Mode = d.mode()
	trk, reason := d.trk.status()
	st.Trackers = trk
	if d.runner != nil {
		rs := d.runner.Status()
		v := cfg.Instances[0]
		in := control.Instance{
			Name: instanceName(cfg), VRID: int(v.VRID), Interface: d.ifname,
			State: rs.State.String(), Priority: int(d.node.Priority), EffectivePriority: int(rs.EffectivePriority),
			PriorityReason: reason, LastTransition: rs.LastTransition, LastReason: rs.LastReason,
			Transitions: rs.Transitions, AdvertIntervalMs: ms(v.AdvertInterval), MasterIntervalMs: ms(rs.MasterInterval),
			DownIntervalMs: ms(rs.DownInterval), SkewTimeMs: ms(rs.SkewTime), Ready: rs.Ready, Unicast: v.Unicast,
			Checksum: v.Checksum, AdvertsSent: rs.AdvertsSent, AdvertsReceived: rs.AdvertsReceived,
			Drops: map[string]uint64{},
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
		for _, s := range rs.Senders {
			in.Senders = append(in.Senders, control.Sender{
				Addr: s.Addr.String(), Priority: int(s.Priority), Interval: ms(s.Interval),
				Checksum: s.Checksum.String(), LastSeen: s.LastSeen, Count: s.Count,
			})
		}
		for _, t := range rs.Recent {
			in.Recent = append(in.Recent, control.Transition{At: t.At, From: t.From.String(), To: t.To.String(), Reason: t.Reason})
		}
		st.Instances = append(st.Instances, in)
		st.Peers = d.peers.list()
	}
	ps := d.proxy.Status()
	for _, f := range ps.Frontends {
		fs := control.Frontend{
			Name: f.Name, Listening: f.Listening, ActiveConns: int64(f.ActiveConns), TotalConns: uint64(f.TotalConns),
			BytesIn: uint64(f.BytesIn), BytesOut: uint64(f.BytesOut), Healthy: d.proxy.Healthy(f.Name),
		}
		for _, b := range f.Binds {
			fs.Binds = append(fs.Binds, b.String())
		}
		if len(fs.Binds) > 0 {
			fs.Bind = fs.Binds[0]
		}
		for _, fc := range cfg.Frontends {
			if fc.Name == f.Name {
				fs.Backend = fc.Backend
			}
		}
		st.Frontends = append(st.Frontends, fs)
	}
	checks := d.healthSnapshot()
	for _, b := range ps.Backends {
		bs := control.Backend{Name: b.Name, Servers: []control.Server{}}
		for _, s := range b.Servers {
			ss := control.Server{
				Name: s.Name, Addr: s.Addr.String(), State: s.State.String(),
				ActiveConns: int64(s.ActiveConns), TotalConns: uint64(s.TotalConns), FailedConns: uint64(s.FailedConns),
			}
			if ev, ok := checks[serverPrefix+b.Name+"/"+s.Name]; ok {
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
	d.mu.Lock()
	st.LastDrill = d.lastDrill
	d.mu.Unlock()
	return st
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
