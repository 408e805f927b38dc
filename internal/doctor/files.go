package doctor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The packaged config file mode: readable by root and the vipd group.
const (
	packagedUser = "vipd"
	packagedMode = 0o640
)

// filesHost is what the files check reads.
type filesHost struct {
	stat        func(string) (FileInfo, error)
	lookupGroup func(string) (int, error)
	lookupUser  func(string) (int, []int, error)
}

// checkFiles: the config file holds password hashes and passwords and runs
// hook commands as vipd, so it must not be world-readable (with secrets)
// nor writable by others, and the vipd user must be able to read it; the
// control socket's group must exist, and its directory must not let
// anyone replace the socket.
func checkFiles(h filesHost, plan Plan) []Finding {
	var out []Finding
	fi, err := h.stat(plan.ConfigPath)
	if err != nil {
		return append(out, couldNot(CheckFiles, "", "stat the config file", err))
	}
	perm := fi.Mode.Perm()
	fixMode := fmt.Sprintf("chown root:%s %s && chmod %o %s (the packaged mode)", packagedUser, plan.ConfigPath, packagedMode, plan.ConfigPath)
	switch {
	case perm&0o002 != 0:
		out = append(out, finding(CheckFiles, SevError, "",
			fmt.Sprintf("%s is writable by every user (mode %04o): anyone on this host can move the VIP or make vipd run a command ([notify], script trackers)", plan.ConfigPath, perm), fixMode))
	case perm&0o004 != 0 && len(plan.Secrets) > 0:
		why := "anyone on this host can read them"
		if slices.ContainsFunc(plan.Secrets, func(s string) bool { return strings.Contains(s, "hash") }) {
			why += ", and brute-force the hashes offline"
		}
		out = append(out, finding(CheckFiles, SevWarning, "",
			fmt.Sprintf("%s is readable by every user (mode %04o) and holds %s: %s", plan.ConfigPath, perm, strings.Join(plan.Secrets, " and "), why), fixMode))
	}
	if uid, gids, err := h.lookupUser(packagedUser); err == nil && !readable(fi, uid, gids) {
		out = append(out, finding(CheckFiles, SevWarning, "",
			fmt.Sprintf("user %s (the packaged unit runs vipd as it) cannot read %s (owner %d:%d, mode %04o)", packagedUser, plan.ConfigPath, fi.UID, fi.GID, perm), fixMode))
	}
	if plan.SocketGroup != "" {
		if _, err := h.lookupGroup(plan.SocketGroup); err != nil {
			out = append(out, finding(CheckFiles, SevError, "",
				fmt.Sprintf("[control] group %q does not exist: vipd refuses to start (it gives the control socket to that group)", plan.SocketGroup),
				fmt.Sprintf("groupadd --system %s (and add the operators to it), or remove group from [control]", plan.SocketGroup)))
		}
	}
	dir := filepath.Dir(plan.Socket)
	if di, err := h.stat(dir); err == nil {
		switch {
		case !di.Mode.IsDir():
			out = append(out, finding(CheckFiles, SevError, "",
				fmt.Sprintf("the control socket's directory %s is not a directory: vipd cannot create %s", dir, plan.Socket),
				"remove it, or set [control] socket to a path in a directory"))
		case di.Mode.Perm()&0o002 != 0 && di.Mode&os.ModeSticky == 0:
			out = append(out, finding(CheckFiles, SevWarning, "",
				fmt.Sprintf("the control socket's directory %s is writable by every user (mode %04o, no sticky bit): anyone can replace the socket and answer the CLI in vipd's place", dir, di.Mode.Perm()),
				fmt.Sprintf("chmod 0755 %s (the packaged unit makes /run/vipd itself, RuntimeDirectory=vipd)", dir)))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		out = append(out, couldNot(CheckFiles, "", "stat the control socket's directory", err))
	}
	return out
}

// readable reports whether a process with uid and gids may read fi.
func readable(fi FileInfo, uid int, gids []int) bool {
	perm := fi.Mode.Perm()
	switch {
	case uid == 0:
		return true
	case fi.UID == uid:
		return perm&0o400 != 0
	case slices.Contains(gids, fi.GID):
		return perm&0o040 != 0
	}
	return perm&0o004 != 0
}
