package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The node's own services: the control socket, the status page and the
// notify hook.

func (d *decoder) control(t *table) Control {
	c := Control{Socket: DefaultSocket, Mode: DefaultSocketMode}
	c.Socket = t.str("socket", DefaultSocket)
	if !filepath.IsAbs(c.Socket) {
		t.bad("socket", t.m["socket"], "must be an absolute path; e.g. socket = %q", DefaultSocket)
	}
	c.Group = t.str("group", "")
	if t.has("group") && c.Group == "" {
		t.bad("group", "", "must not be empty; remove it to keep the daemon's group")
	}
	if v, ok := t.get("mode"); ok {
		var (
			mode uint64
			err  error
		)
		switch x := v.(type) {
		case string:
			mode, err = strconv.ParseUint(strings.TrimPrefix(x, "0o"), 8, 32)
		case int64:
			// 0o660 in TOML; a decimal 660 is almost surely a mistake.
			if x < 0 {
				err = fmt.Errorf("negative")
			}
			mode = uint64(x)
			if x == 660 || x == 640 || x == 600 || x == 666 || x == 770 {
				err = fmt.Errorf("decimal")
			}
		default:
			err = fmt.Errorf("type")
		}
		if err != nil || mode > 0o777 {
			t.bad("mode", v, `must be octal permission bits; write mode = "0660" (or 0o660)`)
		} else {
			c.Mode = os.FileMode(mode)
			if c.Mode&0o002 != 0 {
				t.warnKey("mode", "anyone on the host can drive failovers through a world-writable socket; use \"0660\" with group")
			}
		}
	}
	t.finish()
	return c
}

func (d *decoder) http(t *table) *HTTP {
	t.hints = httpHints
	h := &HTTP{Listen: DefaultHTTPListen}
	h.Listen = t.str("listen", DefaultHTTPListen)
	if t.has("listen") {
		if err := checkListen(h.Listen); err != nil {
			t.bad("listen", t.m["listen"], "%v", err)
		}
	}
	users, _ := t.list("user")
	names := map[string]int{}
	for i, m := range users {
		ut := d.table(m, indexPath(t.keyPath("user"), i), "http.user", elemLabel("http.user", m, i))
		ut.hints = userHints
		var u User
		if !ut.has("name") {
			ut.badTable(`missing name; add name = "admin"`)
		}
		u.Name = ut.str("name", "")
		if ut.has("name") && (u.Name == "" || strings.Contains(u.Name, ":")) {
			ut.bad("name", u.Name, `must be non-empty and without ":" (basic auth splits on it)`)
		}
		if j, dup := names[u.Name]; dup && u.Name != "" {
			ut.bad("name", u.Name, "already used by [[http.user]] #%d; user names must be unique", j+1)
		}
		names[u.Name] = i
		if !ut.has("password_hash") {
			ut.badTable(`missing password_hash; add password_hash = "$2y$..." (htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n')`)
		}
		u.PasswordHash = ut.str("password_hash", "")
		if ut.has("password_hash") {
			if err := checkBcrypt(u.PasswordHash); err != nil {
				ut.bad("password_hash", redact(u.PasswordHash), "%v", err)
			}
		}
		ut.finish()
		h.Users = append(h.Users, u)
	}
	if _, ok := t.m["allow"]; ok {
		allow, ok := t.strings("allow")
		if ok && len(allow) == 0 {
			t.bad("allow", []any{}, `lets nobody in; list client networks, e.g. allow = ["127.0.0.0/8", "10.0.0.0/8"], or remove it (loopback only)`)
		}
		for i, s := range allow {
			p, err := parseNet(s)
			if err != nil {
				d.errAt(indexPath(t.keyPath("allow"), i), "[http] allow[%d] = %q: %v", i, s, err)
				continue
			}
			h.Allow = append(h.Allow, p)
		}
	} else {
		t.get("allow")
		h.Allow = DefaultHTTPAllow()
		if ap, err := netip.ParseAddrPort(h.Listen); (err == nil && !ap.Addr().IsLoopback()) || strings.HasPrefix(h.Listen, ":") {
			t.warnKey("listen", `allow is not set, so only loopback clients get in; add allow = ["10.0.0.0/8"] for the networks that may read it`)
		}
	}
	t.finish()
	return h
}

// redact keeps secrets out of messages (and so out of logs): a bcrypt hash
// shows its algorithm and cost only, anything else may be a plain password.
func redact(hash string) string {
	if strings.HasPrefix(hash, "$2") && len(hash) > 7 {
		return hash[:7] + "..."
	}
	return "<redacted>"
}

func checkListen(s string) error {
	if strings.HasPrefix(s, ":") {
		if p, err := strconv.ParseUint(s[1:], 10, 16); err == nil && p > 0 {
			return nil
		}
	} else if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 && ap.Addr().Zone() == "" {
		return nil
	}
	return fmt.Errorf(`must be "ip:port" (or ":port" for every address); e.g. listen = %q`, DefaultHTTPListen)
}

func checkBcrypt(h string) error {
	if !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
		return fmt.Errorf(`not a bcrypt hash ($2a$, $2b$ or $2y$); generate one with: htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n'`)
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil || len(h) != 60 {
		return fmt.Errorf(`a truncated or damaged bcrypt hash (want 60 characters); generate it again with: htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n'`)
	}
	return nil
}

// parseNet accepts "10.0.0.0/8" or a bare address (a /32 or /128).
func parseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf(`not a CIDR; write e.g. "10.0.0.0/8" or "192.168.30.5"`)
		}
		if p.Masked() != p {
			return p, fmt.Errorf("has host bits set; write %q", p.Masked().String())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf(`not a CIDR; write e.g. "10.0.0.0/8" or "192.168.30.5"`)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (d *decoder) notify(t *table) *Notify {
	n := &Notify{Timeout: DefaultNotifyTimeout}
	if !t.has("command") {
		t.badTable(`missing command; add command = ["/usr/local/bin/vipd-notify"] (it gets instance, state and priority appended)`)
	}
	cmd, ok := t.strings("command")
	if ok && (len(cmd) == 0 || cmd[0] == "") {
		t.bad("command", t.m["command"], `must name a program; write command = ["/usr/local/bin/vipd-notify"]`)
	}
	n.Command = cmd
	n.Timeout = t.duration("timeout", DefaultNotifyTimeout, time.Millisecond, time.Hour, "5s")
	t.finish()
	return n
}
