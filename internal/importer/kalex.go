package importer

import (
	"path/filepath"
	"regexp"
	"strings"
)

// keepalived.conf syntax, as keepalived's own parser reads it (lib/parser.c):
// a statement is a keyword and its arguments on one line, optionally
// followed by a { block } of statements; braces are tokens of their own;
// "!" and "#" start a comment anywhere outside double quotes ("\#" and "\!"
// escape them); a line ending in "\" continues on the next; "include
// PATTERN" reads the matching files in place, a relative pattern being
// relative to the including file; "@id" at the start of a line keeps it
// only on the host whose config id is id ("@^id": on every other host);
// "$NAME=value" defines a parameter that later "$NAME" and "${NAME}"
// expand to.

// kaStmt is one keepalived.conf statement.
type kaStmt struct {
	Pos   Pos
	Words []string // never empty: Words[0] is the keyword
	// Block holds the statements between { and }; HasBlock tells an
	// empty block from none.
	Block    []*kaStmt
	HasBlock bool
	// done is set once the statement is translated or noted; the final
	// sweep names every statement left undone.
	done bool
}

func (s *kaStmt) key() string { return s.Words[0] }

// args returns the words after the keyword.
func (s *kaStmt) args() []string { return s.Words[1:] }

type tokKind uint8

const (
	tWord tokKind = iota
	tOpen
	tClose
	tEOL
)

type kaTok struct {
	pos  Pos
	text string
	kind tokKind
}

// kaLexer turns one node's keepalived.conf and its includes into tokens.
type kaLexer struct {
	fs    fileSystem
	r     *report
	b     *budget
	node  string // the config id "@id" lines are matched against
	toks  []kaTok
	stack []string // files being read, for include cycles
	defs  map[string]string
	full  bool // the token budget is spent: read nothing more
}

// parseKeepalived reads path (and its includes) as node's keepalived.conf.
func parseKeepalived(fs fileSystem, r *report, b *budget, node, path string) []*kaStmt {
	l := &kaLexer{fs: fs, r: r, b: b, node: node}
	l.file(path, Pos{File: path}, 0)
	p := &kaParser{toks: l.toks, r: r}
	return p.block(0, Pos{})
}

func (l *kaLexer) file(name string, from Pos, depth int) {
	for i, s := range l.stack {
		if s == name {
			chain := append(append([]string(nil), l.stack[i:]...), name)
			l.r.errorf(from, "include cycle: %s; remove one of these includes", strings.Join(chain, " -> "))
			return
		}
	}
	data, ok := l.b.read(l.fs, l.r, from, name)
	if !ok {
		return
	}
	l.stack = append(l.stack, name)
	defer func() { l.stack = l.stack[:len(l.stack)-1] }()

	var (
		acc     strings.Builder
		accLine int
	)
	for i, raw := range strings.Split(string(data), "\n") {
		if l.full {
			return
		}
		text, cont := decomment(strings.TrimSuffix(raw, "\r"))
		if acc.Len() == 0 {
			accLine = i + 1
		} else if text != "" {
			acc.WriteByte(' ')
		}
		acc.WriteString(text)
		if cont && acc.Len() < maxFileSize {
			continue
		}
		l.line(acc.String(), Pos{File: name, Line: accLine}, depth)
		acc.Reset()
	}
	if acc.Len() > 0 {
		l.line(acc.String(), Pos{File: name, Line: accLine}, depth)
	}
}

// decomment strips a comment and surrounding blanks; cont reports a
// trailing "\" (the line continues).
func decomment(s string) (text string, cont bool) {
	var b strings.Builder
	quote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quote = !quote
		case c == '\\' && i+1 == len(s):
			cont = true
			continue
		case c == '\\' && !quote && (s[i+1] == '#' || s[i+1] == '!'):
			i++
			c = s[i]
		case c == '\\':
			b.WriteByte(c)
			i++
			c = s[i]
		case !quote && (c == '#' || c == '!'):
			return strings.TrimSpace(b.String()), false
		}
		b.WriteByte(c)
	}
	return strings.TrimSpace(b.String()), cont
}

var kaDefRE = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$`)

func (l *kaLexer) line(text string, pos Pos, depth int) {
	if text == "" {
		return
	}
	if text[0] == '@' {
		id, rest := text[1:], ""
		if i := strings.IndexAny(id, " \t"); i >= 0 {
			id, rest = id[:i], id[i+1:]
		}
		want := true
		if strings.HasPrefix(id, "^") {
			id, want = id[1:], false
		}
		if (id == l.node) != want {
			return
		}
		text = strings.TrimSpace(rest)
		if text == "" {
			return
		}
	}
	if m := kaDefRE.FindStringSubmatch(text); m != nil {
		if l.defs == nil {
			l.defs = map[string]string{}
		}
		if len(l.defs) < 1024 {
			l.defs[m[1]] = l.expand(m[2], pos)
		}
		return
	}
	text = l.expand(text, pos)
	words, kinds, ok := tokenize(text)
	if !ok {
		l.r.errorf(pos, `unterminated quote: %s; close the "`, clip(text))
		return
	}
	if len(words) == 0 {
		return
	}
	if words[0] == "include" && kinds[0] == tWord {
		l.include(words[1:], pos, depth)
		return
	}
	if len(l.toks)+len(words) > maxTokens {
		l.r.errorf(pos, "more than %d words in the keepalived configuration; vipd import stops here", maxTokens)
		l.full = true
		return
	}
	for i, w := range words {
		l.toks = append(l.toks, kaTok{pos: pos, text: w, kind: kinds[i]})
	}
	l.toks = append(l.toks, kaTok{pos: pos, kind: tEOL})
}

// expand replaces $NAME and ${NAME} by their definitions; undefined names
// stay as written (an unfilled template placeholder is reported where its
// value is used).
func (l *kaLexer) expand(s string, pos Pos) string {
	if len(l.defs) == 0 || !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		j, name := i+1, ""
		if j < len(s) && s[j] == '{' {
			if k := strings.IndexByte(s[j:], '}'); k > 0 {
				name, j = s[j+1:j+k], j+k+1
			}
		} else {
			k := j
			for k < len(s) && (isAlnum(s[k]) || s[k] == '_') {
				k++
			}
			name, j = s[j:k], k
		}
		v, ok := l.defs[name]
		if !ok {
			b.WriteByte('$')
			continue
		}
		if b.Len()+len(v) > maxFileSize {
			l.r.errorf(pos, "parameter $%s expands to more than %d bytes", name, maxFileSize)
			return s
		}
		b.WriteString(v)
		i = j - 1
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// tokenize splits a decommented line into words and braces; double quotes
// group words (and are removed). ok is false for an unterminated quote.
func tokenize(s string) (words []string, kinds []tokKind, ok bool) {
	var (
		cur    strings.Builder
		inWord bool
		quote  bool
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			kinds = append(kinds, tWord)
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quote = !quote
			inWord = true
		case quote:
			cur.WriteByte(c)
		case c == '$' && i+1 < len(s) && s[i+1] == '{', c == '{' && i+1 < len(s) && s[i+1] == '{':
			// ${NAME} and {{ .template }} stay one word: they are
			// unexpanded placeholders, reported where they are used.
			end := "}"
			if c == '{' {
				end = "}}"
			}
			j := strings.Index(s[i:], end)
			if j < 0 {
				j = len(s) - i - len(end)
			}
			cur.WriteString(s[i : i+j+len(end)])
			i += j + len(end) - 1
			inWord = true
		case c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r':
			flush()
		case c == '{' || c == '}':
			flush()
			k := tOpen
			if c == '}' {
				k = tClose
			}
			words = append(words, string(c))
			kinds = append(kinds, k)
		default:
			cur.WriteByte(c)
			inWord = true
		}
		if len(words) > maxWords {
			return words, kinds, true
		}
	}
	flush()
	return words, kinds, !quote
}

func (l *kaLexer) include(args []string, pos Pos, depth int) {
	if len(args) == 0 {
		l.r.errorf(pos, "include without a file; write include /etc/keepalived/conf.d/*.conf")
		return
	}
	pattern := strings.Join(args, " ")
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(pos.File), pattern)
	}
	if depth+1 > maxIncludeDepth {
		l.r.errorf(pos, "include %s: includes nest deeper than %d files; is there a loop?", pattern, maxIncludeDepth)
		return
	}
	matches, err := l.fs.Glob(pattern)
	switch {
	case err != nil:
		l.r.errorf(pos, "include %s: bad pattern: %v", pattern, err)
		return
	case len(matches) == 0:
		l.r.errorf(pos, "include %s: no file matches (a relative path is relative to %s); copy the included files beside the keepalived.conf you import", pattern, filepath.Dir(pos.File))
		return
	case len(matches) > maxGlobMatches:
		l.r.errorf(pos, "include %s: matches %d files, more than %d", pattern, len(matches), maxGlobMatches)
		return
	}
	for _, m := range matches {
		l.file(filepath.Clean(m), pos, depth+1)
	}
}

// clip shortens s for a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// kaParser builds the statement tree from the tokens.
type kaParser struct {
	toks []kaTok
	i    int
	r    *report
}

func (p *kaParser) block(depth int, open Pos) []*kaStmt {
	var out []*kaStmt
	for p.i < len(p.toks) {
		t := p.toks[p.i]
		switch t.kind {
		case tEOL:
			p.i++
			continue
		case tClose:
			p.i++
			if depth > 0 {
				return out
			}
			p.r.errorf(t.pos, "} without a matching {; remove it")
			continue
		case tOpen:
			p.i++
			p.r.errorf(t.pos, "{ without a keyword before it")
			p.skip()
			continue
		}
		st := &kaStmt{Pos: t.pos}
		for p.i < len(p.toks) && p.toks[p.i].kind == tWord {
			if len(st.Words) == maxWords {
				p.r.errorf(t.pos, "more than %d words in one statement", maxWords)
			}
			if len(st.Words) < maxWords {
				st.Words = append(st.Words, p.toks[p.i].text)
			}
			p.i++
		}
		// The block may open on this line or on the next.
		j := p.i
		for j < len(p.toks) && p.toks[j].kind == tEOL {
			j++
		}
		if j < len(p.toks) && p.toks[j].kind == tOpen {
			p.i = j + 1
			st.HasBlock = true
			if depth+1 >= maxNesting {
				p.r.errorf(p.toks[j].pos, "blocks nest deeper than %d levels", maxNesting)
				p.skip()
			} else {
				st.Block = p.block(depth+1, p.toks[j].pos)
			}
		}
		out = append(out, st)
	}
	if depth > 0 {
		p.r.errorf(open, "the { opened here is never closed; add the missing }")
	}
	return out
}

// skip passes over the rest of a block whose { was just consumed, without
// recursion.
func (p *kaParser) skip() {
	level := 1
	for p.i < len(p.toks) && level > 0 {
		switch p.toks[p.i].kind {
		case tOpen:
			level++
		case tClose:
			level--
		}
		p.i++
	}
}
