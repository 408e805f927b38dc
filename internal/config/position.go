package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml v1.6 keeps key positions private (MetaData.keyInfo) and
// indexes them without array positions, so every [[node]] shares one entry.
// positions is our own map from an indexed key path such as
// "node[1].priority", "backend[0].servers[2].address" or "vrrp.vips[1]" to
// the 1-based line where it is written. It is built by a small scanner that
// runs only after toml accepted the file, so it can be lenient: anything it
// does not understand is skipped and lookups fall back to the enclosing
// table.
type positions map[string]int

// line returns the line of path or of its nearest ancestor that has one; 0
// if none has.
func (p positions) line(path string) int {
	for path != "" {
		if l, ok := p[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last ".key" or "[n]" of path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

func indexPath(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

type posScanner struct {
	s    string
	i    int
	line int
	pos  positions
	aot  map[string]int // array-of-tables path -> elements seen so far
}

func scanPositions(src string) (p positions) {
	sc := &posScanner{s: src, line: 1, pos: positions{}, aot: map[string]int{}}
	defer func() {
		// The scanner is best effort; a bug in it must cost line numbers,
		// never the parse.
		if recover() != nil {
			p = sc.pos
		}
	}()
	sc.document()
	return sc.pos
}

func (sc *posScanner) eof() bool { return sc.i >= len(sc.s) }

func (sc *posScanner) record(path string) {
	if _, ok := sc.pos[path]; !ok && path != "" {
		sc.pos[path] = sc.line
	}
}

// skip skips blanks, and newlines and comments when nl is set.
func (sc *posScanner) skip(nl bool) {
	for !sc.eof() {
		switch c := sc.s[sc.i]; {
		case c == ' ' || c == '\t' || c == '\r':
			sc.i++
		case c == '#':
			for !sc.eof() && sc.s[sc.i] != '\n' {
				sc.i++
			}
		case c == '\n' && nl:
			sc.line++
			sc.i++
		default:
			return
		}
	}
}

func (sc *posScanner) document() {
	table := ""
	for {
		sc.skip(true)
		if sc.eof() {
			return
		}
		start := sc.i
		if sc.s[sc.i] == '[' {
			table = sc.header()
		} else {
			sc.keyValue(table)
		}
		sc.skip(false)
		if sc.i == start {
			sc.i++
		}
	}
}

// header reads [a.b] or [[a.b]] and returns the indexed table path.
func (sc *posScanner) header() string {
	array := strings.HasPrefix(sc.s[sc.i:], "[[")
	if array {
		sc.i += 2
	} else {
		sc.i++
	}
	keys := sc.key()
	for !sc.eof() && sc.s[sc.i] == ']' {
		sc.i++
	}
	cur := ""
	for j, k := range keys {
		p := joinPath(cur, k)
		if n, ok := sc.aot[p]; array && j == len(keys)-1 {
			sc.aot[p] = n + 1
			sc.record(p) // the array as a whole starts at its first element
			cur = indexPath(p, n)
		} else if ok && n > 0 {
			cur = indexPath(p, n-1)
		} else {
			cur = p
		}
		sc.record(cur)
	}
	return cur
}

// key reads a possibly dotted, possibly quoted key.
func (sc *posScanner) key() []string {
	var keys []string
	for {
		sc.skip(false)
		if sc.eof() {
			return keys
		}
		switch sc.s[sc.i] {
		case '"':
			keys = append(keys, sc.basicString())
		case '\'':
			keys = append(keys, sc.literalString())
		default:
			start := sc.i
			for !sc.eof() && !strings.ContainsRune(" \t\r\n=.]#\"'", rune(sc.s[sc.i])) {
				sc.i++
			}
			if sc.i == start {
				return keys
			}
			keys = append(keys, sc.s[start:sc.i])
		}
		sc.skip(false)
		if sc.eof() || sc.s[sc.i] != '.' {
			return keys
		}
		sc.i++
	}
}

func (sc *posScanner) keyValue(base string) {
	path := base
	for _, k := range sc.key() {
		path = joinPath(path, k)
		sc.record(path)
	}
	sc.skip(false)
	if sc.eof() || sc.s[sc.i] != '=' {
		return
	}
	sc.i++
	sc.skip(false)
	sc.value(path)
}

func (sc *posScanner) value(path string) {
	if sc.eof() {
		return
	}
	rest := sc.s[sc.i:]
	switch {
	case strings.HasPrefix(rest, `"""`):
		sc.multiline(`"""`, true)
	case strings.HasPrefix(rest, `'''`):
		sc.multiline(`'''`, false)
	case rest[0] == '"':
		sc.basicString()
	case rest[0] == '\'':
		sc.literalString()
	case rest[0] == '[':
		sc.i++
		for n := 0; ; {
			sc.skip(true)
			if sc.eof() {
				return
			}
			switch sc.s[sc.i] {
			case ']':
				sc.i++
				return
			case ',':
				sc.i++
				continue
			}
			p := indexPath(path, n)
			sc.record(p)
			start := sc.i
			sc.value(p)
			if sc.i == start {
				sc.i++
			}
			n++
		}
	case rest[0] == '{':
		sc.i++
		for {
			sc.skip(true)
			if sc.eof() {
				return
			}
			switch sc.s[sc.i] {
			case '}':
				sc.i++
				return
			case ',':
				sc.i++
				continue
			}
			start := sc.i
			sc.keyValue(path)
			if sc.i == start {
				sc.i++
			}
		}
	default:
		for !sc.eof() && !strings.ContainsRune(",]}\n#", rune(sc.s[sc.i])) {
			sc.i++
		}
	}
}

// basicString reads "..." and returns its value (best effort unescaping).
func (sc *posScanner) basicString() string {
	start := sc.i
	sc.i++
	for !sc.eof() && sc.s[sc.i] != '"' && sc.s[sc.i] != '\n' {
		if sc.s[sc.i] == '\\' {
			sc.i++
		}
		sc.i++
	}
	if sc.eof() || sc.s[sc.i] == '\n' {
		return sc.s[start+1 : min(sc.i, len(sc.s))]
	}
	sc.i++
	raw := sc.s[start:sc.i]
	if v, err := strconv.Unquote(raw); err == nil {
		return v
	}
	return raw[1 : len(raw)-1]
}

func (sc *posScanner) literalString() string {
	start := sc.i + 1
	sc.i++
	for !sc.eof() && sc.s[sc.i] != '\'' && sc.s[sc.i] != '\n' {
		sc.i++
	}
	v := sc.s[start:sc.i]
	if !sc.eof() && sc.s[sc.i] == '\'' {
		sc.i++
	}
	return v
}

func (sc *posScanner) multiline(delim string, escapes bool) {
	sc.i += len(delim)
	for !sc.eof() {
		if escapes && sc.s[sc.i] == '\\' {
			sc.i++
			if !sc.eof() && sc.s[sc.i] == '\n' {
				sc.line++
			}
			sc.i++
			continue
		}
		if strings.HasPrefix(sc.s[sc.i:], delim) {
			sc.i += len(delim)
			// Up to two quotes may end the content: """a"""" is `a"`.
			for extra := 0; extra < 2 && !sc.eof() && sc.s[sc.i] == delim[0]; extra++ {
				sc.i++
			}
			return
		}
		if sc.s[sc.i] == '\n' {
			sc.line++
		}
		sc.i++
	}
}
