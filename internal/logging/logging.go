// Package logging sets up log/slog for every role: tint on a terminal, JSON
// otherwise or when asked, and the same stream for libcontainer's logrus.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Options are the logging flags every role shares.
type Options struct {
	File   string // empty: stderr
	Format string // "", "text" or "json"
	Debug  bool
}

// Setup installs the default slog logger (and points logrus, which
// libcontainer uses, at the same writer and format). The returned closer
// releases the log file, if one was opened.
func Setup(o Options) (*slog.Logger, io.Closer, error) {
	var w io.Writer = os.Stderr
	var closer io.Closer = io.NopCloser(nil)
	if o.File != "" {
		// O_APPEND, never truncate: containerd reads this file after we exit.
		f, err := os.OpenFile(o.File, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file %s: %w", o.File, err)
		}
		w, closer = f, f
	}
	level := slog.LevelInfo
	if o.Debug {
		level = slog.LevelDebug
	}
	h := NewHandler(w, o.Format, level)
	logger := slog.New(h)
	slog.SetDefault(logger)

	logrus.SetOutput(w)
	if o.Debug {
		logrus.SetLevel(logrus.DebugLevel)
	} else {
		logrus.SetLevel(logrus.InfoLevel)
	}
	if useJSON(w, o.Format) {
		logrus.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	} else {
		logrus.SetFormatter(&logrus.TextFormatter{})
	}
	return logger, closer, nil
}

// NewHandler picks the handler for a writer: JSON when asked or when w is not
// a terminal, tint otherwise.
func NewHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	if useJSON(w, format) {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: lowerLevel})
	}
	if format == "text" && !isTerminal(w) {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: lowerLevel})
	}
	return tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly})
}

func useJSON(w io.Writer, format string) bool {
	switch format {
	case "json":
		return true
	case "text":
		return false
	}
	return !isTerminal(w)
}

// lowerLevel writes levels as "error", "warning"... : containerd keeps the
// last line whose level is exactly "error".
func lowerLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok {
			s := strings.ToLower(l.String())
			if s == "warn" {
				s = "warning"
			}
			a.Value = slog.StringValue(s)
		}
	}
	return a
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
