package config

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Defaults. They make the minimal file of DESIGN.md section 7 valid.
const (
	DefaultAdvertInterval     = 200 * time.Millisecond
	KeepalivedAdvertInterval  = time.Second
	DefaultChecksum           = "pseudo-header"
	DefaultGARPRepeat         = 5
	DefaultGARPInterval       = 100 * time.Millisecond
	DefaultGARPRefresh        = 60 * time.Second
	DefaultStatusPort         = 9601
	DefaultLivenessPort       = 9602
	DefaultStartupInterval    = time.Second
	DefaultPriority           = 100
	DefaultScriptInterval     = 2 * time.Second
	DefaultScriptTimeout      = time.Second
	DefaultScriptRise         = 2
	DefaultScriptFall         = 2
	DefaultMinHealthy         = 1
	DefaultBalance            = BalanceLeastConn
	DefaultConnectTimeout     = 5 * time.Second
	DefaultDrainTimeout       = 30 * time.Second
	DefaultCheckType          = CheckTCP
	DefaultCheckMethod        = "GET"
	DefaultCheckPath          = "/"
	DefaultCheckExpectStatus  = 200
	DefaultCheckInterval      = 2 * time.Second
	DefaultCheckTimeout       = time.Second
	DefaultCheckRise          = 2
	DefaultCheckFall          = 3
	DefaultSocket             = "/run/vipd/vipd.sock"
	DefaultSocketMode         = os.FileMode(0o660)
	DefaultHTTPListen         = "127.0.0.1:9600"
	DefaultNotifyTimeout      = 5 * time.Second
	DefaultLogLevel           = "info"
	DefaultLogFormat          = "auto"
	ChecksumRFC9568           = "rfc9568"
	ChecksumPseudoHeader      = DefaultChecksum
	PresetKeepalived          = "keepalived"
	maxAdvertInterval         = 4095 * 10 * time.Millisecond
	advertIntervalGranularity = 10 * time.Millisecond
)

// DefaultHTTPAllow is the [http] allow list when the key is absent:
// loopback only.
func DefaultHTTPAllow() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

func (d *decoder) config(raw map[string]any) *Config {
	c := &Config{}
	root := d.table(raw, "", "", "")
	root.hints = topHints
	d.vrrpTables(root, c)
	nodes, _ := root.list("node")
	for i, m := range nodes {
		c.Nodes = append(c.Nodes, d.node(d.table(m, indexPath("node", i), "node", elemLabel("node", m, i))))
	}
	tracks, _ := root.list("track")
	for i, m := range tracks {
		c.Tracks = append(c.Tracks, d.track(d.table(m, indexPath("track", i), "track", elemLabel("track", m, i))))
	}
	frontends, _ := root.list("frontend")
	for i, m := range frontends {
		c.Frontends = append(c.Frontends, d.frontend(d.table(m, indexPath("frontend", i), "frontend", elemLabel("frontend", m, i))))
	}
	backends, _ := root.list("backend")
	for i, m := range backends {
		c.Backends = append(c.Backends, d.backend(d.table(m, indexPath("backend", i), "backend", elemLabel("backend", m, i))))
	}
	c.Control = Control{Socket: DefaultSocket, Mode: DefaultSocketMode}
	if t := root.sub("control", "[control]"); t != nil {
		c.Control = d.control(t)
	}
	if t := root.sub("http", "[http]"); t != nil {
		c.HTTP = d.http(t)
	}
	if t := root.sub("notify", "[notify]"); t != nil {
		c.Notify = d.notify(t)
	}
	c.Log = Log{Level: DefaultLogLevel, Format: DefaultLogFormat}
	if t := root.sub("log", "[log]"); t != nil {
		c.Log.Level = t.oneOf("level", DefaultLogLevel, "trace", "debug", "info", "warn", "error")
		c.Log.Format = t.oneOf("format", DefaultLogFormat, "json", "console", "auto")
		t.finish()
	}
	if t := root.sub("global", "[global]"); t != nil {
		c.Global.MaxConn = int(t.integer("maxconn", 0, 0, 1<<24, "0 means unlimited"))
		t.finish()
	}
	c.BGP = d.bgpTable(root, c)
	root.finish()
	return c
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// parseVIP accepts "192.168.30.30/24" or "192.168.30.30" (a /32).
func parseVIP(s string) (netip.Prefix, error) {
	var (
		pfx netip.Prefix
		err error
	)
	if strings.Contains(s, "/") {
		pfx, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		a, err = netip.ParseAddr(s)
		if err == nil && a.Zone() == "" {
			pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
	}
	switch {
	case strings.Contains(s, "%"):
		return pfx, fmt.Errorf(`a VIP has no zone; drop the %%%s and set the link with [vrrp] interface`, s[strings.Index(s, "%")+1:])
	case err != nil:
		return pfx, fmt.Errorf(`not an IP address or prefix; write "192.168.30.30" or "192.168.30.30/24"`)
	}
	a := pfx.Addr()
	if a.Is4In6() {
		return pfx, fmt.Errorf("an IPv4-mapped IPv6 address; write it as %q", a.Unmap().String())
	}
	if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
		return pfx, fmt.Errorf("a VIP must be a unicast address on the LAN, not unspecified, loopback or multicast")
	}
	return pfx, nil
}

func (d *decoder) node(t *table) Node {
	t.hints = nodeHints
	var n Node
	if !t.has("name") {
		t.badTable(`missing name; add name = "lb1" (matched against --node, then the hostname)`)
	}
	n.Name = t.str("name", "")
	if t.has("name") && n.Name == "" {
		t.bad("name", "", `must not be empty; write name = "lb1"`)
	}
	if !t.has("address") {
		t.badTable(`missing address; add this host's IP on the VRRP link, e.g. address = "192.168.30.21"`)
	}
	if s := t.str("address", ""); isString(t.m["address"]) {
		a, err := parseHostAddr(s)
		if err != nil {
			t.bad("address", s, "%v", err)
		}
		n.Address = a
	}
	n.Priority = uint8(t.integer("priority", DefaultPriority, 1, 255,
		"use 1..254, higher wins (0 is sent only by a master that is leaving; 255 marks the address owner); e.g. priority = 100"))
	n.Interface = t.str("interface", "")
	t.finish()
	return n
}

// parseHostAddr parses a plain IP address (no zone, no port, no hostname).
func parseHostAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err == nil && a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("write the address without %%%s; the link is set with interface", a.Zone())
	case err == nil && a.Is4In6():
		return netip.Addr{}, fmt.Errorf("an IPv4-mapped IPv6 address; write it as %q", a.Unmap().String())
	case err == nil:
		return a, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.Addr{}, fmt.Errorf("an address without a port is expected here; write %q", ap.Addr().String())
	}
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return netip.Addr{}, fmt.Errorf("an address without a prefix length is expected here; write %q", pfx.Addr().String())
	}
	return netip.Addr{}, fmt.Errorf(`not an IP address (hostnames are not resolved); write an IP such as "192.168.30.21"`)
}

func (d *decoder) track(t *table) Track {
	var tr Track
	if !t.has("name") {
		t.badTable(`missing name; add name = "apiserver-local"`)
	}
	tr.Name = t.str("name", "")
	if t.has("name") && tr.Name == "" {
		t.bad("name", "", `must not be empty`)
	}
	if !t.has("type") {
		t.badTable(`missing type; add type = "script", "interface" or "backends"`)
	}
	tr.Type = t.oneOf("type", "", TrackScript, TrackInterface, TrackBackends)
	tr.Weight = int(t.integer("weight", 0, -254, 254,
		"a negative weight subtracts from the priority while failing, a positive one adds while healthy, 0 puts the instance in FAULT on failure"))
	cmd, cmdOK := t.strings("command")
	tr.Command = cmd
	tr.Interval = t.duration("interval", DefaultScriptInterval, 10*time.Millisecond, time.Hour, "2s")
	tr.Timeout = t.duration("timeout", DefaultScriptTimeout, 10*time.Millisecond, time.Hour, "1s")
	tr.Rise = int(t.integer("rise", DefaultScriptRise, 1, 100, "the number of successes in a row that make it healthy, e.g. rise = 2"))
	tr.Fall = int(t.integer("fall", DefaultScriptFall, 1, 100, "the number of failures in a row that make it fail, e.g. fall = 2"))
	tr.Interface = t.str("interface", "")
	tr.Frontend = t.str("frontend", "")
	tr.MinHealthy = int(t.integer("min_healthy", DefaultMinHealthy, 1, 1000, "the fewest healthy servers that keep the tracker up, e.g. min_healthy = 1"))
	tr.Instances, _ = t.strings("instances")
	t.finish()

	owner := map[string]string{
		"command": TrackScript, "interval": TrackScript, "timeout": TrackScript, "rise": TrackScript, "fall": TrackScript,
		"interface": TrackInterface,
		"frontend":  TrackBackends, "min_healthy": TrackBackends,
	}
	if tr.Type != "" {
		for _, k := range []string{"command", "interval", "timeout", "rise", "fall", "interface", "frontend", "min_healthy"} {
			if t.has(k) && owner[k] != tr.Type {
				t.bad(k, t.m[k], "applies only to type = %q trackers, and this one is type = %q; remove it", owner[k], tr.Type)
			}
		}
	}
	// Track is a union by type: keep the fields of other types zero.
	if tr.Type != TrackScript {
		tr.Interval, tr.Timeout, tr.Rise, tr.Fall = 0, 0, 0, 0
	}
	if tr.Type != TrackBackends {
		tr.MinHealthy = 0
	}
	switch tr.Type {
	case TrackScript:
		switch {
		case !t.has("command"):
			t.badTable(`a script tracker needs a command; add command = ["/usr/local/bin/check", "arg"] (argv, run without a shell)`)
		case cmdOK && (len(cmd) == 0 || cmd[0] == ""):
			t.bad("command", t.m["command"], `must name a program; write command = ["/usr/local/bin/check", "arg"] (argv, run without a shell)`)
		}
		if tr.Timeout >= tr.Interval && t.m["timeout"] != nil {
			t.warnKey("timeout", "not shorter than interval %s; a slow script is still running when the next run is due; make timeout shorter", fmtDur(tr.Interval))
		}
	case TrackInterface:
		if tr.Interface == "" {
			t.badTable(`an interface tracker needs the link to watch; add interface = "eth0"`)
		}
	case TrackBackends:
		if tr.Frontend == "" {
			t.badTable(`a backends tracker needs the frontend to watch; add frontend = "kubernetes"`)
		}
	}
	return tr
}

func (d *decoder) frontend(t *table) Frontend {
	t.hints = frontendHints
	var f Frontend
	if !t.has("name") {
		t.badTable(`missing name; add name = "kubernetes"`)
	}
	f.Name = t.str("name", "")
	if t.has("name") && f.Name == "" {
		t.bad("name", "", "must not be empty")
	}
	if !t.has("port") {
		t.badTable("missing port; add the port clients connect to, e.g. port = 6443")
	}
	f.Port = uint16(t.integer("port", 0, 1, 65535, "e.g. port = 6443"))
	if !t.has("backend") {
		t.badTable(`missing backend; add backend = "<name of a [[backend]]>"`)
	}
	f.Backend = t.str("backend", "")
	f.Balance = t.oneOf("balance", DefaultBalance, BalanceLeastConn, BalanceRoundRobin, BalanceSource)
	if s := t.str("address", ""); isString(t.m["address"]) {
		a, err := parseHostAddr(s)
		if err != nil {
			t.bad("address", t.m["address"], "%v", err)
		}
		f.Address = a
	}
	if s := t.str("vip", ""); isString(t.m["vip"]) {
		a, err := parseHostAddr(s)
		if err != nil {
			t.bad("vip", t.m["vip"], "%v", err)
		}
		f.VIP = a
	}
	if f.Address.IsValid() && f.VIP.IsValid() {
		t.bad("vip", t.m["vip"], "and address = %q both given; a frontend binds either one of the VIPs (vip) or a fixed address (address): remove one", f.Address)
	}
	f.MaxConn = int(t.integer("maxconn", 0, 0, 1<<24, "0 means unlimited"))
	f.ConnectTimeout = t.duration("connect_timeout", DefaultConnectTimeout, time.Millisecond, 10*time.Minute, "5s")
	f.IdleTimeout = t.duration("idle_timeout", 0, 0, 365*24*time.Hour, "0s", "0s means none, which keeps watches and logs -f alive")
	t.finish()
	return f
}
