// Package verify checks what config.Parse cannot see in the file alone:
// that the running daemon will be able to use what the file names. It is
// shared by `vipd check` (ExecStartPre, as the daemon's user), `vipd run`
// and Reload, so that a file is refused before anything of it is applied
// rather than accepted and then quietly run without a health check.
//
// Config checks, as the calling process (run it as the daemon's user):
//
//   - every health check builds: its CA, client certificate and key are
//     readable and parse (a 0600 root key under /etc/kubernetes/pki used to
//     pass `vipd check` and leave the server UP with no check at all);
//   - [control] group exists and this process may give the socket to it:
//     root, or a member of the group (SupplementaryGroups= in the unit);
//   - every [notify] and script [[track]] command exists and is executable.
//
// It warns, as keepalived's enable_script_security does, when such a
// command or a directory above it can be written by someone other than
// root or the daemon's user: whoever can change the script runs code as
// vipd on the next transition.
package verify

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
)

// Options tune Config.
type Options struct {
	// Warn receives each warning; nil drops them.
	Warn func(string)
}

// Config checks cfg as described in the package doc. The error joins every
// problem found, each prefixed with the file's path.
func Config(cfg *config.Config, o Options) error {
	warn := o.Warn
	if warn == nil {
		warn = func(string) {}
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{cfg.Path}, args...)...))
	}
	for _, b := range cfg.Backends {
		if b.Check.Type == config.CheckNone {
			continue
		}
		seen := map[string]bool{}
		for _, s := range b.Servers {
			if _, err := health.NewProbe(CheckSpec(b, s)); err != nil && !seen[err.Error()] {
				seen[err.Error()] = true // the same file fails for every server
				bad("[[backend]] %q check: %v%s", b.Name, err, fixFor(err))
			}
		}
	}
	if g := cfg.Control.Group; g != "" {
		if err := groupUsable(g); err != nil {
			bad("[control] group %q: %v", g, err)
		}
	}
	commands := map[string][]string{}
	if cfg.Notify != nil && len(cfg.Notify.Command) > 0 {
		commands["[notify] command"] = cfg.Notify.Command
	}
	for _, t := range cfg.Tracks {
		if t.Type == config.TrackScript && len(t.Command) > 0 {
			commands[fmt.Sprintf("[[track]] %q command", t.Name)] = t.Command
		}
	}
	names := make([]string, 0, len(commands))
	for k := range commands {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, what := range names {
		argv := commands[what]
		path, err := exec.LookPath(argv[0])
		if err != nil {
			bad("%s %q: %v%s", what, argv[0], unwrapExec(err), fixFor(err))
			continue
		}
		for _, w := range writableBy(path) {
			warn(fmt.Sprintf("%s: %s %q: %s; whoever can change it runs code as vipd on the next transition or check: make it and every directory above it owned by root and writable by root only", cfg.Path, what, argv[0], w))
		}
	}
	return errors.Join(errs...)
}

// CheckSpec maps a backend's check onto the health probe for one server:
// the same mapping the daemon uses to run it.
func CheckSpec(b config.Backend, s config.Server) health.Spec {
	addr := s.Addr
	if b.Check.Port != 0 {
		addr = netip.AddrPortFrom(addr.Addr(), b.Check.Port)
	}
	c := b.Check
	spec := health.Spec{Type: c.Type, Addr: addr.String()}
	if c.Type == config.CheckHTTP || c.Type == config.CheckHTTPS {
		spec.Method, spec.Path, spec.ExpectStatus = c.Method, c.Path, c.ExpectStatus
	}
	if c.Type == config.CheckTLS || c.Type == config.CheckHTTPS {
		spec.CAFile, spec.SNI, spec.ClientCertFile, spec.ClientKeyFile = c.CA, c.SNI, c.ClientCert, c.ClientKey
		spec.InsecureSkipVerify = c.InsecureSkipVerify
	}
	return spec
}

// fixFor adds advice to a permission error: which user needs access.
func fixFor(err error) string {
	if !errors.Is(err, os.ErrPermission) {
		return ""
	}
	return fmt.Sprintf(" (checked as %s, the user vipd runs as under the shipped unit: give it read access, e.g. chgrp vipd FILE && chmod g+r FILE, and x on the directories above)", whoami())
}

func whoami() string {
	uid := os.Geteuid()
	if name := userName(uid); name != "" {
		return fmt.Sprintf("uid %d (%s)", uid, name)
	}
	return fmt.Sprintf("uid %d", uid)
}

func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// groupUsable reports whether this process may chown the socket to g.
func groupUsable(g string) error {
	gid, err := control.LookupGroup(g)
	if err != nil {
		return fmt.Errorf("no such group; create it (groupadd %s) or remove the key", g)
	}
	if os.Geteuid() == 0 || os.Getegid() == gid {
		return nil
	}
	groups, _ := os.Getgroups()
	if slices.Contains(groups, gid) {
		return nil
	}
	return fmt.Errorf("%s is not a member, so it cannot give the control socket to that group; add SupplementaryGroups=%s to the unit (systemctl edit vipd) or the user to the group (usermod -aG %s vipd)", whoami(), g, g)
}

// writableBy lists why path, or a directory above it, can be changed by
// someone other than root and this process's user.
func writableBy(path string) []string {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil
	}
	real, _ = filepath.Abs(real)
	self := uint32(os.Geteuid())
	var out []string
	for p := real; ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				what := "it"
				if p != real {
					what = "directory " + p
				}
				mode := fi.Mode().Perm()
				switch {
				case st.Uid != 0 && st.Uid != self:
					out = append(out, fmt.Sprintf("%s is owned by uid %d", what, st.Uid))
				case mode&0o002 != 0 && fi.Mode()&os.ModeSticky == 0: // sticky (/tmp): others cannot replace entries
					out = append(out, fmt.Sprintf("%s is writable by everyone (mode %04o)", what, mode))
				case mode&0o020 != 0 && st.Gid != 0:
					out = append(out, fmt.Sprintf("%s is writable by group %d (mode %04o)", what, st.Gid, mode))
				}
			}
		}
		if p == filepath.Dir(p) {
			return out
		}
	}
}
