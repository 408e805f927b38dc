package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// toYAML renders v as block-style YAML. v is marshalled with encoding/json
// first, so the json tags of the types in pod.go are the field names, in
// declaration order, exactly as the Kubernetes types spell them; the JSON
// token stream is then written out as YAML. Multi-line strings (the config
// file inside the Talos patch) become literal block scalars, so a person
// can read them.
func toYAML(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	root, err := readNode(dec)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	writeNode(&b, root, 0)
	return b.Bytes(), nil
}

// node is one JSON value with its object keys in order.
type node struct {
	scalar any // string, json.Number, bool or nil, when not a container
	keys   []string
	vals   []*node // object members, or array items when keys == nil
	object bool
	array  bool
}

func readNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		n := &node{object: true}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := readNode(dec)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k.(string))
			n.vals = append(n.vals, v)
		}
		_, err := dec.Token()
		return n, err
	case json.Delim('['):
		n := &node{array: true}
		for dec.More() {
			v, err := readNode(dec)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, v)
		}
		_, err := dec.Token()
		return n, err
	}
	return &node{scalar: tok}, nil
}

func (n *node) empty() bool { return (n.object || n.array) && len(n.vals) == 0 }

func (n *node) container() bool { return (n.object || n.array) && len(n.vals) > 0 }

// writeNode writes n at indent; an object's members and an array's items
// each start on their own line.
func writeNode(w io.Writer, n *node, indent int) {
	pad := strings.Repeat(" ", indent)
	switch {
	case n.object && len(n.vals) > 0:
		for i, k := range n.keys {
			key := yamlKey(k)
			if len(key) > 1000 {
				// YAML limits implicit keys to 1024 characters.
				fmt.Fprintf(w, "%s? %s\n%s:", pad, key, pad)
			} else {
				fmt.Fprintf(w, "%s%s:", pad, key)
			}
			writeValue(w, n.vals[i], indent, false)
		}
	case n.array && len(n.vals) > 0:
		for _, v := range n.vals {
			fmt.Fprintf(w, "%s-", pad)
			writeValue(w, v, indent, true)
		}
	default:
		fmt.Fprintf(w, "%s%s\n", pad, yamlScalar(n, indent))
	}
}

// writeValue writes v after "key:" or "-". Arrays under a key are not
// indented further (the style of kubectl and kubeadm); an object in an
// array starts on the dash's line.
func writeValue(w io.Writer, v *node, indent int, item bool) {
	switch {
	case v.object && len(v.vals) > 0 && item:
		var b bytes.Buffer
		writeNode(&b, v, indent+2)
		fmt.Fprintf(w, " %s", strings.TrimLeft(b.String(), " "))
	case v.object && len(v.vals) > 0:
		fmt.Fprintln(w)
		writeNode(w, v, indent+2)
	case v.array && len(v.vals) > 0 && item:
		fmt.Fprintln(w)
		writeNode(w, v, indent+2)
	case v.array && len(v.vals) > 0:
		fmt.Fprintln(w)
		writeNode(w, v, indent)
	default:
		fmt.Fprintf(w, " %s\n", yamlScalar(v, indent+2))
	}
}

var (
	plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./-]*$`)
	// plainString is a conservative set of strings that YAML reads back
	// as the same string: no indicators, no ": " or " #", no trailing
	// colon, not a number, boolean or null in YAML 1.1 or 1.2.
	plainString = regexp.MustCompile(`^[A-Za-z/_][A-Za-z0-9 ._/=+:-]*[A-Za-z0-9._/=+-]$|^[A-Za-z/_]$`)
	yamlSpecial = regexp.MustCompile(`^(?i:y|n|yes|no|true|false|on|off|null|~|\.inf|\.nan)$`)
)

func yamlKey(k string) string {
	if plainKey.MatchString(k) && !yamlSpecial.MatchString(k) {
		return k
	}
	return yamlQuote(k)
}

// yamlQuote writes a double-quoted scalar. Everything outside YAML's
// printable set is escaped (JSON's quoting is not enough: YAML also
// refuses DEL and the C1 controls).
func yamlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0x2028 || r == 0x2029 || r == 0xfeff || r >= 0xfffe && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// yamlScalar renders a scalar (or an empty container) at indent, where
// indent is the column of a block scalar's content lines.
func yamlScalar(n *node, indent int) string {
	switch {
	case n.object:
		return "{}"
	case n.array:
		return "[]"
	}
	switch s := n.scalar.(type) {
	case nil:
		return "null"
	case bool:
		if s {
			return "true"
		}
		return "false"
	case json.Number:
		return s.String()
	case string:
		if lit, ok := literalBlock(s, indent); ok {
			return lit
		}
		if plainString.MatchString(s) && !yamlSpecial.MatchString(s) && !strings.Contains(s, ": ") {
			return s
		}
		return yamlQuote(s)
	}
	return fmt.Sprint(n.scalar)
}

// literalBlock renders a multi-line string as a literal block scalar ("|",
// "|-" or "|+" by its trailing newlines) when YAML can carry it exactly:
// printable text, the first line not indented, no line of only blanks.
func literalBlock(s string, indent int) (string, bool) {
	body := strings.TrimRight(s, "\n")
	if !strings.Contains(body, "\n") || strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\t") || strings.HasPrefix(s, "\n") {
		return "", false
	}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || r == 0xfeff || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return "", false
		}
	}
	lines := strings.Split(body, "\n")
	for _, line := range lines {
		if line != "" && strings.TrimLeft(line, " \t") == "" {
			return "", false
		}
	}
	// The clip and keep forms end with the line break the caller writes
	// after the scalar; keep adds one empty line per further newline.
	chomp := "-"
	switch trailing := len(s) - len(body); {
	case trailing == 1:
		chomp = ""
	case trailing > 1:
		chomp = "+"
		lines = append(lines, make([]string, trailing-1)...)
	}
	pad := strings.Repeat(" ", indent)
	var b strings.Builder
	b.WriteString("|" + chomp)
	for _, line := range lines {
		b.WriteString("\n")
		if line != "" {
			b.WriteString(pad + line)
		}
	}
	return b.String(), true
}
