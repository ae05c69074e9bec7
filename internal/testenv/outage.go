package testenv

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// S3Outage puts a proxy in front of srv, whose Endpoint it becomes: while
// the returned flag is set, every request is answered by fail instead, as
// an object store that is down or overloaded would.
func S3Outage(t testing.TB, srv *S3Server, fail http.HandlerFunc) *atomic.Bool {
	t.Helper()
	return s3Front(t, srv, func(w http.ResponseWriter, r *http.Request) bool {
		fail(w, r)
		return true
	})
}

// S3Full puts a proxy in front of srv, whose Endpoint it becomes: while the
// returned flag is set, writes are answered as MinIO answers them when its
// drives are full (507 XMinioStorageFull); reads go on.
func S3Full(t testing.TB, srv *S3Server) *atomic.Bool {
	t.Helper()
	return s3Front(t, srv, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return false
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInsufficientStorage)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>XMinioStorageFull</Code><Message>Storage backend has reached its minimum free drive threshold.</Message></Error>`))
		return true
	})
}

// s3Front proxies to srv, whose Endpoint it becomes; while the returned
// flag is set, fail answers the requests it takes (returning true).
func s3Front(t testing.TB, srv *S3Server, fail func(http.ResponseWriter, *http.Request) bool) *atomic.Bool {
	t.Helper()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	down := new(atomic.Bool)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() && fail(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	srv.Endpoint = front.URL
	return down
}

// SlowDown answers as S3 does when it throttles: 503 with SlowDown.
func SlowDown(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
}
