// Package config turns a vipd TOML file into a typed, defaulted and
// validated Config.
//
// # What it implements
//
// The file format is the contract of DESIGN.md section 7: [vrrp] (one VRRP
// instance, or the settings shared by several [[instance]] tables, each with
// its own vrid, VIPs, version (VRRPv3, or VRRPv2 with auth_pass for a
// migration from keepalived) and per-node priorities), [[node]],
// [[track]], [[frontend]], [[backend]], [control], [http] with
// [[http.user]], [notify], [log] and [global]. Durations are strings with a
// unit ("200ms"), addresses are IP literals (hostnames are never resolved),
// and the defaults make the minimal file of DESIGN.md valid: advert
// interval 200ms, preempt on, pseudo-header checksum, leastconn balancing,
// tcp checks at 2s/1s/2/3, connect timeout 5s, drain timeout 30s, socket
// /run/vipd/vipd.sock mode 0660. The Default* constants list them all.
//
// Decoding is strict, in the manner of mdlayher/corerad: an unknown key is
// an error with a "did you mean" suggestion (keepalived and HAProxy habits
// such as nopreempt or advert_int get their own hint), a key that belongs to
// another track or check type is an error, and every problem in the file is
// reported at once. Parse returns an errors.Join of *Error values sorted by
// line, each printed as
//
//	vipd.toml:12: [vrrp] advert_interval = "0ms": must be between 10ms and 40.95s (RFC 9568 12-bit centiseconds); try "200ms"
//
// so the operator learns both where and how to fix it. TOML syntax errors
// from github.com/BurntSushi/toml become *Error values with their line too.
//
// toml decodes into map[string]any and this package walks the map with the
// schema in code rather than decoding into tagged structs: toml matches
// struct fields case-insensitively (VRID = 51 would slip through), stops at
// the first type error, and keeps one position per dotted key for all
// [[node]] tables alike. Line numbers come from a small scanner over the
// source (position.go) that indexes array elements.
//
// That scanner runs first and also guards the parse: a file over
// MaxFileSize (1 MiB), nested more than 16 levels deep (tables, dotted
// keys, arrays and inline tables together), with a key path over 256 bytes
// or more than 20,000 keys, tables and list elements is refused before
// toml sees it, whose cost grows with the square of such shapes. A reload
// of a hostile file is then refused in milliseconds instead of costing the
// running daemon its memory.
//
// Besides Load and Parse, a Config answers three questions for the daemon:
// SelectNode (which [[node]] this host is), Warnings (valid but doubtful
// settings, such as tracker weights that can never cause a failover) and
// Diff (what a reload changes; Changes.Restart is the one rule for which
// changes a running node cannot apply without a restart).
//
// # What it does not do
//
// It does not touch the system: it does not check that interfaces, CA files,
// scripts or groups exist, that ports are free, or that addresses are
// configured; internal/verify does that for `vipd check`, `vipd run` and
// reload on the host that runs them, since the same file is meant for
// every node. It does not resolve
// hostnames. It does not apply a Config; Diff only describes changes.
package config
