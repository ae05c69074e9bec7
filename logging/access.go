package logging

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/lading-registry/lading/internal/httpx"
)

// RequestIDHeader carries the request id to and from clients and proxies.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestID returns the id AccessLog gave the request, "" outside it. Put
// it in error logs so they can be matched with the access line.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// AccessLog writes one line per request to logger once next has answered:
// method, route, repository, path, protocol, status, bytes in and out, duration,
// client address, user agent and request id. 5xx answers are logged at
// error level, everything else at info, so level warn keeps only failures.
//
// The route and repository come from Labels filled inside the router (see
// httpx.Label); when nothing filled them, from info(r) if info is not nil.
// The request id is the client's X-Request-Id when it is a sane token,
// otherwise a new one, and is echoed in the response.
//
// Headers are never logged, and the path is logged without its query,
// which is where tokens and upload state travel.
func AccessLog(logger *slog.Logger, next http.Handler, info func(*http.Request) (route, repo string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r.Header.Get(RequestIDHeader))
		w.Header().Set(RequestIDHeader, id)
		labels, ctx := httpx.ContextLabels(r.Context())
		r = r.WithContext(context.WithValue(ctx, requestIDKey{}, id))
		rec, w := httpx.Record(w)
		body := httpx.CountBody(r)
		// Deferred, and at error level: a request cut off by a panic after
		// its status went out (a download broken midway) has its line too.
		finished := false
		defer func() {
			labels.Resolve(r, info)
			level := slog.LevelInfo
			if rec.Status() >= 500 || !finished {
				level = slog.LevelError
			}
			f := accessFields{
				method: r.Method, route: labels.Route, repository: labels.Repository,
				path: r.URL.EscapedPath(), proto: r.Proto, status: rec.Status(),
				bytesIn: body.BytesRead(), bytesOut: rec.Written(), duration: time.Since(start),
				client: clientHost(r.RemoteAddr), user: labels.User, userAgent: r.UserAgent(), requestID: id,
			}
			if sc := trace.SpanContextFromContext(r.Context()); sc.IsSampled() {
				f.traceID = sc.TraceID().String()
			}
			if h, ok := logger.Handler().(*accessHandler); ok {
				if !h.Enabled(r.Context(), level) || h.log(time.Now(), level, &f) {
					return
				}
			}
			logger.LogAttrs(r.Context(), level, "request", f.attrs()...)
		}()
		next.ServeHTTP(w, r)
		finished = true
	})
}

// requestID keeps a client's id only when it is short and made of token
// characters, so it cannot forge log lines or bloat them.
func requestID(given string) string {
	if len(given) == 0 || len(given) > 128 {
		return newRequestID()
	}
	for _, c := range given {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return newRequestID()
		}
	}
	return given
}

// Request ids are a random prefix drawn once per process and a counter,
// in rand.Text's alphabet and length: unique across replicas and restarts
// (65 random bits each), at a fraction of a fresh crypto/rand draw per
// request, which cost a HEAD about 1% of the server's time. Ids need not
// be unguessable: they only match log lines.
var (
	requestIDPrefix = rand.Text()[:13]
	requestIDCount  atomic.Uint64
)

const base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

func newRequestID() string {
	var b [26]byte
	copy(b[:], requestIDPrefix)
	// 13 digits of 5 bits hold the counter's 64 bits.
	n := requestIDCount.Add(1)
	for i := len(b) - 1; i >= 13; i-- {
		b[i] = base32Alphabet[n&31]
		n >>= 5
	}
	return string(b[:])
}

func clientHost(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}
