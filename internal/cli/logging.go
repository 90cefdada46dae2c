package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// LogLevel is a slog level spelt debug, info, warn or error.
type LogLevel struct{ slog.Level }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LogLevel) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "debug":
		l.Level = slog.LevelDebug
	case "info", "":
		l.Level = slog.LevelInfo
	case "warn", "warning":
		l.Level = slog.LevelWarn
	case "error":
		l.Level = slog.LevelError
	default:
		return fmt.Errorf("expected debug, info, warn or error, got %q", string(b))
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (l LogLevel) MarshalText() ([]byte, error) {
	return []byte(strings.ToLower(l.Level.String())), nil
}

// TypeHint is used in error messages.
func (LogLevel) TypeHint() string { return "debug, info, warn or error" }

// LogFormat is text or json.
type LogFormat string

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *LogFormat) UnmarshalText(b []byte) error {
	switch s := strings.ToLower(strings.TrimSpace(string(b))); s {
	case "text", "json":
		*f = LogFormat(s)
	default:
		return fmt.Errorf("expected text or json, got %q", string(b))
	}
	return nil
}

// TypeHint is used in error messages.
func (LogFormat) TypeHint() string { return "text or json" }

// Logging holds the logging keys every binary has. Embed it in a binary's
// config with `yaml:",inline"`.
type Logging struct {
	LogLevel  LogLevel  `yaml:"log_level" flag:"log-level" usage:"log level: debug, info, warn or error"`
	LogFormat LogFormat `yaml:"log_format" flag:"log-format" usage:"log format on stderr: text or json"`
}

// DefaultLogging is info level, text format.
func DefaultLogging() Logging { return Logging{LogLevel: LogLevel{slog.LevelInfo}, LogFormat: "text"} }

func (l *Logging) logging() *Logging { return l }

// Daemon holds the keys of every long-running command. Embed it with
// `yaml:",inline"`.
type Daemon struct {
	// Every command logs: the log keys' flags are global (cmd:"*").
	Logging         `yaml:",inline" cmd:"*"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" flag:"shutdown-timeout" usage:"how long a graceful stop may drain before giving up"`
}

// DefaultDaemon is DefaultLogging with a 10 s shutdown timeout.
func DefaultDaemon() Daemon {
	return Daemon{Logging: DefaultLogging(), ShutdownTimeout: 10 * time.Second}
}

func (d *Daemon) daemon() *Daemon { return d }

// newLogger builds the stderr logger; the level can change on reload.
func newLogger(w io.Writer, format LogFormat, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
