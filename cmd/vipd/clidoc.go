package main

import (
	"bufio"
	"bytes"
	"context"
	"regexp"
	"strings"
)

// The man page and the shell completions are generated from the CLI's own
// help, so that they cannot drift from it: the command list, each
// command's synopsis and summary come from the usage text, and each
// command's flags from what `vipd CMD -h` prints (the flag set the command
// really parses). cliDoc is that help read back into a structure.

// cliDoc is the whole CLI as its help describes it.
type cliDoc struct {
	// Title is the first line of the usage text ("vipd: ...").
	Title string
	// Commands in the order the usage text lists them.
	Commands []cmdDoc
	// Notes is the text after the command list.
	Notes string
}

// cmdDoc is one command of the usage text.
type cmdDoc struct {
	Name string
	// Synopsis is what follows "vipd NAME" on the usage line.
	Synopsis string
	// Summary is the command's one-line description (may be empty).
	Summary string
	// Words are the sub-command words the synopsis offers before any flag
	// or operand (drill: failover; server: drain, maint, ready).
	Words []string
	// Flags is the command's flag set, in `-h` order (alphabetical).
	Flags []flagDoc
}

// flagDoc is one flag of a command.
type flagDoc struct {
	// Name without dashes.
	Name string
	// Arg is the value's name (FILE, NAME, DURATION) or "" for a boolean.
	Arg string
	// Choices are the values the usage text lists for it ("-o json|table").
	Choices []string
	// Usage is the help text, with the default the flag package appends.
	Usage string
}

// Dashed is the flag as the usage text writes it: -c, -o, --node.
func (f flagDoc) Dashed() string {
	if len(f.Name) == 1 {
		return "-" + f.Name
	}
	return "--" + f.Name
}

// usageLine matches a command line of the usage text:
// "  vipd NAME   rest".
var (
	usageLine  = regexp.MustCompile(`^  vipd ([a-z][a-z-]*)(.*)$`)
	wordList   = regexp.MustCompile(`^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$`)
	argName    = regexp.MustCompile(`^[A-Z][A-Z/_-]*$`)
	choiceList = regexp.MustCompile(`^[a-z]+(\|[a-z]+)*$`)
)

// loadCLIDoc reads the usage text and each command's flags. Commands are
// asked for their flags with `-h` on a cancelled context, so none of them
// can do anything but print its flag set.
func loadCLIDoc() cliDoc {
	doc := parseUsage(usage)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range doc.Commands {
		c := &doc.Commands[i]
		var out, help bytes.Buffer
		run(ctx, []string{c.Name, "-h"}, &out, &help)
		c.Flags = parseFlagDefaults(help.String())
		for j := range c.Flags {
			f := &c.Flags[j]
			if f.Arg == "" {
				continue
			}
			// The command's own synopsis first ("-o json|table"), then
			// the notes ("--socket PATH").
			arg, choices := flagArg(c.Synopsis, f.Dashed())
			if arg == "" {
				arg, _ = flagArg(usage, f.Dashed())
			}
			if arg != "" {
				f.Arg = arg
			}
			f.Choices = choices
		}
	}
	return doc
}

// parseUsage splits the usage text into the title, the commands and the
// notes after them. A summary starts in the column where the indented
// continuation lines start; a command line whose text reaches that column
// after a gap of at least two spaces has its summary on the same line.
func parseUsage(text string) cliDoc {
	var doc cliDoc
	lines := strings.Split(text, "\n")
	doc.Title = strings.TrimSpace(lines[0])
	col := summaryColumn(lines)
	var notes []string
	for _, line := range lines[1:] {
		if m := usageLine.FindStringSubmatch(line); m != nil {
			c := cmdDoc{Name: m[1]}
			rest := m[2]
			start := len("  vipd ") + len(m[1])
			if at := col - start; col > 0 && at > 0 && at < len(rest) && strings.HasSuffix(rest[:at], "  ") {
				c.Summary = strings.TrimSpace(rest[at:])
				rest = rest[:at]
			}
			c.Synopsis = strings.TrimSpace(rest)
			c.Words = subcommandWords(c.Synopsis)
			doc.Commands = append(doc.Commands, c)
			continue
		}
		trimmed := strings.TrimSpace(line)
		if n := len(doc.Commands); n > 0 && len(notes) == 0 && trimmed != "" && strings.HasPrefix(line, strings.Repeat(" ", col)) {
			c := &doc.Commands[n-1]
			c.Summary = strings.TrimSpace(c.Summary + " " + trimmed)
			continue
		}
		if len(doc.Commands) > 0 && (trimmed != "" || len(notes) > 0) {
			notes = append(notes, line)
		}
	}
	doc.Notes = strings.TrimSpace(strings.Join(notes, "\n"))
	return doc
}

// summaryColumn is the column of the first continuation line (a line of
// only a summary, indented past the command lines); 0 when there is none.
func summaryColumn(lines []string) int {
	for _, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		if n := len(line) - len(trimmed); trimmed != "" && n > len("  vipd ")+8 {
			return n
		}
	}
	return 0
}

// subcommandWords returns the lowercase words (a|b|c alternatives
// included) at the start of a synopsis, before the first flag, operand or
// option group: "failover [--hard]" -> [failover].
func subcommandWords(synopsis string) []string {
	var words []string
	for _, tok := range strings.Fields(synopsis) {
		if !wordList.MatchString(tok) {
			break
		}
		words = append(words, strings.Split(tok, "|")...)
	}
	return words
}

// flagArg finds how the usage text writes a flag's value: "-c FILE" gives
// the argument name FILE, "-o json|table" the choices [json table]. The
// name is "" when the usage text shows no upper-case argument name (the
// caller keeps the flag set's type word then).
func flagArg(text, dashed string) (arg string, choices []string) {
	re := regexp.MustCompile(`(?:^|[\s\[])` + regexp.QuoteMeta(dashed) + `\s+([A-Za-z0-9/_|.-]+)`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		v := strings.TrimRight(m[1], "]")
		switch {
		case argName.MatchString(v):
			if arg == "" {
				arg = v
			}
		case choiceList.MatchString(v):
			for _, c := range strings.Split(v, "|") {
				if !contains(choices, c) {
					choices = append(choices, c)
				}
			}
		}
	}
	return arg, choices
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseFlagDefaults reads flag.PrintDefaults output:
//
//	-c string
//	  	config file (default "/etc/vipd/vipd.toml")
//	-hard
//	  	rehearse a crash
//
// The type word ("string", "duration") becomes the upper-case argument
// name; a flag without one is a boolean.
func parseFlagDefaults(text string) []flagDoc {
	var flags []flagDoc
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "  -"):
			body := strings.TrimPrefix(line, "  -")
			// A one-letter boolean has its usage on the same line.
			if name, use, ok := strings.Cut(body, "\t"); ok && !strings.Contains(name, " ") {
				flags = append(flags, flagDoc{Name: name, Usage: strings.TrimSpace(use)})
				continue
			}
			name, typ, _ := strings.Cut(body, " ")
			flags = append(flags, flagDoc{Name: name, Arg: strings.ToUpper(strings.TrimSpace(typ))})
		case strings.HasPrefix(line, "    \t") && len(flags) > 0:
			f := &flags[len(flags)-1]
			f.Usage = strings.TrimSpace(f.Usage + " " + strings.TrimSpace(line))
		}
	}
	return flags
}
