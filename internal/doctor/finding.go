package doctor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vipd/vipd/internal/control"
)

// Finding is one problem found (control.Finding, shared with status).
type Finding = control.Finding

// Severities, as in Finding.Severity.
const (
	// SevError breaks failover or serving: exit status 2.
	SevError = "error"
	// SevWarning can break it, weakens it, or a check could not run:
	// exit status 1.
	SevWarning = "warning"
	// SevInfo is advice; it does not change the exit status.
	SevInfo = "info"
)

// Check names, as in Finding.Check. Scripts match on them.
const (
	CheckConfig    = "config"
	CheckInterface = "interface"
	CheckSysctl    = "sysctl"
	CheckFirewall  = "firewall"
	CheckConflict  = "vip-conflict"
	CheckVRRP      = "vrrp"
	CheckPeers     = "peers"
	CheckListener  = "listener"
	CheckBackends  = "backends"
	CheckFiles     = "files"
)

// ErrNotInstalled is wrapped by Env.Command when the program is missing.
var ErrNotInstalled = errors.New("not installed")

// Report is the outcome of Run, `vipd doctor -o json`.
type Report struct {
	Node   string `json:"node"`
	Config string `json:"config"`
	// Running says a vipd answered on this node's control socket.
	Running  bool    `json:"vipd_running"`
	ListenMs float64 `json:"listen_ms"`
	// Checks names every check that ran, in order.
	Checks   []string  `json:"checks"`
	Findings []Finding `json:"findings"`
}

// ExitCode is 2 with an error, 1 with a warning, else 0.
func (r Report) ExitCode() int {
	code := 0
	for _, f := range r.Findings {
		switch f.Severity {
		case SevError:
			return 2
		case SevWarning:
			code = 1
		}
	}
	return code
}

// WriteText prints the report for a person: findings first, errors before
// warnings, then the checks that found nothing.
func (r Report) WriteText(w io.Writer) {
	running := "vipd is not running on this node"
	if r.Running {
		running = "vipd is running on this node"
	}
	fmt.Fprintf(w, "vipd doctor: node %s, %s; %s; listened %gs\n\n", r.Node, r.Config, running, r.ListenMs/1000)
	count := map[string]int{}
	found := map[string]bool{}
	for _, sev := range []string{SevError, SevWarning, SevInfo} {
		for _, f := range r.Findings {
			if f.Severity != sev {
				continue
			}
			count[sev]++
			found[f.Check] = true
			subject := f.Check
			if f.Instance != "" {
				subject += " (" + f.Instance + ")"
			}
			fmt.Fprintf(w, "%-8s %s: %s\n", strings.ToUpper(sev), subject, f.Seen)
			if f.Fix != "" {
				fmt.Fprintf(w, "%-8s fix: %s\n", "", f.Fix)
			}
		}
	}
	var ok []string
	for _, c := range r.Checks {
		if !found[c] {
			ok = append(ok, c)
		}
	}
	if len(ok) > 0 {
		fmt.Fprintf(w, "%-8s %s\n", "ok", strings.Join(ok, ", "))
	}
	fmt.Fprintf(w, "\n%s, %s, %s\n", plural(count[SevError], "error"), plural(count[SevWarning], "warning"), plural(count[SevInfo], "note"))
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}

func finding(check, sev, instance, seen, fix string) Finding {
	return Finding{Check: check, Severity: sev, Instance: instance, Seen: seen, Fix: fix}
}

// couldNot is the finding of a check that could not run.
func couldNot(check, instance, what string, err error) Finding {
	fix := "see the error"
	switch {
	case errors.Is(err, os.ErrPermission):
		fix = "run vipd doctor as root (it needs CAP_NET_RAW and CAP_NET_ADMIN to look)"
	case errors.Is(err, ErrNotInstalled):
		fix = "install it, or check by hand"
	}
	return finding(check, SevWarning, instance, fmt.Sprintf("could not %s: %v", what, err), fix)
}
