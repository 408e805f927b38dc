// Package proxy is vipd's L4 TCP proxy: frontends listening on the VIP (or
// a fixed address) forward each connection to a server of a backend chosen
// among the healthy ones, as HAProxy does in `mode tcp`.
//
// # What it implements
//
//   - Listen binds with IP_FREEBIND, before the VIP is on the host. When the
//     port is taken because another socket listens on *:port (kube-apiserver
//     by default on a control-plane node), the *BindError says so and names
//     the two fixes.
//   - Balancing behind a one-method picker fed an immutable snapshot of the
//     eligible servers: leastconn (default), roundrobin, source (rendezvous
//     hash of the client IP: stable, and only a leaving server's clients move).
//   - Connect timeout (5s), up to 4 servers tried per connection, failures
//     counted; TCP keepalive and TCP_NODELAY both sides; optional idle
//     timeout (none by default); half-close both ways (a FIN is forwarded
//     with shutdown). Timers are swept: a loop wakes at the earliest
//     deadline it holds, at most every 5ms (connect) or 20ms (idle), so
//     both fire within a few ms of their time.
//   - Global and per-frontend maxconn: at the limit the loops stop calling
//     accept, so clients wait in the kernel backlog, until a connection
//     closes. Accept errors (EMFILE, ENFILE...) are backed off 5ms doubling
//     to 1s, never fatal.
//   - Out of file descriptors (RLIMIT_NOFILE) no client is dropped: each
//     loop holds a spare fd, closed to make room for the server socket of
//     the client it just accepted; without its spare a loop stops accepting,
//     so clients wait in the backlog, and retries on the same backoff or
//     when one of its connections closes. A client whose server socket still
//     cannot be had waits, parked, and is retried first. The warnings are
//     rate-limited: the first, then one per 10s with a count (fdlimit.go).
//   - Server states UP, DOWN, DRAIN (closed after DrainTimeout), MAINT
//     (closed now), CloseOnDown, and fail-open when every server is DOWN
//     (logged once per episode with "fail_open": true).
//   - PROXY protocol v2 to the server, opt-in per backend.
//   - Every connection is owned by one event loop, so Unlisten, CloseConns,
//     drain, maint and the Status counters are exact; Update applies only
//     differences and never drops an established connection.
//   - Hitless restart (handoff.go, freeze.go, adopt.go): Freeze stops every
//     loop at a safe point and exports the listeners and connections (dups
//     of their sockets, the bytes held, read out of splice pipes too,
//     half-close state, deadlines, counters); a new process Adopts them and
//     Listen reuses the adopted listeners; the old one Abandons (closes its
//     copies without shutdown or RST) or, on rollback, Resumes.
//
// It does not terminate TLS, look into the stream, or balance per request.
//
// # Design: event loops on raw file descriptors
//
// A straightforward Go proxy (two io.Copy goroutines per connection, splice)
// measured 1.39x HAProxy's bulk throughput but 0.76x its connection rate,
// 1.5x its CPU per connection, 4.7x its memory and 3x its file descriptors
// per idle connection: two goroutine stacks, two net.Conn, and a splice
// pipe (two fds, kernel pages) per direction held for the connection's
// whole life. Against HAProxy's 3.4 KB and 2 fds per idle connection, two
// goroutines alone (stacks of at least 2-8 KB) cannot win. So:
//
//   - GOMAXPROCS event loops (at most 8), each an epoll set of raw
//     non-blocking sockets, edge-triggered, with the readiness kept in a
//     flags word per connection. A loop blocks its thread in epoll_wait,
//     as HAProxy's threads do: one wake-up per event. (Parking the loop as
//     a goroutine in the runtime poller on its epoll fd cost a second
//     wake-up, the runtime's nested epoll then ours, plus a scheduler
//     hand-off: twice HAProxy's ping-pong latency.) While the loops run,
//     GOMAXPROCS is one more than their number, so a P is always free for
//     the daemon's other goroutines and sysmon does not take the P of a
//     waiting loop every 20 µs (procs.go). Every other system call of a
//     loop is on a non-blocking descriptor and made with RawSyscall, which
//     keeps the P (sys.go).
//   - Every listener is in every loop's epoll set with EPOLLEXCLUSIVE, so
//     a new connection wakes one idle loop, which calls accept4 itself
//     (batches of 32) and owns the connection: no acceptor goroutine, no
//     hand-off, no eventfd. A loop holding clearly more connections than
//     another hands the new one over (a burst of 8 bulk streams would
//     otherwise all land on the loop that woke first, on one core).
//   - An idle connection holds a ~250-byte struct, two map entries and its
//     two sockets: no goroutine, no buffer, no pipe. Small reads go through
//     the loop's one shared 64 KiB buffer (recv then send; a short recv means
//     the queue is drained, so no EAGAIN probe). A read that fills the buffer
//     switches that direction to splice through a 1 MiB pipe from the
//     loop's pool, zero-copy, until reads get small again; the pipe returns
//     to the pool as soon as it is empty. Bytes are held only after a short
//     write.
//   - Other goroutines (Listen, Unlisten, SetAdmin, Update, timers) talk to
//     a loop through a locked queue and an eventfd; nothing else touches a
//     connection, so there are no per-connection locks. Serve with a
//     listener that is not TCP keeps a goroutine accepting for the loops.
//
// # Files
//
// One idea per file: proxy.go (the Proxy, Listen, Run), listen.go (listening
// sockets, BindError), serve.go (Serve with listeners made elsewhere),
// loop.go (the event loop: wake-ups, commands, epoll_wait), accept.go
// (accepting and the connection limits), conn.go (connection setup and
// close), pump.go (moving bytes), timers.go (connect and idle deadlines),
// fdlimit.go (out of file descriptors), backend.go (servers and pickers),
// proxyproto.go (the PROXY protocol header), admin.go, update.go and
// status.go (the operator's and the daemon's calls), rawsock.go and sys.go
// (raw system calls), procs.go (GOMAXPROCS while the loops run),
// handoff.go (the Handoff a new process gets), freeze.go (Freeze, Resume,
// Abandon) and adopt.go (Adopt).
//
// The price is Linux-only code with explicit epoll bookkeeping instead of
// the io.Copy model; tests cover half-close, partial writes under
// backpressure and every close path. integration/benchproxy measures it
// against HAProxy and a direct connection.
package proxy
