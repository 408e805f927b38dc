package bgp

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Str("component", "bgp").Logger()
}

func TestSlogToZerolog(t *testing.T) {
	var buf bytes.Buffer
	zl := zerolog.New(&buf).Level(zerolog.InfoLevel).With().Str("component", "bgp").Logger()
	l := slog.New(newSlogHandler(zl))

	l.Debug("too chatty", slog.String("Topic", "Peer"))
	l.Info("Peer Up", slog.String("Topic", "Peer"), slog.String("Key", "10.0.0.254"), slog.Int("State", 6))
	l.With(slog.String("Topic", "bfd")).WithGroup("Peer").Warn("Expired", slog.String("Remote Addr", "10.0.0.254"))
	l.Error("dial", slog.Any("Error", errors.New("connection refused")), slog.Group("Timers", slog.Int("Hold", 9)))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (debug filtered by the zerolog level):\n%s", len(lines), buf.String())
	}
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		got = append(got, m)
	}
	want := []map[string]any{
		{"level": "info", "component": "bgp", "message": "Peer Up", "topic": "Peer", "key": "10.0.0.254", "state": float64(6)},
		{"level": "warn", "component": "bgp", "message": "Expired", "topic": "bfd", "peer.remote_addr": "10.0.0.254"},
		{"level": "error", "component": "bgp", "message": "dial", "error": "connection refused", "timers.hold": float64(9)},
	}
	for i := range want {
		for k, v := range want[i] {
			if got[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v\n%s", i, k, got[i][k], v, lines[i])
			}
		}
	}
	if slogLevel(zl) != slog.LevelInfo || slogLevel(zl.Level(zerolog.DebugLevel)) != slog.LevelDebug || slogLevel(zl.Level(zerolog.ErrorLevel)) != slog.LevelError {
		t.Error("slogLevel does not follow the zerolog level")
	}
}
