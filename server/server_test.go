package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lading-registry/lading/auth"
	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/registry"
)

// TestRouteSeenByMiddleware checks the seams later layers build on: the
// Route in the context of Options.Middleware, and the labels an access log
// wrapped around the server receives.
func TestRouteSeenByMiddleware(t *testing.T) {
	var seen []Route
	h := newHandler(t, Options{Middleware: []Middleware{func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rt, ok := RouteOf(r.Context())
			if !ok {
				t.Error("no route in the middleware's context")
			}
			seen = append(seen, rt)
			next.ServeHTTP(w, r)
		})
	}}})
	var logs bytes.Buffer
	h = logging.AccessLog(slog.New(slog.NewTextHandler(&logs, nil)), h, RouteLabels)

	serve(t, h, request{method: "POST", target: "/v2/a/b/blobs/uploads/?mount=sha256:" + strings.Repeat("0", 64) + "&from=c/d"})
	serve(t, h, request{method: "GET", target: "/v2/a//b/tags/list"})
	want := Route{Name: RouteUploadStart, Repository: "a/b", Action: ActionPush, MountFrom: "c/d"}
	if len(seen) != 1 || seen[0] != want {
		t.Fatalf("middleware saw %+v, want only %+v", seen, want)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "route=blob-upload-start repository=a/b") || !strings.Contains(lines[1], `route="" repository=""`) {
		t.Fatalf("access log:\n%s", &logs)
	}
}

func TestPanicIsAnswered(t *testing.T) {
	h := newHandler(t, Options{Middleware: []Middleware{func(http.Handler) http.Handler {
		return http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bug") })
	}}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/a/tags/list", nil))
	if rec.Code != 500 || errorCode(t, rec) != registry.CodeUnknown || strings.Contains(rec.Body.String(), "bug") {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
}

// A panic after the status went out, before any body byte, cannot be
// answered: the connection is cut rather than an error body sent as the
// start of a 200's body.
func TestPanicAfterStatusCutsTheConnection(t *testing.T) {
	h := newHandler(t, Options{Middleware: []Middleware{func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			panic("bug")
		})
	}}})
	rec := httptest.NewRecorder()
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
		if rec.Body.Len() != 0 {
			t.Fatalf("body %q after the status, want none", rec.Body)
		}
	}()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/a/tags/list", nil))
	t.Fatal("the panic was answered")
}

// TestMiddlewareRefusal shows how an auth middleware answers through the
// server's error function: status, challenge and OCI body from *auth.Error.
func TestMiddlewareRefusal(t *testing.T) {
	h := newHandler(t, Options{Middleware: []Middleware{func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rt, _ := RouteOf(r.Context()); rt.Action == ActionPush {
				WriteError(w, r, &auth.Error{Status: 401, Code: auth.CodeUnauthorized, Challenge: `Basic realm="lading"`, Reason: auth.ErrNoCredentials})
				return
			}
			next.ServeHTTP(w, r)
		})
	}}})
	rec := serve(t, h, request{method: "POST", target: "/v2/a/blobs/uploads/"})
	wantStatus(t, rec, 401, registry.CodeUnauthorized)
	if rec.Header().Get("WWW-Authenticate") != `Basic realm="lading"` {
		t.Fatalf("challenge %q", rec.Header().Get("WWW-Authenticate"))
	}
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/a/tags/list"}), 404, registry.CodeNameUnknown)
}
