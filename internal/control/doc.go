// Package control is vipd's operator API: HTTP+JSON over a unix socket
// (default /run/vipd/vipd.sock, mode 0660), served by the daemon and used by
// the CLI in the same binary.
//
// # Routes
//
//	GET  /v1/status   the Status document (DESIGN.md section 6)
//	POST /v1/drill    DrillRequest -> DrillResult (master only)
//	POST /v1/server   ServerRequest: drain | maint | ready
//	POST /v1/reload   re-read the config file; a bad file keeps the old one
//
// # Access
//
// Connecting to a unix socket needs write permission on it, so the file
// mode and group decide who may talk to vipd at all. Mutating routes also
// check the caller's SO_PEERCRED: root, the daemon's own user, or a member
// of the configured group.
package control
