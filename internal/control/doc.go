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
// check the caller's credentials as the kernel recorded them at connect
// time (SO_PEERCRED, SO_PEERGROUPS; nothing is read from /proc): root, the
// daemon's own user, or a member of the configured group. Without
// credentials a mutating request is refused.
//
// Listen removes a stale socket left by a crashed run, and only a socket:
// a regular file or directory at the path is an error.
//
// # Limits
//
// At most MaxConns connections are served at a time; one more gets a 503
// at once. A request must arrive within 5 s (headers) and 10 s (body); an
// idle connection is closed after 30 s. The listener keeps a spare file
// descriptor, so that `vipd status` is answered even when the proxy has
// used up RLIMIT_NOFILE (internal/connlimit). The HTTP server's own error
// lines go to zerolog.
package control
