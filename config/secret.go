package config

import "log/slog"

// Secret is a string that never prints: fmt, slog, JSON and Config.String
// all show "[redacted]" (or "" when unset), so a configuration can be logged
// whole. Reveal is the one way to read it, which makes every use visible.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret itself, for handing to a client library.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString covers %#v, which does not use String.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps the secret out of JSON and other text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
