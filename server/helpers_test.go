package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// newHandler serves a fresh registry on the in-memory driver.
func newHandler(t testing.TB, opts Options) http.Handler {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg := registry.New(inmemory.New(), registry.Options{Logger: opts.Logger})
	return New(reg, opts)
}

type request struct {
	method string
	target string
	body   []byte
	header map[string]string
	// chunked sends the body without a Content-Length.
	chunked bool
}

func serve(t testing.TB, h http.Handler, rq request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req := httptest.NewRequest(rq.method, rq.target, body)
	if rq.chunked {
		req.ContentLength = -1
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	checkInvariants(t, rq, rec)
	return rec
}

// checkInvariants holds for every response: no 5xx, no redirect, a
// declared length, and an OCI error body on every error.
func checkInvariants(t testing.TB, rq request, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Errorf("%s %s: status %d, body %s", rq.method, rq.target, rec.Code, rec.Body)
	}
	if rec.Code == http.StatusNotModified {
		// An answer to a conditional request: no body to declare.
		if rec.Body.Len() != 0 || rec.Header().Get("ETag") == "" {
			t.Errorf("%s %s: 304 with %d bytes of body, ETag %q", rq.method, rq.target, rec.Body.Len(), rec.Header().Get("ETag"))
		}
		return
	}
	if rec.Code >= 300 && rec.Code < 400 && rec.Code != http.StatusTemporaryRedirect {
		t.Errorf("%s %s: redirected with %d to %q", rq.method, rq.target, rec.Code, rec.Header().Get("Location"))
	}
	if rec.Header().Get("Content-Length") == "" {
		t.Errorf("%s %s: no Content-Length (status %d)", rq.method, rq.target, rec.Code)
	}
	if rec.Code >= 400 && rq.method != http.MethodHead {
		if code := errorCode(t, rec); code == "" {
			t.Errorf("%s %s: status %d without an OCI error body: %q", rq.method, rq.target, rec.Code, rec.Body)
		}
	}
}

// errorCode is the code of the first OCI error in the body, or "".
func errorCode(t testing.TB, rec *httptest.ResponseRecorder) registry.Code {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) == 0 {
		return ""
	}
	return body.Errors[0].Code
}

func wantStatus(t testing.TB, rec *httptest.ResponseRecorder, status int, code registry.Code) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if code != "" {
		if got := errorCode(t, rec); got != code {
			t.Fatalf("error code %q, want %q; body %s", got, code, rec.Body)
		}
	}
}

// pushBlob uploads content monolithically and returns its digest.
func pushBlob(t testing.TB, h http.Handler, repo string, content []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(content)
	rec := serve(t, h, request{method: http.MethodPost, target: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: content})
	wantStatus(t, rec, http.StatusCreated, "")
	return d
}

// startSession opens an upload session and returns its Location.
func startSession(t testing.TB, h http.Handler, repo string) string {
	t.Helper()
	rec := serve(t, h, request{method: http.MethodPost, target: "/v2/" + repo + "/blobs/uploads/"})
	wantStatus(t, rec, http.StatusAccepted, "")
	loc := rec.Header().Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+repo+"/blobs/uploads/") {
		t.Fatalf("Location %q", loc)
	}
	return loc
}

// withQuery appends a query parameter to a Location that may have some.
func withQuery(loc, kv string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + kv
	}
	return loc + "?" + kv
}
