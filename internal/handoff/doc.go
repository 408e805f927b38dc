// Package handoff carries a running vipd's state and open sockets to a new
// vipd process (a hitless restart or upgrade, issue 13): a versioned wire
// format over a unix socketpair, file descriptors passed with SCM_RIGHTS,
// and the parent/child protocol with its rollback deadlines.
//
// # The protocol
//
// "Old" is the running daemon, "new" is the binary on disk that old starts
// as its child. Each step names the call that performs it.
//
//  1. Old starts new (Start): the given path and argv, the environment plus
//     VIPD_HANDOFF_FD=3, one end of a unix SOCK_SEQPACKET socketpair as
//     file descriptor 3, stdout and stderr as Spawn says (the daemon
//     passes its own).
//  2. New finds the socket (FromEnv, which also unsets the variable and
//     marks the descriptor close-on-exec so new's own children do not
//     inherit it), reads its configuration, builds everything but binds
//     and sends nothing, and says HELLO (Parent.Hello) with its pid, its
//     binary version and the state formats it reads. Start returns once
//     HELLO arrived, or fails after Spawn.HelloTimeout. The pid must be
//     the child's own (a wrapper that forks is refused): it becomes
//     systemd's MAINPID.
//  3. If new cannot read the format old writes (Hello.Reads), old says
//     REFUSE (Child.Refuse): new sees Msg.Refused from Parent.Receive and
//     waits for old's end of the socket to close (Parent.AwaitExit) before
//     it runs as a fresh daemon, while old takes today's SIGTERM path.
//  4. Otherwise old freezes everything and sends its state: a format
//     number, a body of up to MaxBody bytes and up to MaxFiles open files
//     (Child.Send, received by Parent.Receive).
//  5. New adopts the state and says READY (Parent.Ready, awaited by
//     Child.AwaitReady within Spawn.ReadyTimeout). Old says GO (Child.Go,
//     awaited by Parent.AwaitGo). New starts everything and says RUNNING
//     (Parent.Running, awaited by Child.AwaitRunning within
//     Spawn.RunningTimeout). Old closes its copies of the files without
//     shutting anything down (Child.Close) and exits.
//  6. Rollback: if new exits, declines (Parent.Refuse: ErrRefused with
//     new's reason), sends something malformed or misses a deadline at any
//     point before RUNNING, old kills it and waits for it (Child.Abort) and
//     resumes what it froze. Start and the Child methods report a child
//     that died at once, with its exit status (ErrChildExited,
//     *ExitError), not when a deadline passes.
//
// # Wire format
//
// Every message is one SOCK_SEQPACKET datagram holding one frame: a 12-byte
// header (magic "VIPH", wire version, kind, number of file descriptors
// attached, payload length, all big-endian) and the payload. The header
// layout and HELLO never change, so any two versions can at least agree
// that they disagree; a frame of another wire version is ErrVersion. The
// state body travels as BEGIN (format, file count, body length), CHUNKs of
// at most MaxChunk bytes each with at most MaxFilesPerMessage descriptors,
// and END (CRC-32C of the body). Every bound is checked before anything is
// allocated; malformed input is an error (ErrMalformed, ErrTooLarge,
// ErrProtocol, ErrVersion), never a panic.
//
// The format of the body (what Version numbers) is the caller's: this
// package moves bytes and files, it does not know what a VRRP runner or a
// proxied connection is.
//
// It is implemented on Linux only; elsewhere Start and FromEnv (when the
// variable is set) return errors.ErrUnsupported.
package handoff
