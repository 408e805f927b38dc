// Package importer translates keepalived.conf and haproxy.cfg into one vipd
// configuration (the TOML of DESIGN.md section 7) for `vipd import`.
//
// # What it implements
//
// Two parsers and a translator:
//
//   - keepalived.conf (kalex.go, keepalived.go, kainstance.go): the syntax
//     keepalived's own parser reads (statements and { blocks }, "!" and "#"
//     comments, quotes, line continuations, "include" with globs relative
//     to the including file, "@node" lines, "$NAME" parameters), then
//     global_defs, vrrp_instance, vrrp_script, vrrp_track_process and
//     vrrp_sync_group. Each node's file is read on its own; merge.go
//     matches the instances across nodes by virtual_router_id (and
//     interface) and applies keepalived's defaults as keepalived does
//     (VRRPv2, 1 s adverts, priority 100 or 255 with state MASTER,
//     nopreempt ignored with state MASTER, auth_pass cut to 8 bytes).
//   - haproxy.cfg (haproxy.go, hatranslate.go, habackend.go, hacheck.go,
//     hastats.go): sections and lines with HAProxy's quoting and escapes,
//     defaults chains ("from NAME"), frontends and listens with their
//     binds, backends with default-server and server options, the check
//     options (the last one in effect wins, as in HAProxy), and a stats
//     page with its auth and source ACLs.
//   - the output (model.go, bind.go, emit.go): frontends bound to the VIP
//     of their instance, and the TOML, each note a comment above the
//     table it concerns.
//
// Nothing is dropped silently. Every statement and line is marked when it
// is translated or noted, and a final sweep names the rest. A Note is
// either NotCarried (a directive that is not in the output, and why) or
// Chosen (the source was ambiguous, or vipd behaves differently, and what
// the output does). What cannot be translated without changing who holds
// the VIP or where traffic goes (LVS virtual_server, auth_type AH, routes,
// TLS termination, mode http, names instead of addresses, nodes that
// disagree) is an *Error with file:line and the fix; Import then writes
// nothing.
//
// Input is bounded: 1 MiB per file, 8 MiB and 256 files per import, 8
// levels of includes (a cycle is an error), 16 levels of blocks, 2^18
// words, 1024 words per line. The fuzzers (FuzzKeepalived, FuzzHAProxy)
// check that no input panics or escapes these bounds and that every
// output is TOML.
//
// # What it does not do
//
// It does not validate the result: config.Parse does, as `vipd check`
// does, and the CLI exits 1 when it fails, so that each rule lives in one
// place. It does not read the scripts keepalived runs (it recognises
// haproxy process checks and API server checks by their command line), it
// does not resolve names, and it does not evaluate HAProxy's conditional
// blocks (.if). It translates vrrp_sync_group into nothing but a note:
// vipd has no instance groups yet.
package importer
