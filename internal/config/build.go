package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
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

// Hints for keys that operators bring from keepalived and HAProxy.
var (
	topHints = map[string]string{
		"vrrp_instance":          "write one instance as a [vrrp] table, several as [[instance]] tables",
		"instances":              "write one [[instance]] table per VRRP instance",
		"vrrp_sync_group":        "sync groups are not supported; put VIPs that must move together in one instance",
		"vrrp_script":            `write a [[track]] with type = "script"`,
		"virtual_server":         "write a [[frontend]] and a [[backend]]",
		"defaults":               "write per-frontend and per-backend keys, and [global] maxconn",
		"listen":                 "write a [[frontend]] and a [[backend]]",
		"nodes":                  "write one [[node]] table per host",
		"tracks":                 "write one [[track]] table per tracker",
		"frontends":              "write one [[frontend]] table per port",
		"backends":               "write one [[backend]] table per pool",
		"servers":                "servers belong in a [[backend]]: servers = [\"ip:port\", ...]",
		"virtual_ipaddress":      `write vips = ["..."] in [vrrp]`,
		"virtual_router_id":      "write vrid = N in [vrrp]",
		"stats":                  "write an [http] table",
		"global_defs":            "write [global] and [log]",
		"notify_master":          `write [notify] command = ["/path/to/script"]; it gets instance, state and priority appended`,
		"unicast_peer":           "write unicast = true in [vrrp]; the peers are the other [[node]] addresses",
		"authentication":         `write version = 2 and auth_pass = "..." in [vrrp] (or the [[instance]])`,
		"track_script":           `write a [[track]] with type = "script"`,
		"track_interface":        `write a [[track]] with type = "interface"`,
		"vrrp_garp_master_delay": "write garp_interval and garp_repeat in [vrrp]",
	}
	vrrpHints = map[string]string{
		"nopreempt":               "write preempt = false",
		"virtual_router_id":       "write vrid = N",
		"advert_int":              `did you mean "advert_interval"? it takes a duration string, e.g. advert_interval = "1s"`,
		"priorities":              "write priority = { lb1 = 150, lb2 = 100 } (per node), or priority in each [[node]]",
		"state":                   "vipd has no initial state; the highest priority wins: set priority in each [[node]]",
		"authentication":          `write version = 2 and auth_pass = "..." (keepalived's auth_type PASS; VRRPv3 has no authentication)`,
		"auth_type":               `write version = 2 and auth_pass = "..." (only PASS exists in vipd; auth_type AH is not supported)`,
		"virtual_ipaddress":       `write vips = ["192.168.30.30/24"]`,
		"vip":                     `write vips = ["..."] (a list)`,
		"unicast_peer":            "write unicast = true; the peers are the other [[node]] addresses",
		"unicast_src_ip":          "the source is this host's [[node]] address",
		"garp_master_delay":       "write garp_interval and garp_repeat",
		"garp_master_repeat":      `did you mean "garp_repeat"?`,
		"track_script":            `write a [[track]] with type = "script"`,
		"track_interface":         `write a [[track]] with type = "interface"`,
		"vrrp_version":            "write version = 2 or 3",
		"garp_lower_prio_delay_s": `write garp_lower_prio_delay = "5s"`,
	}
	nodeHints = map[string]string{
		"ip":       `write address = "192.168.30.21"`,
		"addr":     `write address = "192.168.30.21"`,
		"host":     `write name = "..." (matched against --node or the hostname) and address = "<IP>"`,
		"hostname": `write name = "..." (matched against --node or the hostname) and address = "<IP>"`,
		"state":    "vipd has no initial state; the highest priority wins",
	}
	frontendHints = map[string]string{
		"bind":            `write address = "10.0.0.5" and port = 6443`,
		"mode":            "vipd frontends are TCP (layer 4) only; remove it",
		"default_backend": `write backend = "..."`,
		"use_backend":     `write backend = "..."`,
		"timeout_client":  "write idle_timeout",
		"timeout_server":  "write idle_timeout",
		"timeout_connect": "write connect_timeout",
	}
	backendHints = map[string]string{
		"server":        `write servers = ["192.168.30.31:6443", ...]`,
		"health_check":  "write check = { type = \"tcp\" }",
		"healthcheck":   "write check = { type = \"tcp\" }",
		"send_proxy":    "write proxy_protocol = true",
		"send_proxy_v2": "write proxy_protocol = true",
		"balance":       "balance is set on the [[frontend]]",
		"mode":          "vipd backends are TCP (layer 4) only; remove it",
		"port":          `the port is part of each server ("ip:port"); check.port overrides the checked port`,
	}
	checkHints = map[string]string{
		"uri":         `write path = "/readyz"`,
		"expect":      "write expect_status = 200",
		"status":      "write expect_status = 200",
		"verify":      `write ca = "/path/ca.crt", or insecure_skip_verify = true`,
		"inter":       `write interval = "2s"`,
		"skip_verify": "did you mean \"insecure_skip_verify\"?",
	}
	httpHints = map[string]string{
		"users":    "write one [[http.user]] table per user",
		"password": `plain passwords are not accepted; write a [[http.user]] with password_hash = "$2y$..." (htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n')`,
		"bind":     `write listen = "127.0.0.1:9600"`,
		"port":     `write listen = "127.0.0.1:9600"`,
	}
	userHints = map[string]string{
		"password": `plain passwords are not accepted; write password_hash = "$2y$..." (htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n')`,
		"user":     `write name = "..."`,
	}
)

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

func (d *decoder) backend(t *table) Backend {
	t.hints = backendHints
	b := Backend{}
	if !t.has("name") {
		t.badTable(`missing name; add name = "kube-apiserver"`)
	}
	b.Name = t.str("name", "")
	if t.has("name") && b.Name == "" {
		t.bad("name", "", "must not be empty")
	}
	b.Servers = d.servers(t)
	b.Check = d.check(t)
	b.DrainTimeout = t.duration("drain_timeout", DefaultDrainTimeout, 0, 24*time.Hour, "30s")
	b.ProxyProtocol = t.boolean("proxy_protocol", false)
	b.CloseOnDown = t.boolean("close_on_down", false)
	t.finish()
	return b
}

func (d *decoder) servers(t *table) []Server {
	v, ok := t.get("servers")
	if !ok {
		t.badTable(`no servers; add servers = ["192.168.30.31:6443", "192.168.30.32:6443"]`)
		return nil
	}
	var elems []any
	switch x := v.(type) {
	case []any:
		elems = x
	case []map[string]any:
		for _, m := range x {
			elems = append(elems, m)
		}
	default:
		t.bad("servers", v, `must be a list; write servers = ["192.168.30.31:6443", ...]`)
		return nil
	}
	if len(elems) == 0 {
		t.bad("servers", v, `must list at least one server; write servers = ["192.168.30.31:6443", ...]`)
		return nil
	}
	out := make([]Server, 0, len(elems))
	names := map[string]int{}
	addrs := map[netip.AddrPort]int{}
	for i, e := range elems {
		p := indexPath(t.keyPath("servers"), i)
		label := fmt.Sprintf("%s servers[%d]", t.label, i)
		var s Server
		switch x := e.(type) {
		case string:
			ap, err := parseServerAddr(x)
			if err != nil {
				d.errAt(p, "%s = %q: %v", label, x, err)
				break
			}
			s = Server{Name: ap.Addr().String(), Addr: ap}
		case map[string]any:
			st := d.table(x, p, joinPath(t.name, "servers"), label)
			s.Name = st.str("name", "")
			if st.has("name") && s.Name == "" {
				st.bad("name", "", "must not be empty; remove it to use the address as the name")
			}
			a := st.str("address", "")
			if !st.has("address") {
				st.badTable(`missing address; add address = "192.168.30.31:6443"`)
			} else {
				if _, isStr := x["address"].(string); isStr {
					ap, err := parseServerAddr(a)
					if err != nil {
						st.bad("address", a, "%v", err)
					} else {
						s.Addr = ap
					}
				}
			}
			if s.Name == "" && s.Addr.IsValid() {
				s.Name = s.Addr.Addr().String()
			}
			st.finish()
		default:
			d.errAt(p, `%s = %s: must be "ip:port" or { name = "cp1", address = "ip:port" }`, label, render(e))
		}
		if s.Addr.IsValid() {
			if j, dup := addrs[s.Addr]; dup {
				d.errAt(p, "%s: %s is already servers[%d]; list each server once", label, s.Addr, j)
			}
			addrs[s.Addr] = i
		}
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				d.errAt(p, `%s: the name %q is already used by servers[%d]; name them, e.g. { name = "cp1-%d", address = %q }`, label, s.Name, j, i+1, s.Addr)
			}
			names[s.Name] = i
		}
		out = append(out, s)
	}
	return out
}

// parseServerAddr parses "ip:port"; hostnames are not resolved.
func parseServerAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		if ap.Port() == 0 {
			return ap, fmt.Errorf("port 0 is not a port; write %q", netip.AddrPortFrom(ap.Addr(), 6443))
		}
		if ap.Addr().Is4In6() {
			return ap, fmt.Errorf("an IPv4-mapped IPv6 address; write %q", netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPort{}, fmt.Errorf("missing the port; write %q", netip.AddrPortFrom(a, 6443))
	}
	if i := strings.LastIndex(s, ":"); i >= 0 {
		host, port := s[:i], s[i+1:]
		if _, err := netip.ParseAddr(host); err == nil && strings.Contains(host, ":") {
			return netip.AddrPort{}, fmt.Errorf("write IPv6 servers in brackets, e.g. %q", "["+host+"]:"+port)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return netip.AddrPort{}, fmt.Errorf(`bad port %q; write "ip:port" with a port 1..65535`, port)
		}
	}
	return netip.AddrPort{}, fmt.Errorf(`not "ip:port" (hostnames are not resolved); write the server's IP, e.g. "192.168.30.31:6443"`)
}

func (d *decoder) check(bt *table) Check {
	c := Check{
		Type:         DefaultCheckType,
		Method:       DefaultCheckMethod,
		Path:         DefaultCheckPath,
		ExpectStatus: DefaultCheckExpectStatus,
		Interval:     DefaultCheckInterval,
		Timeout:      DefaultCheckTimeout,
		Rise:         DefaultCheckRise,
		Fall:         DefaultCheckFall,
	}
	t := bt.sub("check", bt.label+" check")
	if t == nil {
		return c
	}
	t.hints = checkHints
	c.Type = t.oneOf("type", DefaultCheckType, CheckTCP, CheckTLS, CheckHTTP, CheckHTTPS, CheckNone)
	c.Port = uint16(t.integer("port", 0, 1, 65535, "leave it out to check each server's own port"))
	c.Method = t.oneOf("method", DefaultCheckMethod, "GET", "HEAD", "OPTIONS", "POST")
	c.Path = t.str("path", DefaultCheckPath)
	if !strings.HasPrefix(c.Path, "/") {
		t.bad("path", t.m["path"], "must start with /; write path = %q", "/"+c.Path)
		c.Path = DefaultCheckPath
	}
	c.ExpectStatus = int(t.integer("expect_status", DefaultCheckExpectStatus, 100, 599, "an HTTP status code, e.g. expect_status = 200"))
	c.Interval = t.duration("interval", DefaultCheckInterval, 10*time.Millisecond, time.Hour, "2s")
	c.Timeout = t.duration("timeout", DefaultCheckTimeout, 10*time.Millisecond, time.Hour, "1s")
	c.Rise = int(t.integer("rise", DefaultCheckRise, 1, 100, "the number of passed checks in a row that bring a server UP, e.g. rise = 2"))
	c.Fall = int(t.integer("fall", DefaultCheckFall, 1, 100, "the number of failed checks in a row that take a server DOWN, e.g. fall = 3"))
	c.CA = t.str("ca", "")
	c.SNI = t.str("sni", "")
	c.ClientCert = t.str("client_cert", "")
	c.ClientKey = t.str("client_key", "")
	c.InsecureSkipVerify = t.boolean("insecure_skip_verify", false)
	t.finish()

	httpKeys := []string{"method", "path", "expect_status"}
	tlsKeys := []string{"ca", "sni", "client_cert", "client_key", "insecure_skip_verify"}
	isHTTP := c.Type == CheckHTTP || c.Type == CheckHTTPS
	isTLS := c.Type == CheckTLS || c.Type == CheckHTTPS
	for _, k := range httpKeys {
		if t.has(k) && !isHTTP {
			t.bad(k, t.m[k], `applies only to type = "http" or "https" checks, and this one is type = %q; remove it or change the type`, c.Type)
		}
	}
	for _, k := range tlsKeys {
		if t.has(k) && !isTLS {
			t.bad(k, t.m[k], `applies only to type = "tls" or "https" checks, and this one is type = %q; remove it or change the type`, c.Type)
		}
	}
	if c.Type == CheckNone {
		for _, k := range []string{"port", "interval", "timeout", "rise", "fall"} {
			if t.has(k) {
				t.bad(k, t.m[k], `has no effect with type = "none" (servers are always UP); remove it or pick a check type`)
			}
		}
	}
	for _, k := range []string{"ca", "client_cert", "client_key"} {
		if v := t.m[k]; v != nil {
			if s, _ := v.(string); s != "" && !filepath.IsAbs(s) {
				t.bad(k, v, "must be an absolute path (the daemon runs from /); write %q", "/etc/vipd/"+s)
			}
		}
	}
	if (c.ClientCert == "") != (c.ClientKey == "") && isTLS {
		if c.ClientCert == "" {
			t.bad("client_key", c.ClientKey, `needs client_cert too; add client_cert = "/path/to/client.crt"`)
		} else {
			t.bad("client_cert", c.ClientCert, `needs client_key too; add client_key = "/path/to/client.key"`)
		}
	}
	if c.CA != "" && c.InsecureSkipVerify {
		t.bad("insecure_skip_verify", true, "contradicts ca = %q; keep ca (verify against it) or remove it (skip verification)", c.CA)
	}
	if c.Type != CheckNone && c.Timeout >= c.Interval {
		key := "timeout"
		if !t.has("timeout") {
			key = "interval"
		}
		t.warnKey(key, "timeout %s is not shorter than interval %s; a slow check overlaps the next one; make timeout shorter than interval", fmtDur(c.Timeout), fmtDur(c.Interval))
	}
	if c.Type == CheckHTTPS && c.CA == "" && !c.InsecureSkipVerify {
		t.d.warnAt(t.keyPath("type"), `%s: an https check without ca verifies against the system roots, which do not sign a cluster's kube-apiserver certificate; set ca = "/etc/kubernetes/pki/ca.crt" (or insecure_skip_verify = true)`, t.label)
	}
	return c
}

func (d *decoder) control(t *table) Control {
	c := Control{Socket: DefaultSocket, Mode: DefaultSocketMode}
	c.Socket = t.str("socket", DefaultSocket)
	if !filepath.IsAbs(c.Socket) {
		t.bad("socket", t.m["socket"], "must be an absolute path; e.g. socket = %q", DefaultSocket)
	}
	c.Group = t.str("group", "")
	if t.has("group") && c.Group == "" {
		t.bad("group", "", "must not be empty; remove it to keep the daemon's group")
	}
	if v, ok := t.get("mode"); ok {
		var (
			mode uint64
			err  error
		)
		switch x := v.(type) {
		case string:
			mode, err = strconv.ParseUint(strings.TrimPrefix(x, "0o"), 8, 32)
		case int64:
			// 0o660 in TOML; a decimal 660 is almost surely a mistake.
			if x < 0 {
				err = fmt.Errorf("negative")
			}
			mode = uint64(x)
			if x == 660 || x == 640 || x == 600 || x == 666 || x == 770 {
				err = fmt.Errorf("decimal")
			}
		default:
			err = fmt.Errorf("type")
		}
		if err != nil || mode > 0o777 {
			t.bad("mode", v, `must be octal permission bits; write mode = "0660" (or 0o660)`)
		} else {
			c.Mode = os.FileMode(mode)
			if c.Mode&0o002 != 0 {
				t.warnKey("mode", "anyone on the host can drive failovers through a world-writable socket; use \"0660\" with group")
			}
		}
	}
	t.finish()
	return c
}

func (d *decoder) http(t *table) *HTTP {
	t.hints = httpHints
	h := &HTTP{Listen: DefaultHTTPListen}
	h.Listen = t.str("listen", DefaultHTTPListen)
	if t.has("listen") {
		if err := checkListen(h.Listen); err != nil {
			t.bad("listen", t.m["listen"], "%v", err)
		}
	}
	users, _ := t.list("user")
	names := map[string]int{}
	for i, m := range users {
		ut := d.table(m, indexPath(t.keyPath("user"), i), "http.user", elemLabel("http.user", m, i))
		ut.hints = userHints
		var u User
		if !ut.has("name") {
			ut.badTable(`missing name; add name = "admin"`)
		}
		u.Name = ut.str("name", "")
		if ut.has("name") && (u.Name == "" || strings.Contains(u.Name, ":")) {
			ut.bad("name", u.Name, `must be non-empty and without ":" (basic auth splits on it)`)
		}
		if j, dup := names[u.Name]; dup && u.Name != "" {
			ut.bad("name", u.Name, "already used by [[http.user]] #%d; user names must be unique", j+1)
		}
		names[u.Name] = i
		if !ut.has("password_hash") {
			ut.badTable(`missing password_hash; add password_hash = "$2y$..." (htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n')`)
		}
		u.PasswordHash = ut.str("password_hash", "")
		if ut.has("password_hash") {
			if err := checkBcrypt(u.PasswordHash); err != nil {
				ut.bad("password_hash", redact(u.PasswordHash), "%v", err)
			}
		}
		ut.finish()
		h.Users = append(h.Users, u)
	}
	if _, ok := t.m["allow"]; ok {
		allow, ok := t.strings("allow")
		if ok && len(allow) == 0 {
			t.bad("allow", []any{}, `lets nobody in; list client networks, e.g. allow = ["127.0.0.0/8", "10.0.0.0/8"], or remove it (loopback only)`)
		}
		for i, s := range allow {
			p, err := parseNet(s)
			if err != nil {
				d.errAt(indexPath(t.keyPath("allow"), i), "[http] allow[%d] = %q: %v", i, s, err)
				continue
			}
			h.Allow = append(h.Allow, p)
		}
	} else {
		t.get("allow")
		h.Allow = DefaultHTTPAllow()
		if ap, err := netip.ParseAddrPort(h.Listen); (err == nil && !ap.Addr().IsLoopback()) || strings.HasPrefix(h.Listen, ":") {
			t.warnKey("listen", `allow is not set, so only loopback clients get in; add allow = ["10.0.0.0/8"] for the networks that may read it`)
		}
	}
	t.finish()
	return h
}

// redact keeps secrets out of messages (and so out of logs): a bcrypt hash
// shows its algorithm and cost only, anything else may be a plain password.
func redact(hash string) string {
	if strings.HasPrefix(hash, "$2") && len(hash) > 7 {
		return hash[:7] + "..."
	}
	return "<redacted>"
}

func checkListen(s string) error {
	if strings.HasPrefix(s, ":") {
		if p, err := strconv.ParseUint(s[1:], 10, 16); err == nil && p > 0 {
			return nil
		}
	} else if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 && ap.Addr().Zone() == "" {
		return nil
	}
	return fmt.Errorf(`must be "ip:port" (or ":port" for every address); e.g. listen = %q`, DefaultHTTPListen)
}

func checkBcrypt(h string) error {
	if !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
		return fmt.Errorf(`not a bcrypt hash ($2a$, $2b$ or $2y$); generate one with: htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n'`)
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil || len(h) != 60 {
		return fmt.Errorf(`a truncated or damaged bcrypt hash (want 60 characters); generate it again with: htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n'`)
	}
	return nil
}

// parseNet accepts "10.0.0.0/8" or a bare address (a /32 or /128).
func parseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf(`not a CIDR; write e.g. "10.0.0.0/8" or "192.168.30.5"`)
		}
		if p.Masked() != p {
			return p, fmt.Errorf("has host bits set; write %q", p.Masked().String())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf(`not a CIDR; write e.g. "10.0.0.0/8" or "192.168.30.5"`)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (d *decoder) notify(t *table) *Notify {
	n := &Notify{Timeout: DefaultNotifyTimeout}
	if !t.has("command") {
		t.badTable(`missing command; add command = ["/usr/local/bin/vipd-notify"] (it gets instance, state and priority appended)`)
	}
	cmd, ok := t.strings("command")
	if ok && (len(cmd) == 0 || cmd[0] == "") {
		t.bad("command", t.m["command"], `must name a program; write command = ["/usr/local/bin/vipd-notify"]`)
	}
	n.Command = cmd
	n.Timeout = t.duration("timeout", DefaultNotifyTimeout, time.Millisecond, time.Hour, "5s")
	t.finish()
	return n
}
