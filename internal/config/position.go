package config

import (
	"fmt"
	"strconv"
	"strings"
)

// BurntSushi/toml v1.6 keeps key positions private (MetaData.keyInfo) and
// indexes them without array positions, so every [[node]] shares one entry.
// positions is our own map from an indexed key path such as
// "node[1].priority", "backend[0].servers[2].address" or "vrrp.vips[1]" to
// the 1-based line where it is written. It is built by a small scanner that
// is lenient: anything it does not understand is skipped and lookups fall
// back to the enclosing table.
//
// The scanner runs before toml, and is also the guard that keeps a hostile
// file from costing toml (and itself) time and memory quadratic in its
// size: a path deeper than maxDepth components (tables, dotted keys, array
// elements and inline tables together) or longer than maxPathBytes stops
// the scan with a *shapeError, and the file is refused. toml's own parser
// copies the whole key path for every key and nesting level.
type positions map[string]int

// Limits on a file's shape. A vipd config nests at most 4 deep
// ("backend[0].servers[1].address") with paths under 64 bytes.
// maxEntries bounds the keys, tables and array elements: a config for
// 100 backends of 10 servers has about 3,000.
const (
	maxDepth     = 16
	maxPathBytes = 256
	maxEntries   = 20000
)

// shapeError is a file too deep or with a key path too long.
type shapeError struct {
	line int
	msg  string
}

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

// spath is a path being scanned with its depth in components.
type spath struct {
	s     string
	depth int
}

type posScanner struct {
	s    string
	i    int
	line int
	pos  positions
	aot  map[string]int // array-of-tables path -> elements seen so far
	err  *shapeError    // set once; the scan then stops
	n    int            // entries seen (record calls)
}

// scanPositions returns the positions of src, or a *shapeError when src
// nests deeper than maxDepth or has a key path longer than maxPathBytes.
// Its cost is linear in len(src): no path it builds is longer than
// maxPathBytes.
func scanPositions(src string) (p positions, err *shapeError) {
	sc := &posScanner{s: src, line: 1, pos: positions{}, aot: map[string]int{}}
	defer func() {
		// The scanner is best effort; a bug in it must cost line numbers,
		// never the parse.
		if recover() != nil {
			p, err = sc.pos, sc.err
		}
	}()
	sc.document()
	return sc.pos, sc.err
}

// eof is also true once a limit was hit, which ends every loop.
func (sc *posScanner) eof() bool { return sc.i >= len(sc.s) || sc.err != nil }

func (sc *posScanner) fail(format string, args ...any) {
	if sc.err == nil {
		sc.err = &shapeError{line: sc.line, msg: fmt.Sprintf(format, args...)}
	}
}

// join and index extend a path, or fail (and return base) past a limit.
func (sc *posScanner) join(base spath, key string) spath {
	return sc.extend(base, len(key)+1, func() string { return joinPath(base.s, key) })
}

func (sc *posScanner) index(base spath, i int) spath {
	return sc.extend(base, 12, func() string { return indexPath(base.s, i) })
}

func (sc *posScanner) extend(base spath, add int, build func() string) spath {
	switch {
	case base.depth+1 > maxDepth:
		sc.fail("nested more than %d levels deep ([tables], dotted keys, arrays and inline tables together); a vipd config needs at most 4: is a ] or } missing?", maxDepth)
	case len(base.s)+add > maxPathBytes:
		sc.fail("a key path longer than %d bytes; vipd's keys are short names such as backend.check.client_cert: is a quote or ] missing?", maxPathBytes)
	default:
		return spath{build(), base.depth + 1}
	}
	return base
}

func (sc *posScanner) record(path string) {
	if sc.n++; sc.n > maxEntries {
		sc.fail("more than %d keys, tables and list elements; a vipd config has a few hundred: is this the right file?", maxEntries)
	}
	if _, ok := sc.pos[path]; !ok && path != "" && sc.err == nil {
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
	var table spath
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
func (sc *posScanner) header() spath {
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
	var cur spath
	for j, k := range keys {
		p := sc.join(cur, k)
		if n, ok := sc.aot[p.s]; array && j == len(keys)-1 {
			sc.aot[p.s] = n + 1
			sc.record(p.s) // the array as a whole starts at its first element
			cur = sc.index(p, n)
		} else if ok && n > 0 {
			cur = sc.index(p, n-1)
		} else {
			cur = p
		}
		sc.record(cur.s)
		if sc.err != nil {
			break
		}
	}
	return cur
}

// key reads a possibly dotted, possibly quoted key.
func (sc *posScanner) key() []string {
	var keys []string
	for {
		if len(keys) > maxDepth {
			sc.fail("a dotted key of more than %d parts; vipd's keys have at most 3: is a quote missing?", maxDepth)
			return keys
		}
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

func (sc *posScanner) keyValue(base spath) {
	path := base
	for _, k := range sc.key() {
		path = sc.join(path, k)
		sc.record(path.s)
		if sc.err != nil {
			return
		}
	}
	sc.skip(false)
	if sc.eof() || sc.s[sc.i] != '=' {
		return
	}
	sc.i++
	sc.skip(false)
	sc.value(path)
}

func (sc *posScanner) value(path spath) {
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
			p := sc.index(path, n)
			sc.record(p.s)
			if sc.err != nil {
				return
			}
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
