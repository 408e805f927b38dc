package importer

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// emitter writes the output model as vipd TOML, each note as a comment
// above the table it concerns (or at the top when it concerns none).
type emitter struct {
	b      strings.Builder
	notes  map[string][]Note
	placed map[string]bool
	alias  map[string]string
}

func emit(out *outConfig, notes []Note, sources []string, alias map[string]string) []byte {
	e := &emitter{notes: map[string][]Note{}, placed: map[string]bool{}, alias: alias}
	targets := e.targets(out)
	var header []Note
	for _, n := range notes {
		t := e.resolve(n.target)
		if !targets[t] {
			header = append(header, n)
			continue
		}
		e.notes[t] = append(e.notes[t], n)
	}
	e.line("# vipd configuration written by vipd import from:")
	for _, s := range sources {
		e.comment("  " + s)
	}
	e.line("# Review it (the comments say what was not carried over and what was")
	e.line("# chosen), then run: vipd check -c FILE")
	if len(header) > 0 {
		e.line("#")
		for _, n := range header {
			e.comment(n.String())
		}
	}
	e.vrrp(out)
	for _, n := range out.Nodes {
		e.table("[[node]]", "node:"+n.Name)
		e.kv("name", str(n.Name))
		if n.Address.IsValid() {
			e.kv("address", str(n.Address.String()))
		}
		e.kv("priority", strconv.Itoa(n.Priority))
		if n.Interface != "" {
			e.kv("interface", str(n.Interface))
		}
	}
	for _, t := range out.Tracks {
		e.track(t)
	}
	if out.Notify != nil {
		e.table("[notify]", "notify")
		e.kv("command", strs(out.Notify.Command))
	}
	if out.MaxConn > 0 {
		e.table("[global]", "global")
		e.kv("maxconn", strconv.Itoa(out.MaxConn))
	}
	for _, f := range out.Frontends {
		e.frontend(f)
	}
	for _, b := range out.Backends {
		e.backend(b)
	}
	if h := out.HTTP; h != nil {
		e.table("[http]", "http")
		e.kv("listen", str(h.Listen))
		if len(h.Allow) > 0 {
			var a []string
			for _, p := range h.Allow {
				a = append(a, p.String())
			}
			e.kv("allow", strs(a))
		}
		for _, u := range h.Users {
			e.line("")
			e.line("[[http.user]]")
			e.kv("name", str(u.Name))
			e.kv("password_hash", str(u.Hash))
		}
	}
	return []byte(e.b.String())
}

// targets lists the tables the output has, by note target.
func (e *emitter) targets(out *outConfig) map[string]bool {
	t := map[string]bool{}
	for _, o := range out.Instances {
		t["instance:"+o.Name] = true
	}
	for _, n := range out.Nodes {
		t["node:"+n.Name] = true
	}
	for _, x := range out.Tracks {
		t["track:"+x.Name] = true
	}
	for _, f := range out.Frontends {
		t["frontend:"+f.Name] = true
	}
	for _, b := range out.Backends {
		t["backend:"+b.Name] = true
	}
	t["http"] = out.HTTP != nil
	t["notify"] = out.Notify != nil
	t["global"] = out.MaxConn > 0
	return t
}

func (e *emitter) resolve(target string) string {
	if name, ok := strings.CutPrefix(target, "instance:"); ok {
		if a, ok := e.alias[name]; ok {
			return "instance:" + a
		}
	}
	return target
}

// comment writes s as one TOML comment line: valid UTF-8, no control
// characters (TOML forbids both in comments).
func (e *emitter) comment(s string) {
	e.line("# " + strings.ToValidUTF8(oneLine(s), "\uFFFD"))
}

func (e *emitter) line(s string) {
	e.b.WriteString(s)
	e.b.WriteByte('\n')
}

// table starts a table, with the notes about it above.
func (e *emitter) table(header, target string) {
	e.line("")
	if !e.placed[target] {
		e.placed[target] = true
		for _, n := range e.notes[target] {
			e.comment(n.String())
		}
	}
	e.line(header)
}

func (e *emitter) kv(k, v string) { e.line(k + " = " + v) }

func (e *emitter) vrrp(out *outConfig) {
	switch {
	case len(out.Instances) == 1:
		e.table("[vrrp]", "instance:"+out.Instances[0].Name)
		e.instance(out.Instances[0], false)
	case len(out.Instances) > 1:
		e.table("[vrrp]", "vrrp")
		if out.Shared.Interface != "" {
			e.kv("interface", str(out.Shared.Interface))
		}
		if out.Shared.Unicast {
			e.kv("unicast", "true")
		}
		for _, o := range out.Instances {
			e.table("[[instance]]", "instance:"+o.Name)
			e.instance(o, true)
		}
	}
}

func (e *emitter) instance(o *outInstance, several bool) {
	e.kv("name", str(o.Name))
	e.kv("vrid", strconv.Itoa(o.VRID))
	if o.Interface != "" {
		e.kv("interface", str(o.Interface))
	}
	var vips []string
	for _, v := range o.VIPs {
		if o.bare[v] {
			vips = append(vips, v.Addr().String())
		} else {
			vips = append(vips, v.String())
		}
	}
	e.kv("vips", strs(vips))
	if o.Version == 2 {
		e.kv("version", "2")
	}
	if o.AuthPass != "" {
		e.kv("auth_pass", str(o.AuthPass))
	}
	e.kv("advert_interval", dur(o.Advert))
	if !o.Preempt {
		e.kv("preempt", "false")
	}
	if o.PreemptDelay > 0 {
		e.kv("preempt_delay", dur(o.PreemptDelay))
	}
	if o.Unicast {
		e.kv("unicast", "true")
	}
	if o.GARPRepeat > 0 {
		e.kv("garp_repeat", strconv.Itoa(o.GARPRepeat))
	}
	if o.GARPInterval > 0 {
		e.kv("garp_interval", dur(o.GARPInterval))
	}
	if o.GARPRefresh.Set {
		e.kv("garp_refresh", dur(o.GARPRefresh.V))
	}
	if o.LowerRepeat.Set {
		e.kv("garp_lower_prio_repeat", strconv.Itoa(o.LowerRepeat.V))
	}
	if o.LowerDelay.Set {
		e.kv("garp_lower_prio_delay", dur(o.LowerDelay.V))
	}
	if len(o.Priority) > 0 {
		var p []string
		for _, np := range o.Priority {
			p = append(p, key(np.Node)+" = "+strconv.Itoa(np.Priority))
		}
		e.kv("priority", "{ "+strings.Join(p, ", ")+" }")
	}
}

func (e *emitter) track(t *outTrack) {
	e.table("[[track]]", "track:"+t.Name)
	e.kv("name", str(t.Name))
	e.kv("type", str(t.Type))
	switch t.Type {
	case "script":
		e.kv("command", strs(t.Command))
		e.kv("interval", dur(t.Interval))
		e.kv("timeout", dur(t.Timeout))
		e.kv("rise", strconv.Itoa(t.Rise))
		e.kv("fall", strconv.Itoa(t.Fall))
	case "interface":
		e.kv("interface", str(t.Interface))
	case "backends":
		e.kv("frontend", str(t.Frontend))
		if t.MinHealthy > 1 {
			e.kv("min_healthy", strconv.Itoa(t.MinHealthy))
		}
	}
	e.kv("weight", strconv.Itoa(t.Weight))
	if len(t.Instances) > 0 {
		e.kv("instances", strs(t.Instances))
	}
}

func (e *emitter) frontend(f *outFrontend) {
	e.table("[[frontend]]", "frontend:"+f.Name)
	e.kv("name", str(f.Name))
	e.kv("port", strconv.Itoa(int(f.Port)))
	if f.VIP.IsValid() {
		e.kv("vip", str(f.VIP.String()))
	}
	if f.Address.IsValid() {
		e.kv("address", str(f.Address.String()))
	}
	e.kv("backend", str(f.Backend))
	if f.Balance != "" {
		e.kv("balance", str(f.Balance))
	}
	if f.MaxConn > 0 {
		e.kv("maxconn", strconv.Itoa(f.MaxConn))
	}
	if f.ConnectTimeout > 0 {
		e.kv("connect_timeout", dur(f.ConnectTimeout))
	}
	if f.IdleTimeout > 0 {
		e.kv("idle_timeout", dur(f.IdleTimeout))
	}
}

func (e *emitter) backend(b *outBackend) {
	e.table("[[backend]]", "backend:"+b.Name)
	e.kv("name", str(b.Name))
	e.line("servers = [")
	for _, s := range b.Servers {
		e.line(fmt.Sprintf("  { name = %s, address = %s },", str(s.Name), str(s.Addr.String())))
	}
	e.line("]")
	c := b.Check
	parts := []string{"type = " + str(c.Type)}
	add := func(k, v string) { parts = append(parts, k+" = "+v) }
	if c.Port > 0 {
		add("port", strconv.Itoa(int(c.Port)))
	}
	if c.Method != "" {
		add("method", str(c.Method))
	}
	if c.Path != "" {
		add("path", str(c.Path))
	}
	if c.ExpectStatus > 0 {
		add("expect_status", strconv.Itoa(c.ExpectStatus))
	}
	if c.Interval > 0 {
		add("interval", dur(c.Interval))
	}
	if c.Timeout > 0 {
		add("timeout", dur(c.Timeout))
	}
	if c.Rise > 0 {
		add("rise", strconv.Itoa(c.Rise))
	}
	if c.Fall > 0 {
		add("fall", strconv.Itoa(c.Fall))
	}
	if c.CA != "" {
		add("ca", str(c.CA))
	}
	if c.SNI != "" {
		add("sni", str(c.SNI))
	}
	if c.ClientCert != "" {
		add("client_cert", str(c.ClientCert))
		add("client_key", str(c.ClientKey))
	}
	if c.Insecure {
		add("insecure_skip_verify", "true")
	}
	e.kv("check", "{ "+strings.Join(parts, ", ")+" }")
	if b.ProxyProtocol {
		e.kv("proxy_protocol", "true")
	}
	if b.CloseOnDown {
		e.kv("close_on_down", "true")
	}
}

// str writes a TOML basic string.
func str(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		case r == utf8.RuneError:
			b.WriteString("\uFFFD")
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func strs(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = str(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// key writes a TOML key, quoted unless it is bare.
func key(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return s
	}
	return str(s)
}

func dur(d time.Duration) string { return str(fmtDur(d)) }

var _ = netip.Addr{}
