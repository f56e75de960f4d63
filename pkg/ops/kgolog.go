package ops

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KgoLogger adapts slog to franz-go's logger. It logs franz-go's warnings
// (rebalances, fenced producers, connection trouble) and errors; when l has
// debug enabled (LOG_LEVEL=debug) it also logs franz-go's info lines: every
// join, assignment, offset fetch and transaction end.
func KgoLogger(l *slog.Logger) kgo.Logger {
	level := kgo.LogLevelWarn
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = kgo.LogLevelInfo
	}
	return kgoLogger{l, level}
}

type kgoLogger struct {
	l     *slog.Logger
	level kgo.LogLevel
}

func (k kgoLogger) Level() kgo.LogLevel { return k.level }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var lv slog.Level
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	default:
		lv = slog.LevelDebug
	}
	k.l.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
