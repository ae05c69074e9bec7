package logging

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"time"

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
// method, route, repository, path, status, bytes in and out, duration,
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

		next.ServeHTTP(w, r)

		labels.Resolve(r, info)
		level := slog.LevelInfo
		if rec.Status() >= 500 {
			level = slog.LevelError
		}
		f := accessFields{
			method: r.Method, route: labels.Route, repository: labels.Repository,
			path: r.URL.EscapedPath(), status: rec.Status(),
			bytesIn: body.BytesRead(), bytesOut: rec.Written(), duration: time.Since(start),
			client: clientHost(r.RemoteAddr), userAgent: r.UserAgent(), requestID: id,
		}
		if h, ok := logger.Handler().(*accessHandler); ok {
			if !h.Enabled(r.Context(), level) || h.log(time.Now(), level, &f) {
				return
			}
		}
		logger.LogAttrs(r.Context(), level, "request", f.attrs()...)
	})
}

// requestID keeps a client's id only when it is short and made of token
// characters, so it cannot forge log lines or bloat them.
func requestID(given string) string {
	if len(given) == 0 || len(given) > 128 {
		return rand.Text()
	}
	for _, c := range given {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return rand.Text()
		}
	}
	return given
}

func clientHost(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}
