package logging

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// accessHandler is the access log's handler: slog's text or JSON handler,
// and beside it a writer of the access line itself that appends it byte
// for byte as that handler would. Through slog a line cost a HEAD about a
// tenth of the server's time (a Record, attribute values, and the
// handler's generic checks for every one); formatted here it costs about a
// fiftieth. Lines with a value slog would quote or escape go through slog.
type accessHandler struct {
	slog.Handler
	out  io.Writer // safe for concurrent writes
	json bool
}

// accessFields are one access line's values after time, level and msg.
type accessFields struct {
	method, route, repository, path string
	proto                           string
	status                          int
	bytesIn, bytesOut               int64
	duration                        time.Duration
	client, user, userAgent         string
	requestID                       string
	traceID                         string // with tracing; else empty and left out
}

// attrs are the fields as slog attributes, in the line's order.
func (f *accessFields) attrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("method", f.method),
		slog.String("route", f.route),
		slog.String("repository", f.repository),
		slog.String("path", f.path),
		slog.String("proto", f.proto),
		slog.Int("status", f.status),
		slog.Int64("bytes_in", f.bytesIn),
		slog.Int64("bytes_out", f.bytesOut),
		slog.Duration("duration", f.duration),
		slog.String("client", f.client),
		slog.String("user", f.user),
		slog.String("user_agent", f.userAgent),
		slog.String("request_id", f.requestID),
	}
	if f.traceID != "" {
		attrs = append(attrs, slog.String("trace_id", f.traceID))
	}
	return attrs
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// log writes the line and reports true, or reports false without writing
// when a value needs slog's quoting or escaping.
func (h *accessHandler) log(t time.Time, level slog.Level, f *accessFields) bool {
	strs := [...]string{f.method, f.route, f.repository, f.path, f.proto, f.client, f.user, f.userAgent, f.requestID}
	for _, s := range strs {
		if !plain(s) {
			return false
		}
	}
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	if h.json {
		b = h.appendJSON(b, t, level, f)
	} else {
		b = h.appendText(b, t, level, f)
	}
	h.out.Write(b) // as slog, which drops a failed write's error
	// A line with a huge user agent keeps no buffer.
	if cap(b) <= 16<<10 {
		*bp = b
		lineBufs.Put(bp)
	}
	return true
}

func (h *accessHandler) appendText(b []byte, t time.Time, level slog.Level, f *accessFields) []byte {
	b = append(b, "time="...)
	b = appendMillis(b, t)
	b = append(b, " level="...)
	b = append(b, level.String()...)
	b = append(b, " msg=request method="...)
	b = appendTextString(b, f.method)
	b = append(b, " route="...)
	b = appendTextString(b, f.route)
	b = append(b, " repository="...)
	b = appendTextString(b, f.repository)
	b = append(b, " path="...)
	b = appendTextString(b, f.path)
	b = append(b, " proto="...)
	b = appendTextString(b, f.proto)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(f.status), 10)
	b = append(b, " bytes_in="...)
	b = strconv.AppendInt(b, f.bytesIn, 10)
	b = append(b, " bytes_out="...)
	b = strconv.AppendInt(b, f.bytesOut, 10)
	b = append(b, " duration="...)
	b = append(b, f.duration.String()...)
	b = append(b, " client="...)
	b = appendTextString(b, f.client)
	b = append(b, " user="...)
	b = appendTextString(b, f.user)
	b = append(b, " user_agent="...)
	b = appendTextString(b, f.userAgent)
	b = append(b, " request_id="...)
	b = appendTextString(b, f.requestID)
	if f.traceID != "" {
		b = append(b, " trace_id="...)
		b = append(b, f.traceID...)
	}
	return append(b, '\n')
}

func (h *accessHandler) appendJSON(b []byte, t time.Time, level slog.Level, f *accessFields) []byte {
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"request","method":"`...)
	b = append(b, f.method...)
	b = append(b, `","route":"`...)
	b = append(b, f.route...)
	b = append(b, `","repository":"`...)
	b = append(b, f.repository...)
	b = append(b, `","path":"`...)
	b = append(b, f.path...)
	b = append(b, `","proto":"`...)
	b = append(b, f.proto...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(f.status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, f.bytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, f.bytesOut, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(f.duration), 10)
	b = append(b, `,"client":"`...)
	b = append(b, f.client...)
	b = append(b, `","user":"`...)
	b = append(b, f.user...)
	b = append(b, `","user_agent":"`...)
	b = append(b, f.userAgent...)
	b = append(b, `","request_id":"`...)
	b = append(b, f.requestID...)
	if f.traceID != "" {
		b = append(b, `","trace_id":"`...)
		b = append(b, f.traceID...)
	}
	return append(b, "\"}\n"...)
}

// appendTextString is a plain string as slog's text handler writes it:
// as it is, or "" when empty.
func appendTextString(b []byte, s string) []byte {
	if s == "" {
		return append(b, `""`...)
	}
	return append(b, s...)
}

// appendMillis is the text handler's time: RFC 3339 with exactly three
// digits of milliseconds. RFC3339Nano is the fast layout of time's
// formatting but drops trailing zeros, so a tenth of a millisecond is
// added to keep four digits and the fourth is cut.
func appendMillis(b []byte, t time.Time) []byte {
	n := len(b) + len("2006-01-02T15:04:05.000")
	b = t.Truncate(time.Millisecond).Add(time.Millisecond/10).AppendFormat(b, time.RFC3339Nano)
	return append(b[:n], b[n+1:]...)
}

// plain reports whether s needs no quoting in slog's text format and no
// escaping in its JSON: printable ASCII other than space, '=', '"' and
// '\\'. Every other string is left to slog, whose rules for the rest
// (control characters, Unicode spaces, invalid UTF-8) are its own.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '=' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
