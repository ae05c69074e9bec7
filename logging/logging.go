// Package logging builds Lading's slog logger and the access log written
// once per HTTP request.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

var levels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// New returns a logger writing records at level and above to w; level is
// debug, info, warn or error, format is text or json. Attributes whose key
// names a credential are redacted whatever their value, as a last line of
// defence behind code that should never log them.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	return newLogger(w, level, format, redact)
}

// NewAccess is New for the access log, whose attributes AccessLog fixes
// and none of which is a credential: without the redaction pass, which
// slog runs on every attribute of every line, a line costs a quarter less.
// AccessLog writes its lines through it without slog's machinery where it
// can (accessHandler).
func NewAccess(w io.Writer, level, format string) (*slog.Logger, error) {
	if _, ok := w.(*Buffered); !ok {
		w = &lockedWriter{w: w} // the fast path writes beside slog's handler
	}
	h, err := newHandler(w, level, format, nil)
	if err != nil {
		return nil, err
	}
	return slog.New(&accessHandler{Handler: h, out: w, json: format == "json"}), nil
}

func newLogger(w io.Writer, level, format string, replace func([]string, slog.Attr) slog.Attr) (*slog.Logger, error) {
	h, err := newHandler(w, level, format, replace)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

func newHandler(w io.Writer, level, format string, replace func([]string, slog.Attr) slog.Attr) (slog.Handler, error) {
	lvl, ok := levels[level]
	if !ok {
		return nil, fmt.Errorf("log level %q must be one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: replace}
	switch format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("log format %q must be text or json", format)
}

// lockedWriter serialises writes to a writer that may not be safe for
// concurrent ones.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sensitiveKeys are attribute keys whose values are credentials.
var sensitiveKeys = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"cookie":              true,
	"set-cookie":          true,
	"password":            true,
	"passwd":              true,
	"secret":              true,
	"secretkey":           true,
	"token":               true,
	"access_token":        true,
	"refresh_token":       true,
}

func redact(_ []string, a slog.Attr) slog.Attr {
	if sensitiveKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, "[redacted]")
	}
	return a
}
