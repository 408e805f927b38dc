package config

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The file is decoded by toml into map[string]any and then walked here with
// the schema in code, instead of toml decoding into tagged structs and
// MetaData.Undecoded reporting the leftovers. Walking ourselves gives:
//   - exact key matching (toml matches struct fields case-insensitively, so
//     VRID = 51 would pass silently, and VRID plus vrid would race),
//   - every error in one pass (toml stops at the first type mismatch),
//   - indexed paths ("node[1].priority") and so the right line for the second
//     [[node]], which toml's own positions cannot tell apart.

// decoder collects problems while building a Config.
type decoder struct {
	file string
	pos  positions
	errs []*Error
	warn []*Error
	// vrrpInvalid is set when [vrrp] is there but not a table: the checks
	// for single-LB mode must not fire then.
	vrrpInvalid bool
	// bgpInvalid is set when [bgp] had an error: a frontend vip that
	// would name one of its VIPs is not reported a second time.
	bgpInvalid bool
}

func (d *decoder) errAt(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.pos.line(path), Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnAt(path, format string, args ...any) {
	d.warn = append(d.warn, &Error{File: d.file, Line: d.pos.line(path), Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnings() []string {
	sort.SliceStable(d.warn, func(i, j int) bool { return d.warn[i].Line < d.warn[j].Line })
	var out []string
	for _, w := range d.warn {
		out = append(out, w.Error())
	}
	return out
}

// table is one TOML table being read. Every accessor records its key as
// known, and finish reports the keys nobody asked for.
type table struct {
	d     *decoder
	m     map[string]any
	path  string // indexed path for positions: "node[1]"
	name  string // dotted name without indices for messages: "node"
	label string // human name: `[vrrp]`, `[[node]] "lb2"`
	known []string
	// hints are extra fix hints for unknown keys (keepalived/HAProxy habits).
	hints map[string]string
}

func (d *decoder) table(m map[string]any, path, name, label string) *table {
	return &table{d: d, m: m, path: path, name: name, label: label}
}

func (t *table) keyPath(key string) string { return joinPath(t.path, key) }

func (t *table) get(key string) (any, bool) {
	t.known = append(t.known, key)
	v, ok := t.m[key]
	return v, ok
}

func (t *table) has(key string) bool {
	_, ok := t.m[key]
	return ok
}

// bad reports a problem with the value of key.
func (t *table) bad(key string, v any, format string, args ...any) {
	t.d.errAt(t.keyPath(key), "%s%s = %s: %s", labelSpace(t.label), key, render(v), fmt.Sprintf(format, args...))
}

func labelSpace(label string) string {
	if label == "" {
		return ""
	}
	return label + " "
}

// badTable reports a problem with the table as a whole (at its header).
func (t *table) badTable(format string, args ...any) {
	t.d.errAt(t.path, "%s: %s", t.label, fmt.Sprintf(format, args...))
}

func (t *table) warnKey(key string, format string, args ...any) {
	v := t.m[key]
	t.d.warnAt(t.keyPath(key), "%s%s = %s: %s", labelSpace(t.label), key, render(v), fmt.Sprintf(format, args...))
}

// finish reports every key of the table that no accessor asked for.
func (t *table) finish() {
	var unknown []string
	for k := range t.m {
		if !contains(t.known, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		msg := fmt.Sprintf("unknown key %q", joinPath(t.name, k))
		if h, ok := t.hints[k]; ok {
			msg += "; " + h
		} else if s := suggest(k, t.known); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else {
			msg += fmt.Sprintf("; %s takes: %s", t.labelOrTop(), strings.Join(t.known, ", "))
		}
		t.d.errAt(t.keyPath(k), "%s", msg)
	}
}

func (t *table) labelOrTop() string {
	if t.label == "" {
		return "the top level"
	}
	return t.label
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (t *table) str(key, def string) string {
	v, ok := t.get(key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		t.bad(key, v, "must be a string; write %s = %q", key, fmt.Sprint(v))
		return def
	}
	return s
}

// oneOf reads a string that must be one of allowed.
func (t *table) oneOf(key, def string, allowed ...string) string {
	v, ok := t.get(key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok || !contains(allowed, s) {
		msg := "must be one of " + quoteList(allowed)
		if ok {
			if sg := suggest(s, allowed); sg != "" {
				msg += fmt.Sprintf("; did you mean %q?", sg)
			}
		}
		t.bad(key, v, "%s", msg)
		return def
	}
	return s
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// integer reads an integer in [lo, hi]; hint completes the range message.
func (t *table) integer(key string, def, lo, hi int64, hint string) int64 {
	v, ok := t.get(key)
	if !ok {
		return def
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case string:
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			t.bad(key, v, "must be an integer, not a string; write %s = %d", key, i)
		} else {
			t.bad(key, v, "must be an integer between %d and %d; %s", lo, hi, hint)
		}
		return def
	case float64:
		if x == math.Trunc(x) && x >= float64(lo) && x <= float64(hi) {
			t.bad(key, v, "must be an integer; write %s = %d", key, int64(x))
		} else {
			t.bad(key, v, "must be an integer between %d and %d; %s", lo, hi, hint)
		}
		return def
	default:
		t.bad(key, v, "must be an integer between %d and %d; %s", lo, hi, hint)
		return def
	}
	if n < lo || n > hi {
		t.bad(key, v, "must be between %d and %d; %s", lo, hi, hint)
		return def
	}
	return n
}

func (t *table) boolean(key string, def bool) bool {
	v, ok := t.get(key)
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		fix := "true or false"
		if s, isStr := v.(string); isStr && (s == "true" || s == "false") {
			fix = s + " without quotes"
		}
		t.bad(key, v, "must be a boolean; write %s = %s", key, fix)
		return def
	}
	return b
}

// duration reads a duration string in [lo, hi]; hint is the suggested value
// and note, if given, explains the range.
func (t *table) duration(key string, def, lo, hi time.Duration, hint string, note ...string) time.Duration {
	v, ok := t.get(key)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		switch n := v.(type) {
		case int64:
			t.bad(key, v, "durations are strings with a unit; write %s = \"%ds\" or \"%dms\"", key, n, n)
		default:
			t.bad(key, v, "durations are strings with a unit, e.g. %s = %q", key, hint)
		}
		return def
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		fix := hint
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			fix = s + "s"
		}
		t.bad(key, v, "not a duration (a number with a unit: ms, s, m, h); try %q", fix)
		return def
	}
	if dur < lo || dur > hi {
		why := ""
		if len(note) > 0 {
			why = " (" + note[0] + ")"
		}
		t.bad(key, v, "must be between %s and %s%s; try %q", fmtDur(lo), fmtDur(hi), why, hint)
		return def
	}
	return dur
}

// fmtDur prints a duration the way an operator would write it.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// strings reads an array of strings; ok is false when the key is absent or
// wrong.
func (t *table) strings(key string) ([]string, bool) {
	v, ok := t.get(key)
	if !ok {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			t.bad(key, v, "must be an array of strings; write %s = [%q]", key, s)
		} else {
			t.bad(key, v, "must be an array of strings, e.g. %s = [\"...\"]", key)
		}
		return nil, false
	}
	out := make([]string, 0, len(arr))
	good := true
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.d.errAt(indexPath(t.keyPath(key), i), "%s %s[%d] = %s: must be a string; write %q",
				t.label, key, i, render(e), fmt.Sprint(e))
			good = false
			continue
		}
		out = append(out, s)
	}
	return out, good
}

// sub returns the sub-table key, nil when absent or not a table.
func (t *table) sub(key, label string) *table {
	v, ok := t.get(key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		if _, isArr := v.([]map[string]any); isArr {
			t.d.errAt(t.keyPath(key), "[[%s]]: must be a single table; write [%s] (not [[%s]])", joinPath(t.name, key), joinPath(t.name, key), joinPath(t.name, key))
		} else {
			t.bad(key, v, "must be a table; write [%s] followed by its keys", joinPath(t.name, key))
		}
		return nil
	}
	return t.d.table(m, t.keyPath(key), joinPath(t.name, key), label)
}

// list returns the elements of an array of tables ([[key]] or
// key = [{...}, ...]) with their indexed paths.
func (t *table) list(key string) ([]map[string]any, bool) {
	v, ok := t.get(key)
	if !ok {
		return nil, false
	}
	switch x := v.(type) {
	case []map[string]any:
		return x, true
	case []any:
		out := make([]map[string]any, 0, len(x))
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				t.d.errAt(indexPath(t.keyPath(key), i), "%s %s[%d] = %s: must be a table; write each entry as [[%s]] followed by its keys",
					t.label, key, i, render(e), joinPath(t.name, key))
				return nil, false
			}
			out = append(out, m)
		}
		return out, true
	case map[string]any:
		t.badTableKey(key, "must be a list of tables; write [[%s]] (double brackets) for each entry", joinPath(t.name, key))
	default:
		t.bad(key, v, "must be a list of tables; write [[%s]] for each entry", joinPath(t.name, key))
	}
	return nil, false
}

func (t *table) badTableKey(key, format string, args ...any) {
	t.d.errAt(t.keyPath(key), "[%s]: %s", joinPath(t.name, key), fmt.Sprintf(format, args...))
}

// elemLabel names an element of an array of tables for messages: by its
// name key when it has one, else by its position.
func elemLabel(kind string, m map[string]any, i int) string {
	if n, ok := m["name"].(string); ok && n != "" {
		return fmt.Sprintf("[[%s]] %q", kind, n)
	}
	return fmt.Sprintf("[[%s]] #%d", kind, i+1)
}

// render prints a decoded TOML value roughly as it was written.
func render(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = render(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []map[string]any:
		return "[[...]]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + " = " + render(x[k])
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case nil:
		return "nothing"
	default:
		return fmt.Sprint(x)
	}
}
