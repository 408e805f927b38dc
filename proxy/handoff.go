//go:build linux

package proxy

import (
	"errors"
	"net/netip"
	"time"
)

// Hitless restart (issue 13): the running proxy freezes its loops and
// exports every listener and connection; a new process adopts them; the
// old one lets go (Abandon) or, on rollback, carries on (Resume).
//
// Sequence, old process: Freeze → (send Handoff as JSON and the files over
// SCM_RIGHTS) → Abandon on success or Resume on rollback. New process: New →
// Adopt → Listen (adopted listeners are used instead of binding) → Run only
// once the old process said GO, then CloseAdopted. Nothing is read, written
// or accepted on an adopted socket before Run, so a rollback after Adopt
// loses and duplicates nothing.
//
// A connection still connecting to its server is exported as "connecting"
// with its connect deadline; the adopter waits for the connect (the same
// socket, so a connect completed meanwhile shows at once) and tries the
// next server on failure. It is not waited for: Freeze stays short.

// Handoff is what the proxy gives a new process: JSON-encodable; the FD
// fields index into the files slice returned with it.
type Handoff struct {
	Listeners []HandoffListener `json:"listeners"`
	Conns     []HandoffConn     `json:"conns"`
	// Frontends and Servers carry the cumulative counters (total
	// connections, bytes, failed connects) so Status continues across a
	// restart. Active counts are not carried: Adopt counts the adopted
	// connections.
	Frontends []HandoffFrontend `json:"frontends,omitempty"`
	Servers   []HandoffServer   `json:"servers,omitempty"`
}

// HandoffListener is one listening socket.
type HandoffListener struct {
	Frontend string         `json:"frontend"`
	Addr     netip.AddrPort `json:"addr"`
	FD       int            `json:"fd"` // index into files
}

// Connection states in a HandoffConn.
const (
	// ConnEstablished: both sockets connected; bytes flow.
	ConnEstablished = "established"
	// ConnConnecting: the server socket's non-blocking connect is in
	// progress (or finished unseen); ConnectDeadline bounds it.
	ConnConnecting = "connecting"
	// ConnWaiting: accepted, no server socket yet (out of file
	// descriptors); ServerFD is -1 and the adopter connects.
	ConnWaiting = "waiting"
)

// HandoffConn is one proxied connection: its two sockets and everything
// the proxy held for it.
type HandoffConn struct {
	State    string `json:"state"` // ConnEstablished, ConnConnecting or ConnWaiting
	Frontend string `json:"frontend"`
	Backend  string `json:"backend"`
	// Server and ServerAddr name the server connected (or connecting) to;
	// empty while waiting. The adopter uses its own server of that name
	// in Backend when the address matches, or a detached one otherwise.
	Server     string         `json:"server,omitempty"`
	ServerAddr netip.AddrPort `json:"server_addr,omitzero"`
	Client     netip.AddrPort `json:"client"` // the client's address
	ClientFD   int            `json:"client_fd"`
	ServerFD   int            `json:"server_fd"` // -1: none
	// ToServer and ToClient are bytes read from one side and not yet
	// written to the other (after a short write, or sitting in a splice
	// pipe): the adopter writes them first.
	ToServer []byte `json:"to_server,omitempty"`
	ToClient []byte `json:"to_client,omitempty"`
	// Half-close: ClientEOF, the client sent FIN (read returned 0);
	// ServerShut, that FIN was forwarded (shutdown(SHUT_WR) on the server
	// socket). ServerEOF and ClientShut the same the other way.
	ClientEOF  bool `json:"client_eof,omitempty"`
	ServerEOF  bool `json:"server_eof,omitempty"`
	ServerShut bool `json:"server_shut,omitempty"`
	ClientShut bool `json:"client_shut,omitempty"`
	// Tried lists the servers already tried for this connection (the
	// connect retry skips them).
	Tried []string `json:"tried,omitempty"`
	// ConnectDeadline is when a connecting connect times out (zero
	// otherwise).
	ConnectDeadline time.Time `json:"connect_deadline,omitzero"`
	// LastActive is the last time bytes moved; IdleDeadline is when the
	// old process's idle timeout would have closed it (zero: none). The
	// adopter applies its own frontend's idle timeout from LastActive.
	LastActive   time.Time `json:"last_active"`
	IdleDeadline time.Time `json:"idle_deadline,omitzero"`
	// A connection carries no start time or byte counters of its own (the
	// frontends' counters carry over): 24 bytes less per idle connection.
	// Earlier builds sent "started", "bytes_in" and "bytes_out"; they are
	// ignored.
}

// HandoffFrontend is a frontend's cumulative counters.
type HandoffFrontend struct {
	Name       string `json:"name"`
	TotalConns int64  `json:"total_conns"`
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`
}

// HandoffServer is a server's cumulative counters.
type HandoffServer struct {
	Backend     string `json:"backend"`
	Name        string `json:"name"`
	TotalConns  int64  `json:"total_conns"`
	FailedConns int64  `json:"failed_conns"`
}

// Errors of the handoff calls.
var (
	// ErrFrozen is returned by Freeze while a freeze is in progress.
	ErrFrozen = errors.New("proxy: frozen for a handoff")
	// ErrNotFrozen is returned by Resume without a Freeze.
	ErrNotFrozen = errors.New("proxy: not frozen")
)
