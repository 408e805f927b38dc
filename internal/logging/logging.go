// Package logging routes the standard library's loggers into zerolog, so
// that every line vipd writes is one JSON object for journald. net/http
// writes its own errors ("http: Accept error: ... too many open files;
// retrying in 1s", "http: TLS handshake error") through a *log.Logger,
// to stderr unless told otherwise.
package logging

import (
	"log"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// repeatEvery is how often one kind of repeated line is let through.
const repeatEvery = 10 * time.Second

// HTTPErrorLog returns a *log.Logger for http.Server.ErrorLog that writes
// each line as a zerolog warning with component "http" unless the logger
// has one. Accept errors repeat every second while the process is out of
// descriptors; they are let through once per 10 s with a count of the
// lines held back.
func HTTPErrorLog(l zerolog.Logger) *log.Logger {
	return log.New(&writer{log: l, now: time.Now}, "", 0)
}

type writer struct {
	log zerolog.Logger
	now func() time.Time

	mu   sync.Mutex
	last time.Time
	held int
}

func (w *writer) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(strings.TrimPrefix(string(p), "http: "))
	ev := w.log.Warn()
	if strings.HasPrefix(msg, "Accept error") {
		w.mu.Lock()
		now := w.now()
		if !w.last.IsZero() && now.Sub(w.last) < repeatEvery {
			w.held++
			w.mu.Unlock()
			return len(p), nil
		}
		w.last = now
		ev = ev.Int("repeated", w.held)
		w.held = 0
		w.mu.Unlock()
	}
	ev.Str("source", "net/http").Msg(msg)
	return len(p), nil
}
