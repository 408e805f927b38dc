package importer

import (
	"strings"
)

// haproxy.cfg syntax (HAProxy configuration manual, section 2): one
// directive per line; blanks separate words; a backslash escapes the next
// character; "double" and 'single' quotes group words; "#" outside quotes
// starts a comment; a line that starts with a section keyword (global,
// defaults, frontend, backend, listen, ...) opens a section that lasts until
// the next one.

// haDirective is one line of haproxy.cfg.
type haDirective struct {
	Pos   Pos
	Words []string // never empty
	// done is set once the directive is translated or noted; the final
	// sweep names every directive left undone.
	done bool
}

func (d *haDirective) key() string { return d.Words[0] }

func (d *haDirective) arg(i int) string {
	if i+1 < len(d.Words) {
		return d.Words[i+1]
	}
	return ""
}

// line is the directive as a message shows it, escapes written back.
func (d *haDirective) line() string {
	s := strings.NewReplacer("\r", `\r`, "\n", `\n`, "\t", `\t`).Replace(strings.Join(d.Words, " "))
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

// haSection is one section: its header line and its directives.
type haSection struct {
	Kind string // "global", "defaults", "frontend", "backend", "listen", ...
	Name string
	Head *haDirective
	Dirs []*haDirective
	// from is the defaults section this proxy inherits from.
	from *haSection
}

// haProxySections take directives that vipd import translates.
var haProxySections = map[string]bool{"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true}

// haOtherSections are sections vipd has nothing for.
var haOtherSections = map[string]string{
	"userlist":    "vipd's users are [[http.user]] tables; stats auth lines are carried over, userlists are not",
	"peers":       "vipd has no stick tables to share",
	"resolvers":   "vipd does not resolve names; servers are IP addresses",
	"mailers":     "vipd sends no mail; [notify] runs a command on every transition",
	"program":     "vipd starts no programs; use systemd units",
	"http-errors": "vipd proxies TCP only",
	"ring":        "vipd logs to stderr (journald)",
	"cache":       "vipd proxies TCP only",
	"fcgi-app":    "vipd proxies TCP only",
	"log-forward": "vipd logs to stderr (journald)",
	"crt-store":   "vipd terminates no TLS",
	"traces":      "vipd logs to stderr (journald)",
	"acme":        "vipd terminates no TLS",
}

// parseHAProxy reads haproxy.cfg into sections.
func parseHAProxy(fs fileSystem, r *report, b *budget, path string) []*haSection {
	data, ok := b.read(fs, r, Pos{File: path}, path)
	if !ok {
		return nil
	}
	var (
		out []*haSection
		cur *haSection
	)
	lines := strings.Split(string(data), "\n")
	if len(lines) > maxLines {
		r.errorf(Pos{File: path}, "more than %d lines; is this an haproxy.cfg?", maxLines)
		return nil
	}
	for i, raw := range lines {
		pos := Pos{File: path, Line: i + 1}
		words, ok := haWords(strings.TrimSuffix(raw, "\r"))
		if !ok {
			r.errorf(pos, "unterminated quote; close it")
			continue
		}
		if len(words) == 0 {
			continue
		}
		if len(words) > maxWords {
			r.errorf(pos, "more than %d words on one line", maxWords)
			continue
		}
		d := &haDirective{Pos: pos, Words: words}
		k := words[0]
		if strings.HasPrefix(k, ".") {
			d.done = true
			r.errorf(pos, "%s: vipd import does not evaluate HAProxy's conditional blocks; remove the condition and keep the lines HAProxy uses on these hosts", k)
			continue
		}
		if haProxySections[k] || haOtherSections[k] != "" {
			d.done = true
			cur = &haSection{Kind: k, Head: d}
			if len(words) > 1 {
				cur.Name = words[1]
			}
			if cur.Name == "" && (k == "frontend" || k == "backend" || k == "listen") {
				r.errorf(pos, "%s without a name (HAProxy rejects this too); name it", k)
				cur = &haSection{Kind: "unnamed", Head: d}
			}
			out = append(out, cur)
			continue
		}
		if cur == nil {
			d.done = true
			r.notCarried(pos, "", "%s: outside any section (HAProxy rejects this too)", d.line())
			continue
		}
		cur.Dirs = append(cur.Dirs, d)
	}
	uniqueNames(r, out)
	linkDefaults(r, out)
	return out
}

// uniqueNames refuses two frontends (or two backends) of one name, as
// HAProxy does; a listen section is both.
func uniqueNames(r *report, secs []*haSection) {
	fe, be := map[string]*haSection{}, map[string]*haSection{}
	for _, s := range secs {
		var spaces []map[string]*haSection
		switch s.Kind {
		case "frontend":
			spaces = []map[string]*haSection{fe}
		case "backend":
			spaces = []map[string]*haSection{be}
		case "listen":
			spaces = []map[string]*haSection{fe, be}
		}
		for _, m := range spaces {
			if prev, dup := m[s.Name]; dup {
				r.errorf(s.Head.Pos, "%s: the name is already used by %s on line %d (HAProxy rejects this too); rename one", s.label(), prev.label(), prev.Head.Pos.Line)
				s.Kind = "unnamed"
				break
			}
		}
		if s.Kind != "unnamed" {
			for _, m := range spaces {
				m[s.Name] = s
			}
		}
	}
}

// linkDefaults gives each proxy its defaults section: the one named by
// "from NAME", else the last defaults section before it.
func linkDefaults(r *report, secs []*haSection) {
	named := map[string]*haSection{}
	var last *haSection
	for _, s := range secs {
		if s.Kind != "defaults" && s.Kind != "frontend" && s.Kind != "backend" && s.Kind != "listen" {
			continue
		}
		s.from = last
		h := s.Head.Words
		for i := 1; i+1 < len(h); i++ {
			if h[i] == "from" {
				if d, ok := named[h[i+1]]; ok {
					s.from = d
				} else {
					r.errorf(s.Head.Pos, "%s %s from %s: no defaults section of that name before this line", s.Kind, s.Name, h[i+1])
				}
			}
		}
		if s.Kind == "defaults" {
			if s.Name != "" && s.Name != "from" {
				named[s.Name] = s
			}
			last = s
		}
	}
	// A defaults section may inherit from a named one; cut any loop so
	// lookups end.
	for _, s := range secs {
		seen := map[*haSection]bool{s: true}
		for p := s; p.from != nil; p = p.from {
			if seen[p.from] {
				p.from = nil
				break
			}
			seen[p.from] = true
		}
	}
}

// haWords splits one haproxy.cfg line into words. ok is false for an
// unterminated quote.
func haWords(s string) (words []string, ok bool) { return splitQuoted(s, true, haEscape) }

// haEscape is the character HAProxy reads for a backslash and c.
func haEscape(c byte) byte {
	switch c {
	case 'r':
		return '\r'
	case 'n':
		return '\n'
	case 't':
		return '\t'
	}
	return c
}

// own returns the section's last directive whose words start with key
// (one or more words, e.g. "timeout", "connect"), or nil.
func (s *haSection) own(key ...string) *haDirective {
	for i := len(s.Dirs) - 1; i >= 0; i-- {
		if hasPrefix(s.Dirs[i].Words, key) {
			return s.Dirs[i]
		}
	}
	return nil
}

// get is own, falling back to the defaults chain.
func (s *haSection) get(key ...string) *haDirective {
	for p := s; p != nil; p = p.from {
		if d := p.own(key...); d != nil {
			return d
		}
	}
	return nil
}

// all returns the section's directives starting with key, in order; none
// of its own means those of its defaults chain.
func (s *haSection) all(key ...string) []*haDirective {
	for p := s; p != nil; p = p.from {
		var out []*haDirective
		for _, d := range p.Dirs {
			if hasPrefix(d.Words, key) {
				out = append(out, d)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

func hasPrefix(words, key []string) bool {
	if len(words) < len(key) {
		return false
	}
	for i, k := range key {
		if words[i] != k {
			return false
		}
	}
	return true
}

func (s *haSection) label() string {
	if s.Name == "" {
		return s.Kind
	}
	return s.Kind + " " + s.Name
}
