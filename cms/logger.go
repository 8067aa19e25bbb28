package cms

import (
	"context"
	"log/slog"
)

// LeveledLogger is the logging both SDK lines' loggers (cosmossdk.io/log
// and cosmossdk.io/log/v2) offer.
type LeveledLogger interface {
	Debug(msg string, keyVals ...any)
	Info(msg string, keyVals ...any)
	Warn(msg string, keyVals ...any)
	Error(msg string, keyVals ...any)
}

// NewSlog adapts an SDK logger to the engine's slog logger, so the
// engine's messages land in the node's log with its format and level.
func NewSlog(l LeveledLogger) *slog.Logger {
	return slog.New(&sdkHandler{logger: l})
}

type sdkHandler struct {
	logger LeveledLogger
	attrs  []any
}

func (h *sdkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *sdkHandler) Handle(_ context.Context, r slog.Record) error {
	kv := append([]any{}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		kv = append(kv, a.Key, a.Value.Any())
		return true
	})
	switch {
	case r.Level >= slog.LevelError:
		h.logger.Error(r.Message, kv...)
	case r.Level >= slog.LevelWarn:
		h.logger.Warn(r.Message, kv...)
	case r.Level >= slog.LevelInfo:
		h.logger.Info(r.Message, kv...)
	default:
		h.logger.Debug(r.Message, kv...)
	}
	return nil
}

func (h *sdkHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	next := &sdkHandler{logger: h.logger, attrs: append([]any{}, h.attrs...)}
	for _, a := range attrs {
		next.attrs = append(next.attrs, a.Key, a.Value.Any())
	}
	return next
}

func (h *sdkHandler) WithGroup(string) slog.Handler { return h }
