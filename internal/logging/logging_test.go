package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

func TestHTTPErrorLog(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	w := &writer{log: zerolog.New(&buf).With().Str("component", "control").Logger(), now: func() time.Time { return now }}
	l := HTTPErrorLog(zerolog.Nop())
	l.SetOutput(w)
	l.Printf("http: TLS handshake error from 10.0.0.1:5555: EOF")
	for range 5 {
		l.Printf("http: Accept error: accept unix /run/vipd/vipd.sock: accept4: too many open files; retrying in 1s")
		now = now.Add(time.Second)
	}
	now = now.Add(10 * time.Second)
	l.Printf("http: Accept error: accept unix /run/vipd/vipd.sock: accept4: too many open files; retrying in 1s")

	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", line, err)
		}
		got = append(got, m)
	}
	accept := "Accept error: accept unix /run/vipd/vipd.sock: accept4: too many open files; retrying in 1s"
	want := []map[string]any{
		{"level": "warn", "component": "control", "source": "net/http", "message": "TLS handshake error from 10.0.0.1:5555: EOF"},
		{"level": "warn", "component": "control", "source": "net/http", "repeated": float64(0), "message": accept},
		{"level": "warn", "component": "control", "source": "net/http", "repeated": float64(4), "message": accept},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}
