package logging

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAccessLineAsSlogWritesIt checks the access line's own formatting
// against slog's handlers, byte for byte, in both formats, and that values
// slog would quote or escape are left to slog.
func TestAccessLineAsSlogWritesIt(t *testing.T) {
	base := accessFields{
		method: "HEAD", route: "blob", repository: "library/alpine",
		path: "/v2/library/alpine/blobs/sha256:0123abcd", proto: "HTTP/1.1", status: 200,
		bytesIn: 0, bytesOut: 4096, duration: 1234567 * time.Nanosecond,
		client: "127.0.0.1", user: "alice", userAgent: "containerd/2.0.0+unknown", requestID: "5QU5MRWVSPFQAMDSJ234OR6KOS",
	}
	edits := map[string]func(*accessFields){
		"as it is":          func(*accessFields) {},
		"empty strings":     func(f *accessFields) { f.route, f.repository, f.userAgent = "", "", "" },
		"a server error":    func(f *accessFields) { f.status = 503 },
		"zero duration":     func(f *accessFields) { f.duration = 0 },
		"long duration":     func(f *accessFields) { f.duration = 93*time.Minute + 7*time.Second },
		"escaped path":      func(f *accessFields) { f.path = "/v2/a/tags/list?n=1%20x" },
		"IPv6 client":       func(f *accessFields) { f.client = "::1" },
		"anonymous":         func(f *accessFields) { f.user = "" },
		"spaced user":       func(f *accessFields) { f.user = "Alice Smith" },
		"HTTP/2":            func(f *accessFields) { f.proto = "HTTP/2.0" },
		"no protocol":       func(f *accessFields) { f.proto = "" },
		"spaced user agent": func(f *accessFields) { f.userAgent = "docker/27.0 go/go1.22 (linux)" },
		"quote":             func(f *accessFields) { f.userAgent = `a"b` },
		"backslash":         func(f *accessFields) { f.userAgent = `a\b` },
		"equals":            func(f *accessFields) { f.userAgent = "a=b" },
		"control character": func(f *accessFields) { f.userAgent = "a\x01b" },
		"HTML characters":   func(f *accessFields) { f.userAgent = "<a&b>" },
		"non-ASCII":         func(f *accessFields) { f.userAgent = "crané" },
		"invalid UTF-8":     func(f *accessFields) { f.userAgent = "a\xffb" },
		"delete character":  func(f *accessFields) { f.userAgent = "a\x7fb" },
		"unicode space":     func(f *accessFields) { f.userAgent = "a\u00a0b" },
		"large byte counts": func(f *accessFields) { f.bytesIn, f.bytesOut = 1<<40, -1 },
		"traced":            func(f *accessFields) { f.traceID = "4bf92f3577b34da6a3ce929d0e0e4736" },
	}
	times := []time.Time{
		time.Date(2026, 11, 28, 10, 34, 36, 234567891, time.UTC),
		time.Date(2026, 11, 28, 10, 34, 36, 0, time.UTC),
		time.Date(2026, 11, 28, 10, 34, 36, 200000000, time.FixedZone("", 2*3600)),
		time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.FixedZone("", -5*3600-1800)),
	}
	for _, format := range []string{"text", "json"} {
		for name, edit := range edits {
			f := base
			edit(&f)
			for _, at := range times {
				level := slog.LevelInfo
				if f.status >= 500 {
					level = slog.LevelError
				}
				var want bytes.Buffer
				h, err := newHandler(&want, "info", format, nil)
				if err != nil {
					t.Fatal(err)
				}
				rec := slog.NewRecord(at, level, "request", 0)
				rec.AddAttrs(f.attrs()...)
				if err := h.Handle(context.Background(), rec); err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				fast := &accessHandler{Handler: h, out: &got, json: format == "json"}
				wrote := fast.log(at, level, &f)
				if !wrote {
					if got.Len() > 0 {
						t.Errorf("%s, %s: refused the line but wrote %q", format, name, got.String())
					}
					if plainFields(&f) {
						t.Errorf("%s, %s: plain values left to slog", format, name)
					}
					continue
				}
				if got.String() != want.String() {
					t.Errorf("%s, %s at %v:\n got %q\nwant %q", format, name, at, got.String(), want.String())
				}
			}
		}
	}
}

func plainFields(f *accessFields) bool {
	for _, s := range []string{f.method, f.route, f.repository, f.path, f.proto, f.client, f.user, f.userAgent, f.requestID} {
		if !plain(s) {
			return false
		}
	}
	return true
}

// BenchmarkAccessLine compares a line written through slog with the
// access handler's own.
func BenchmarkAccessLine(b *testing.B) {
	f := accessFields{
		method: "HEAD", route: "blob", repository: "library/alpine",
		path: "/v2/library/alpine/blobs/sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", proto: "HTTP/1.1", status: 200,
		bytesOut: 4096, duration: 123456 * time.Nanosecond,
		client: "127.0.0.1", userAgent: "Go-http-client/1.1", requestID: "5QU5MRWVSPFQAMDSJ234OR6KOS",
	}
	for _, format := range []string{"text", "json"} {
		h, _ := newHandler(discard{}, "info", format, nil)
		log := slog.New(h)
		b.Run(format+"/slog", func(b *testing.B) {
			for b.Loop() {
				log.LogAttrs(context.Background(), slog.LevelInfo, "request", f.attrs()...)
			}
		})
		fast := &accessHandler{Handler: h, out: discard{}, json: format == "json"}
		b.Run(format+"/own", func(b *testing.B) {
			for b.Loop() {
				fast.log(time.Now(), slog.LevelInfo, &f)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// At level warn the access log keeps failures only, in both formats.
func TestAccessLogLevel(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, err := NewAccess(&buf, "warn", format)
		if err != nil {
			t.Fatal(err)
		}
		for _, status := range []int{200, 404, 503} {
			h := AccessLog(log, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }), nil)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v2/", nil))
		}
		if lines := strings.Count(buf.String(), "\n"); lines != 1 || !strings.Contains(buf.String(), "503") || !strings.Contains(buf.String(), "ERROR") {
			t.Errorf("%s at level warn: %q", format, buf.String())
		}
	}
}
