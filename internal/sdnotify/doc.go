// Package sdnotify is a client of systemd's notify protocol (sd_notify(3)):
// READY=1, STATUS=, STOPPING=1, WATCHDOG=1 and MAINPID= datagrams to the
// socket named by $NOTIFY_SOCKET, and the watchdog loop of a Type=notify
// service.
//
// The socket is opened once, when the Notifier is made, and messages are
// sent to the path with sendto(2): a process that has used up its file
// descriptors (RLIMIT_NOFILE) can still ping the watchdog, which a fresh
// socket per message, as sd_notify(3) does, cannot. A send that fails
// because the socket itself went bad reopens it on the next message.
//
// A nil *Notifier is valid and does nothing, which is what FromEnv returns
// when the service does not run under systemd.
//
// It does not pass file descriptors (FDSTORE=1) and does not read
// $LISTEN_FDS.
package sdnotify
