package bgp

import (
	"context"
	"log/slog"
	"strings"

	"github.com/rs/zerolog"
)

// slogHandler sends GoBGP's log/slog records to a zerolog.Logger, so that
// vipd has one log stream in one format. GoBGP's attribute keys ("Topic",
// "Key", "State") are lower-cased with spaces turned into underscores to
// match ours.
type slogHandler struct {
	log    zerolog.Logger
	attrs  []slog.Attr
	prefix string // open groups, "a.b."
}

func newSlogHandler(log zerolog.Logger) *slogHandler { return &slogHandler{log: log} }

func zlevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.InfoLevel
	}
	return zerolog.DebugLevel
}

// slogLevel is the slog level that lets through what log would print.
func slogLevel(log zerolog.Logger) slog.Level {
	switch l := log.GetLevel(); {
	case l <= zerolog.DebugLevel:
		return slog.LevelDebug
	case l == zerolog.InfoLevel:
		return slog.LevelInfo
	case l == zerolog.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	lvl := zlevel(l)
	return lvl >= h.log.GetLevel() && lvl >= zerolog.GlobalLevel()
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	e := h.log.WithLevel(zlevel(r.Level))
	if e == nil {
		return nil
	}
	for _, a := range h.attrs {
		addAttr(e, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(e, h.prefix, a)
		return true
	})
	e.Msg(r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		if h.prefix != "" {
			a.Key = h.prefix + a.Key
		}
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

func fieldName(k string) string {
	return strings.ReplaceAll(strings.ToLower(k), " ", "_")
}

func addAttr(e *zerolog.Event, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if a.Key == "" && v.Kind() != slog.KindGroup {
		return
	}
	key := fieldName(prefix + a.Key)
	switch v.Kind() {
	case slog.KindGroup:
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			addAttr(e, p, g)
		}
	case slog.KindString:
		e.Str(key, v.String())
	case slog.KindInt64:
		e.Int64(key, v.Int64())
	case slog.KindUint64:
		e.Uint64(key, v.Uint64())
	case slog.KindFloat64:
		e.Float64(key, v.Float64())
	case slog.KindBool:
		e.Bool(key, v.Bool())
	case slog.KindDuration:
		e.Dur(key, v.Duration())
	case slog.KindTime:
		e.Time(key, v.Time())
	default:
		if err, ok := v.Any().(error); ok {
			e.AnErr(key, err)
			return
		}
		e.Interface(key, v.Any())
	}
}
