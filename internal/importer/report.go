package importer

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in an input file. Line is 1-based; 0 means the file as a
// whole.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line <= 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Error is something essential that cannot be translated (an LVS
// virtual_server, auth_type AH, a node without an address, ...). Msg says
// what and how to fix it.
type Error struct {
	Pos
	Msg string
}

// Error implements error as "file:line: msg".
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// NoteKind tells a directive left out from a choice made for the operator.
type NoteKind int

const (
	// NotCarried: a directive of the source is not in the output.
	NotCarried NoteKind = iota
	// Chosen: the source was ambiguous, or vipd behaves differently, and
	// the note says what the output does and why.
	Chosen
)

// Note is one remark about the translation, written to stderr and as a
// comment in the output.
type Note struct {
	Pos
	Kind NoteKind
	Msg  string
	// Also lists other places the same note applies to (the same line in
	// every node's keepalived.conf).
	Also []Pos
	// target is the output table the comment goes above ("" = the top of
	// the file); see the emitter.
	target string
}

// String is the stderr and comment form:
//
//	not carried over (keepalived.conf:12): router_id: ...
//	chosen (haproxy.cfg:40): ...
func (n Note) String() string {
	kind := "not carried over"
	if n.Kind == Chosen {
		kind = "chosen"
	}
	where := n.Pos.String()
	for _, p := range n.Also {
		where += ", " + p.String()
	}
	return fmt.Sprintf("%s (%s): %s", kind, where, n.Msg)
}

// report collects errors and notes while translating. Nothing stops at the
// first problem: the operator gets every one at once.
type report struct {
	errs  []*Error
	notes []Note
	seen  map[string]bool
	// files numbers the input files in the order they were read, so that
	// notes come out in the order of the command line and the includes.
	files map[string]int
}

// file registers an input file in reading order.
func (r *report) file(name string) {
	if r.files == nil {
		r.files = map[string]int{}
	}
	if _, ok := r.files[name]; !ok {
		r.files[name] = len(r.files)
	}
}

func (r *report) errorf(p Pos, format string, args ...any) {
	msg := oneLine(fmt.Sprintf(format, args...))
	key := "E" + p.String() + msg
	if r.dup(key) {
		return
	}
	r.errs = append(r.errs, &Error{Pos: p, Msg: msg})
}

func (r *report) note(kind NoteKind, p Pos, target, format string, args ...any) {
	msg := oneLine(fmt.Sprintf(format, args...))
	key := fmt.Sprintf("N%d%s%s", kind, p, msg)
	if r.dup(key) {
		return
	}
	r.notes = append(r.notes, Note{Pos: p, Kind: kind, Msg: msg, target: target})
}

func (r *report) notCarried(p Pos, target, format string, args ...any) {
	r.note(NotCarried, p, target, format, args...)
}

func (r *report) chose(p Pos, target, format string, args ...any) {
	r.note(Chosen, p, target, format, args...)
}

func (r *report) dup(key string) bool {
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if r.seen[key] {
		return true
	}
	r.seen[key] = true
	return false
}

// err returns the errors as one errors.Join, in file and line order.
func (r *report) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	es := append([]*Error(nil), r.errs...)
	sort.SliceStable(es, func(i, j int) bool { return r.posLess(es[i].Pos, es[j].Pos) })
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return errors.Join(out...)
}

// sortedNotes returns the notes in file and line order (stable: several
// notes on one line keep the order they were found in). The same note made
// for several files (every node's keepalived.conf) becomes one note.
func (r *report) sortedNotes() []Note {
	ns := append([]Note(nil), r.notes...)
	sort.SliceStable(ns, func(i, j int) bool { return r.posLess(ns[i].Pos, ns[j].Pos) })
	type key struct {
		kind   NoteKind
		msg    string
		target string
	}
	first := map[key]int{}
	out := ns[:0]
	for _, n := range ns {
		k := key{n.Kind, n.Msg, n.target}
		if i, ok := first[k]; ok && out[i].Pos.File != n.Pos.File {
			out[i].Also = append(out[i].Also, n.Pos)
			continue
		}
		first[k] = len(out)
		out = append(out, n)
	}
	return out
}

// posLess orders by the order files were read, then by line.
func (r *report) posLess(a, b Pos) bool {
	if a.File != b.File {
		fa, oka := r.files[a.File]
		fb, okb := r.files[b.File]
		if oka != okb {
			return oka
		}
		if fa != fb {
			return fa < fb
		}
		return a.File < b.File
	}
	return a.Line < b.Line
}

// oneLine keeps a message on one line so that it stays a single TOML
// comment and a single stderr line, whatever the input held.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 || r == 0x85
}
