// Package connlimit bounds the connections a listener hands out and keeps
// it answering when the process has run out of file descriptors.
//
// vipd's control socket and status page must answer an operator while the
// proxy is flooded. Two things stood in the way: a client that opens
// connections and never finishes a request (3,000 half-sent requests took
// 3,000 descriptors), and accept(2) failing with EMFILE once the proxy had
// used up RLIMIT_NOFILE, so that `vipd status` timed out. A Listener:
//
//   - hands out at most max connections at a time; one past that is
//     accepted, given a short refusal (reject writes it, in its own
//     goroutine, within rejectTimeout) and closed, so a caller learns why
//     instead of waiting; while max refusals are already under way, a
//     further connection is closed without one;
//   - holds one spare descriptor (/dev/null). When accept fails for lack of
//     descriptors it closes the spare, which makes room for exactly one
//     connection, and accepts again; the spare is taken back when a
//     connection closes. So one operator request at a time gets through at
//     the limit, as nginx and HAProxy do for their own listeners.
//
// It does not time requests out: the HTTP server's timeouts do that.
package connlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// Listener is a net.Listener with a connection cap and a spare descriptor.
type Listener struct {
	net.Listener
	max    int
	reject func(net.Conn)

	mu        sync.Mutex
	open      int
	rejecting int
	spare     *os.File
}

// rejectTimeout bounds the refusal of one connection over the cap.
const rejectTimeout = 500 * time.Millisecond

// New wraps ln. At most max connections are open at a time; reject, when
// not nil, reads what it needs of a connection over the cap and writes a
// short answer before it is closed; the connection's deadline is
// rejectTimeout away.
func New(ln net.Listener, max int, reject func(net.Conn)) *Listener {
	l := &Listener{Listener: ln, max: max, reject: reject}
	l.takeSpare()
	return l
}

// Accept returns the next connection under the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if outOfFds(err) && l.releaseSpare() {
				continue // the spare's slot is free now: accept again
			}
			return nil, err
		}
		l.mu.Lock()
		admit := l.open < l.max
		refuse := !admit && l.reject != nil && l.rejecting < l.max
		switch {
		case admit:
			l.open++
		case refuse:
			l.rejecting++
		}
		l.mu.Unlock()
		switch {
		case admit:
			return &conn{Conn: c, l: l}, nil
		case refuse:
			go l.refuse(c)
		default:
			c.Close()
		}
	}
}

func (l *Listener) refuse(c net.Conn) {
	c.SetDeadline(time.Now().Add(rejectTimeout))
	l.reject(c)
	c.Close()
	l.mu.Lock()
	l.rejecting--
	l.mu.Unlock()
}

// Close closes the listener and the spare.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.spare != nil {
		l.spare.Close()
		l.spare = nil
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// Open is the number of connections handed out and not closed yet.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func (l *Listener) takeSpare() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spare == nil {
		l.spare, _ = os.Open(os.DevNull) // nil when out of fds: retried on the next close
	}
}

func (l *Listener) releaseSpare() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spare == nil {
		return false
	}
	l.spare.Close()
	l.spare = nil
	return true
}

func (l *Listener) closed() {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
	// Right after our own close the freed slot is most likely still free.
	l.takeSpare()
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.closed)
	return err
}

// outOfFds reports whether err means the process or the system has no
// file descriptor to give.
func outOfFds(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// NetConn returns the connection as accepted (a *net.UnixConn for peer
// credentials, for example).
func (c *conn) NetConn() net.Conn { return c.Conn }

// HTTPRefusal returns a reject function for an HTTP server: it reads the
// request (closing a socket with unread data makes the client's write fail
// before it sees the answer), then writes a complete response with status
// 503, Connection: close and body.
func HTTPRefusal(contentType, body string) func(net.Conn) {
	resp := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: %s\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s",
		contentType, len(body), body)
	return func(c net.Conn) {
		if req, err := http.ReadRequest(bufio.NewReaderSize(c, 4096)); err == nil {
			io.Copy(io.Discard, io.LimitReader(req.Body, 64<<10))
		}
		io.WriteString(c, resp)
	}
}
