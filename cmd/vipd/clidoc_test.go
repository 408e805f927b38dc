package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// dispatched returns the command names run() switches on, read from
// run.go's source, without the aliases for help and version.
func dispatched(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "run.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "run" {
			return true
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			cc, ok := n.(*ast.CaseClause)
			if !ok {
				return true
			}
			for _, e := range cc.List {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					if !strings.HasPrefix(s, "-") && s != "help" {
						names = append(names, s)
					}
				}
			}
			return false
		})
		return false
	})
	sort.Strings(names)
	return names
}

// TestUsageListsEveryCommand is the drift test: the man page and the
// completions are generated from the usage text, so a command that run()
// dispatches but the usage text does not list (or the reverse) would be
// missing from them. Add the command's line to `usage` in run.go.
func TestUsageListsEveryCommand(t *testing.T) {
	var documented []string
	for _, c := range loadCLIDoc().Commands {
		documented = append(documented, c.Name)
	}
	sort.Strings(documented)
	if diff := cmp.Diff(dispatched(t), documented); diff != "" {
		t.Errorf("commands run() dispatches (-) vs commands the usage text lists (+):\n%s", diff)
	}
}

func findCmd(t *testing.T, doc cliDoc, name string) cmdDoc {
	t.Helper()
	for _, c := range doc.Commands {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no command %q in %+v", name, doc.Commands)
	return cmdDoc{}
}

func findFlag(t *testing.T, c cmdDoc, name string) flagDoc {
	t.Helper()
	for _, f := range c.Flags {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("%s has no flag %q: %+v", c.Name, name, c.Flags)
	return flagDoc{}
}

// TestCLIDocReadsTheHelp spot-checks that the usage text and the flag
// sets are read as an operator reads them.
func TestCLIDocReadsTheHelp(t *testing.T) {
	doc := loadCLIDoc()
	if !strings.HasPrefix(doc.Title, "vipd: ") || !strings.Contains(doc.Notes, "--socket PATH") {
		t.Errorf("title %q notes %q", doc.Title, doc.Notes)
	}
	for _, tc := range []struct {
		cmd, synopsis, summary string // synopsis: its beginning
		words                  []string
	}{
		{"run", "-c FILE [--node NAME]", "run the daemon (VRRP + proxy + checks)", nil},
		{"drill", "failover [", "hand the VIP to a backup and measure the gap", []string{"failover"}},
		{"server", "drain|maint|ready BACKEND/SERVER", "take a server out of rotation, or back in", []string{"drain", "maint", "ready"}},
		{"reload", "", "re-read the config (same as SIGHUP)", nil},
		{"restart", "[-o json|table]", "hand the sockets and the state to the binary on disk (same as SIGUSR2): no VRRP transition, no connection cut; exit 0 once the new process runs, 1 on a rollback", nil},
		{"manifest", "static-pod|talos -c FILE [--image REF]", "print a static pod / Talos patch (YAML)", []string{"static-pod", "talos"}},
		{"version", "", "print the version", nil},
	} {
		c := findCmd(t, doc, tc.cmd)
		if !strings.HasPrefix(c.Synopsis, tc.synopsis) || (tc.synopsis == "") != (c.Synopsis == "") || c.Summary != tc.summary || !cmp.Equal(c.Words, tc.words) {
			t.Errorf("%s: synopsis %q summary %q words %q; want %q %q %q", tc.cmd, c.Synopsis, c.Summary, c.Words, tc.synopsis, tc.summary, tc.words)
		}
	}
	for _, tc := range []struct {
		cmd, flag, arg string
		choices        []string
	}{
		{"run", "c", "FILE", nil},
		{"run", "node", "NAME", nil},
		{"status", "o", "STRING", []string{"json", "table"}},
		{"status", "socket", "PATH", nil},
		{"drill", "hold", "DURATION", nil},
		{"drill", "hard", "", nil},
		{"manifest", "image", "REF", nil},
		{"restart", "o", "STRING", []string{"json", "table"}},
	} {
		f := findFlag(t, findCmd(t, doc, tc.cmd), tc.flag)
		if f.Arg != tc.arg || !cmp.Equal(f.Choices, tc.choices) || f.Usage == "" {
			t.Errorf("%s %s: arg %q choices %q usage %q; want %q %q", tc.cmd, f.Dashed(), f.Arg, f.Choices, f.Usage, tc.arg, tc.choices)
		}
	}
	if f := findFlag(t, findCmd(t, doc, "run"), "c"); !strings.Contains(f.Usage, `(default "/etc/vipd/vipd.toml")`) {
		t.Errorf("run -c usage %q lacks its default", f.Usage)
	}
}

func TestParseFlagDefaults(t *testing.T) {
	got := parseFlagDefaults("Usage of x:\n  -c string\n    \tconfig file (default \"/a\")\n  -hard\n    \tcrash\n    \tsecond line\n  -v\tverbose\n  -hold duration\n    \thold (default 10s)\n")
	want := []flagDoc{
		{Name: "c", Arg: "STRING", Usage: `config file (default "/a")`},
		{Name: "hard", Usage: "crash second line"},
		{Name: "v", Usage: "verbose"},
		{Name: "hold", Arg: "DURATION", Usage: "hold (default 10s)"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestManPage: every command and every flag is on the page, and groff
// renders it without a warning (lintian runs the same check).
func TestManPage(t *testing.T) {
	code, page, errs := runCLI(t, "help", "man")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	doc := loadCLIDoc()
	for _, c := range doc.Commands {
		if !strings.Contains(page, "\\fBvipd "+c.Name+"\\fR") {
			t.Errorf("man page lacks command %s", c.Name)
		}
		for _, f := range c.Flags {
			if !strings.Contains(page, "\\fB"+roffText(f.Dashed())+"\\fR") {
				t.Errorf("man page lacks %s %s", c.Name, f.Dashed())
			}
		}
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("SKIP: groff not installed; cannot lint the page")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("groff: %v\n%s", err, stderr.String())
	}
}

// complete runs the generated bash completion for a command line (the
// cursor at its end) and returns the candidates.
func complete(t *testing.T, script, line string) []string {
	t.Helper()
	words := strings.Split(line, " ")
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, strconv.Quote(w))
	}
	prog := script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" + strconv.Itoa(len(words)-1) +
		"\n_vipd\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	out, err := exec.Command("bash", "--norc", "--noprofile", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	return got
}

func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("SKIP: no bash")
	}
	code, script, errs := runCLI(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var all []string
	for _, c := range loadCLIDoc().Commands {
		all = append(all, c.Name)
	}
	sort.Strings(all)
	dir := t.TempDir()
	for _, f := range []string{"vipd.toml", "vipd2.toml", "other.toml"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"vipd ", all},
		{"vipd dr", []string{"drain", "drill"}},
		{"vipd drain ", []string{"self"}},
		{"vipd drain self --u", []string{"--undo"}},
		{"vipd drill ", []string{"failover"}},
		{"vipd drill failover ", nil},
		{"vipd drill failover --h", []string{"--hard", "--hold"}},
		{"vipd status -o ", []string{"json", "table"}},
		{"vipd status --o j", []string{"json"}},
		{"vipd server ", []string{"drain", "maint", "ready"}},
		{"vipd manifest t", []string{"talos"}},
		{"vipd manifest talos -", []string{"--image", "-c"}},
		{"vipd run --", []string{"--log-level", "--node"}},
		{"vipd run -c " + dir + "/v", []string{dir + "/vipd.toml", dir + "/vipd2.toml"}},
		{"vipd completion ", []string{"bash", "zsh"}},
	} {
		if got := complete(t, script, tc.line); !cmp.Equal(got, tc.want, cmpopts.EquateEmpty()) {
			t.Errorf("%q completes to %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestZshCompletion loads the generated zsh function with the completion
// system's helpers stubbed (they need an interactive shell) and checks
// what it hands them.
func TestZshCompletion(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("SKIP: zsh not installed")
	}
	code, script, errs := runCLI(t, "completion", "zsh")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	run := func(words string, current int) string {
		prog := "_describe() { print -rl -- ${(P)${@[-1]}} }\n_arguments() { print -rl -- \"$@\" }\n" +
			"compdef() { }\nwords=(" + words + ")\nCURRENT=" + strconv.Itoa(current) + "\n" + script
		out, err := exec.Command("zsh", "-f", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("zsh: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run("vipd ''", 2); !strings.Contains(out, "drill:hand the VIP to a backup and measure the gap") || !strings.Contains(out, "manifest:") {
		t.Errorf("command list:\n%s", out)
	}
	out := run("vipd status ''", 3)
	for _, want := range []string{`-o[output: table or json (default "table")]:string:(json table)`, "--socket[control socket path (default /run/vipd/vipd.sock)]:path:_files", "-c[config file (the socket path is read from \\[control\\] socket)]:file:_files"} {
		if !strings.Contains(out, want) {
			t.Errorf("status specs lack %q:\n%s", want, out)
		}
	}
	if out := run("vipd server ''", 3); !strings.Contains(out, "1:server:(drain maint ready)") {
		t.Errorf("server specs:\n%s", out)
	}
}
