package server

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/lading-registry/lading/internal/httpx"
)

func TestCORS(t *testing.T) {
	reached := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++; w.WriteHeader(http.StatusUnauthorized) })
	do := func(h http.Handler, method, origin string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/v2/team/app/tags/list", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	named := CORS([]string{"https://ui.example.com"}, next)

	// A page of a named origin: echoed, with its saved login, and the
	// headers a client reads exposed.
	rec := do(named, http.MethodGet, "https://ui.example.com", nil)
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://ui.example.com" || rec.Header().Get("Access-Control-Allow-Credentials") != "true" ||
		rec.Header().Get("Vary") != "Origin" || rec.Header().Get("Access-Control-Expose-Headers") != corsExposed || reached != 1 {
		t.Errorf("a named origin's GET: %v (reached %d)", rec.Header(), reached)
	}
	// Its preflight is answered here, before authentication.
	rec = do(named, http.MethodOptions, "https://ui.example.com", map[string]string{
		"Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "authorization, accept"})
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Methods") == "" ||
		rec.Header().Get("Access-Control-Allow-Headers") != "authorization, accept" || reached != 1 {
		t.Errorf("a named origin's preflight: %d %v (reached %d)", rec.Code, rec.Header(), reached)
	}
	// Another origin, or none, gets nothing of it; its preflight goes on
	// to the API, which refuses OPTIONS.
	for _, origin := range []string{"https://evil.example.com", ""} {
		rec = do(named, http.MethodOptions, origin, map[string]string{"Access-Control-Request-Method": "GET"})
		if rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Code == http.StatusNoContent {
			t.Errorf("origin %q: %d %v", origin, rec.Code, rec.Header())
		}
	}
	// Every origin, without credentials.
	rec = do(CORS([]string{"*"}, next), http.MethodGet, "https://anywhere.example", nil)
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("*: %v", rec.Header())
	}
	// None configured: the handler itself.
	if h := CORS(nil, next); do(h, http.MethodGet, "https://ui.example.com", nil).Header().Get("Access-Control-Allow-Origin") != "" {
		t.Error("headers with no origin configured")
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := httpx.ParseOrigins(" https://ui.example.com/, http://localhost:8080,* ")
	if err != nil || len(got) != 3 || got[0] != "https://ui.example.com" || got[1] != "http://localhost:8080" || got[2] != "*" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"ui.example.com", "ftp://x", "https://", "https://a/b", "https://u@h"} {
		if _, err := httpx.ParseOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Whatever the request's Origin, the answer says it varies by Origin: a
// blob is cacheable for a year, and a shared cache that stored the answer
// to a request without Origin (no Access-Control headers) would otherwise
// hand it to the web interface's browser, which refuses it.
func TestCORSVariesByOriginAlways(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, origins := range [][]string{{"https://ui.example.com"}, {"*"}} {
		h := CORS(origins, next)
		for _, origin := range []string{"", "https://ui.example.com", "https://other.example.com"} {
			r := httptest.NewRequest(http.MethodGet, "/v2/team/app/blobs/sha256:"+strings.Repeat("a", 64), nil)
			if origin != "" {
				r.Header.Set("Origin", origin)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if vary := rec.Header().Values("Vary"); !slices.Contains(vary, "Origin") || len(vary) != 1 {
				t.Errorf("origins %v, Origin %q: Vary %q", origins, origin, vary)
			}
		}
	}
}

// Every header of the API that a client reads, beyond the ones browsers
// always show a page, is exposed to a page of another origin.
func TestCORSExposesWhatClientsRead(t *testing.T) {
	exposed := map[string]bool{}
	for _, h := range strings.Split(corsExposed, ",") {
		exposed[http.CanonicalHeaderKey(strings.TrimSpace(h))] = true
	}
	for _, h := range []string{"Docker-Content-Digest", "Docker-Distribution-API-Version", "Docker-Upload-UUID", "Link", "Location",
		"Range", "Content-Range", "ETag", "OCI-Subject", "OCI-Filters-Applied", "OCI-Tag", "WWW-Authenticate", "Retry-After"} {
		if !exposed[http.CanonicalHeaderKey(h)] {
			t.Errorf("%s is not exposed", h)
		}
	}
}
