package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/netcfg"
	"github.com/vipd/vipd/vrrp"
)

// Run checks the node described by plan on the host env, listening on the
// segment for listen, and returns the report. It takes about listen (or
// the longest backend check timeout, if longer).
func Run(ctx context.Context, plan Plan, env Env, listen time.Duration) Report {
	r := Report{Node: fmt.Sprintf("%s (%s)", plan.Node.Name, plan.Node.Addr), Config: plan.ConfigPath,
		Running: plan.Running != nil, ListenMs: float64(listen) / float64(time.Millisecond), Findings: []Finding{}}
	if !plan.Node.Addr.IsValid() {
		r.Node = plan.Node.Name
	}
	add := func(check string, fs ...Finding) {
		ran := false
		for _, c := range r.Checks {
			ran = ran || c == check
		}
		if !ran {
			r.Checks = append(r.Checks, check)
		}
	next:
		for _, f := range fs {
			for _, o := range r.Findings {
				if o.Check == f.Check && o.Severity == f.Severity && o.Seen == f.Seen {
					continue next
				}
			}
			r.Findings = append(r.Findings, f)
		}
	}

	// What needs no listening first.
	var warnings []Finding
	for _, w := range plan.Warnings {
		if strings.Contains(w, config.HashesReadable) {
			continue // the files check says it, with the daemon user's view
		}
		warnings = append(warnings, finding(CheckConfig, SevWarning, "", w, "see `vipd check`; the warning says what to change"))
	}
	add(CheckConfig, warnings...)
	add(CheckFiles, checkFiles(filesHost{stat: env.Stat, lookupGroup: env.LookupGroup, lookupUser: env.LookupUser}, plan)...)
	add(CheckListener, checkListeners(plan)...)
	peers := others(plan)
	var links []Link
	if len(plan.Instances) > 0 {
		var err error
		links, err = env.Links()
		add(CheckInterface)
		if err != nil {
			add(CheckInterface, couldNot(CheckInterface, "", "list the interfaces", err))
		}
		for _, in := range plan.Instances {
			if err == nil {
				add(CheckInterface, checkInterface(links, plan.Node, in)...)
			}
		}
		add(CheckSysctl, sysctlFindings(sysctlHost{get: env.Sysctl, routeIf: env.RouteIf, links: links}, plan, peers)...)
		add(CheckFirewall, firewallCheck(ctx, env, plan, peers)...)
	}
	// [bgp]: when the daemon runs BGP mode (docs/bgp.md), a check of each
	// [[bgp.peer]] session (TCP 179 reachable, MD5, the router's ASN)
	// belongs here, with Plan carrying the peers.

	// The listen window: VRRP, status beacons, probes for the VIPs, and
	// the backend checks, all at once.
	deadline := time.Now().Add(listen)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var wg sync.WaitGroup
	tables := map[string]*heardTable{}
	listened := map[string]bool{} // instances whose VRRP socket listened
	// On an interface that is missing or down there is nothing to hear
	// or ask: the interface check has said so.
	usable := func(in Instance) bool {
		l, ok := findLink(links, in.Interface)
		return links == nil || ok && l.AdminUp && l.OperUp
	}
	for _, in := range plan.Instances {
		table := newHeardTable()
		tables[in.Name] = table
		if !usable(in) {
			continue
		}
		src, err := env.ListenVRRP(in.Interface, in.IPv6())
		if err != nil {
			add(CheckVRRP, couldNot(CheckVRRP, in.Name, "listen for VRRP on "+in.Interface, err))
			continue
		}
		listened[in.Name] = true
		checks := vrrp.NewChecker(in.Receive)
		wg.Go(func() {
			defer src.Close()
			listenVRRP(src, checks, in.VRID, deadline, table) // not the map: the loop writes it
		})
	}
	beacons := &beaconTable{from: map[netip.Addr]Beacon{}}
	beaconsHeard := false
	if plan.StatusPort != 0 && len(plan.Instances) > 0 && plan.Beacon != nil {
		known := map[netip.Addr]bool{}
		fams := map[bool]bool{}
		for _, p := range peers {
			known[p.Addr] = true
			fams[p.Addr.Is6()] = true
		}
		for v6 := range fams {
			src, err := env.ListenUDP(plan.StatusPort, v6)
			if err != nil {
				add(CheckPeers, couldNot(CheckPeers, "", fmt.Sprintf("listen for status beacons (UDP %d)", plan.StatusPort), err))
				continue
			}
			beaconsHeard = true
			wg.Go(func() {
				defer src.Close()
				listenBeacons(src, plan.Beacon, known, deadline, beacons)
			})
		}
	}
	claims := map[string][]netcfg.Claim{}
	probeErrs := map[string]error{}
	var claimMu sync.Mutex
	for ifname, targets := range probeTargets(plan, peers, usable) {
		gap := min(time.Second, listen/4)
		wg.Go(func() {
			c, err := env.Probe(wctx, netcfg.ProbeConfig{Interface: ifname, Targets: targets, Rounds: 3, Gap: gap})
			claimMu.Lock()
			defer claimMu.Unlock()
			claims[ifname], probeErrs[ifname] = c, err
		})
	}
	var backendFindings []Finding
	wg.Go(func() { backendFindings = checkBackends(ctx, plan.Servers) })
	wg.Wait()
	// Reading the tables and claims now: every writer is done.
	add(CheckBackends, backendFindings...)
	for ifname, err := range probeErrs {
		if err != nil {
			add(CheckConflict, couldNot(CheckConflict, "", "probe for the VIPs on "+ifname, err))
		}
	}
	for _, in := range plan.Instances {
		add(CheckVRRP, vrrpFindings(plan, in, tables[in.Name].list())...)
		add(CheckConflict, conflictFindings(plan, in, claims[in.Interface], links)...)
	}
	if len(plan.Instances) > 0 {
		add(CheckPeers, peerFindings(plan, tables, beacons.from, listen, listened, beaconsHeard)...)
	}
	return r
}

// Live is the subset of the checks that is cheap and means something on a
// running node, for `vipd status`: each instance's interface and its
// sysctls. (The firewall is left out: nft needs CAP_NET_ADMIN in a child
// process, which the packaged unit does not pass on; the foreign routers
// and peers with other settings are in the instances' problems already.)
// What cannot be read is left out rather than reported.
func Live(plan Plan, env Env) []Finding {
	links, err := env.Links()
	if err != nil {
		return nil
	}
	out := []Finding{}
	for _, in := range plan.Instances {
		out = append(out, checkInterface(links, plan.Node, in)...)
	}
	return append(out, sysctlFindings(sysctlHost{get: env.Sysctl, routeIf: env.RouteIf, links: links, quiet: true}, plan, others(plan))...)
}

// others are the [[node]]s but this one.
func others(plan Plan) []Node {
	var out []Node
	for _, n := range plan.Nodes {
		if n.Name != plan.Node.Name {
			out = append(out, n)
		}
	}
	return out
}

// probeTargets are, per interface, the VIPs to ask for and the other
// nodes' addresses of the same family, whose answers tell the nodes' MACs
// from a foreign holder's.
func probeTargets(plan Plan, peers []Node, usable func(Instance) bool) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	add := func(ifname string, a netip.Addr) {
		for _, x := range out[ifname] {
			if x == a {
				return
			}
		}
		out[ifname] = append(out[ifname], a)
	}
	for _, in := range plan.Instances {
		if !usable(in) {
			continue
		}
		for _, v := range in.VIPs {
			add(in.Interface, v.Addr())
		}
		for _, p := range peers {
			if p.Addr.Is6() == in.IPv6() {
				add(in.Interface, p.Addr)
			}
		}
	}
	return out
}

// sysctlFindings checks each interface once, with the first instance on
// it (per family).
func sysctlFindings(h sysctlHost, plan Plan, peers []Node) []Finding {
	seen := map[string]bool{}
	var out []Finding
	for _, in := range plan.Instances {
		key := fmt.Sprint(in.Interface, in.IPv6())
		if seen[key] {
			continue
		}
		seen[key] = true
		for _, f := range checkSysctls(h, plan.Node, peers, in) {
			if len(plan.Instances) > 1 {
				f.Instance = ""
			}
			out = append(out, f)
		}
	}
	return out
}

// firewallCheck reads the rules once per family and judges the flows of
// every instance, and the status beacons once.
func firewallCheck(ctx context.Context, env Env, plan Plan, peers []Node) []Finding {
	var out []Finding
	read := map[bool][]*ruleset{}
	beacons := true
	for _, in := range plan.Instances {
		v6 := in.IPv6()
		sets, ok := read[v6]
		if !ok {
			var errs []error
			sets, errs = readFirewall(ctx, env.Command, v6)
			read[v6] = sets
			for _, err := range errs {
				out = append(out, couldNot(CheckFirewall, "", "read the firewall", err))
			}
		}
		flows := firewallFlows(plan.Node, peers, in, plan.StatusPort, env.RouteIf, beacons)
		beacons = false
		out = append(out, firewallFindings(sets, flows, in.Name)...)
	}
	return out
}
