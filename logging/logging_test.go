package logging

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lading-registry/lading/internal/httpx"
)

func TestNewRejectsBadSettings(t *testing.T) {
	if _, err := New(io.Discard, "verbose", "text"); err == nil || !strings.Contains(err.Error(), "debug, info, warn, error") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := New(io.Discard, "info", "xml"); err == nil || !strings.Contains(err.Error(), "text or json") {
		t.Errorf("bad format: %v", err)
	}
	if _, err := NewAccess(io.Discard, "info", "xml"); err == nil {
		t.Error("bad format accepted for the access log")
	}
}

func TestLevelAndRedaction(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("dropped")
	log.Warn("kept", "password", "hunter2", slog.Group("req", "Authorization", "Bearer abc.def"))
	out := buf.String()
	if strings.Contains(out, "dropped") || !strings.Contains(out, "kept") {
		t.Errorf("level warn: %s", out)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "abc.def") {
		t.Errorf("credential logged: %s", out)
	}
}

type accessLine struct {
	Level      string `json:"level"`
	Msg        string `json:"msg"`
	Method     string `json:"method"`
	Route      string `json:"route"`
	Repository string `json:"repository"`
	Path       string `json:"path"`
	Proto      string `json:"proto"`
	Status     int    `json:"status"`
	BytesIn    int64  `json:"bytes_in"`
	BytesOut   int64  `json:"bytes_out"`
	Duration   int64  `json:"duration"`
	Client     string `json:"client"`
	RequestID  string `json:"request_id"`
}

// serve runs one request through AccessLog (with a labelling middleware
// inside, where a router would be) and returns the response and the line.
func serve(t *testing.T, req *http.Request, handler http.HandlerFunc) (*httptest.ResponseRecorder, accessLine, string) {
	t.Helper()
	var buf bytes.Buffer
	log, err := NewAccess(&buf, "info", "json") // as lading serve does
	if err != nil {
		t.Fatal(err)
	}
	routed := httpx.Label(func(r *http.Request) (string, string) {
		if strings.HasPrefix(r.URL.Path, "/v2/library/alpine/") {
			return "blob-upload", "library/alpine"
		}
		return "", ""
	})(handler)
	resp := httptest.NewRecorder()
	AccessLog(log, routed, nil).ServeHTTP(resp, req)
	var line accessLine
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	return resp, line, buf.String()
}

func TestAccessLine(t *testing.T) {
	const (
		password = "correct-horse-battery"
		token    = "eyJhbGciOiJSUzI1NiJ9.secret-claims.sig"
	)
	req := httptest.NewRequest(http.MethodPatch,
		"/v2/library/alpine/blobs/uploads/abc?_state=signed-"+token+"&token="+token,
		strings.NewReader("0123456789"))
	req.SetBasicAuth("alice", password)
	req.Header.Set("Cookie", "session="+token)
	req.RemoteAddr = "203.0.113.9:51234"

	var idInHandler string
	resp, line, raw := serve(t, req, func(w http.ResponseWriter, r *http.Request) {
		idInHandler = RequestID(r.Context())
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "accepted")
	})

	want := accessLine{
		Level: "INFO", Msg: "request", Method: "PATCH", Route: "blob-upload", Repository: "library/alpine",
		Path: "/v2/library/alpine/blobs/uploads/abc", Proto: "HTTP/1.1", Status: 202, BytesIn: 10, BytesOut: 8,
		Client: "203.0.113.9", RequestID: resp.Header().Get(RequestIDHeader),
	}
	got := line
	got.Duration = 0
	if got != want {
		t.Errorf("line\n%+v\nwant\n%+v", got, want)
	}
	if line.Duration <= 0 {
		t.Errorf("duration %d", line.Duration)
	}
	if line.RequestID == "" || idInHandler != line.RequestID {
		t.Errorf("request id: header %q, handler saw %q", line.RequestID, idInHandler)
	}
	for _, secret := range []string{password, token, "secret-claims", "_state", "Basic "} {
		if strings.Contains(raw, secret) {
			t.Errorf("access line shows %q: %s", secret, raw)
		}
	}
}

func TestRequestID(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	req.Header.Set(RequestIDHeader, "trace-0af7651916cd43dd")
	resp, line, _ := serve(t, req, func(http.ResponseWriter, *http.Request) {})
	if line.RequestID != "trace-0af7651916cd43dd" || resp.Header().Get(RequestIDHeader) != line.RequestID {
		t.Errorf("client id not kept: line %q, header %q", line.RequestID, resp.Header().Get(RequestIDHeader))
	}

	req.Header.Set(RequestIDHeader, "forged\n level=ERROR msg=oops")
	_, line, raw := serve(t, req, func(http.ResponseWriter, *http.Request) {})
	if strings.Contains(raw, "forged") || line.RequestID == "" {
		t.Errorf("unsafe client id kept: %s", raw)
	}

	a, _, _ := serve(t, httptest.NewRequest(http.MethodGet, "/v2/", nil), func(http.ResponseWriter, *http.Request) {})
	b, _, _ := serve(t, httptest.NewRequest(http.MethodGet, "/v2/", nil), func(http.ResponseWriter, *http.Request) {})
	if a.Header().Get(RequestIDHeader) == b.Header().Get(RequestIDHeader) {
		t.Error("two requests got one id")
	}
	// Made ids are token-safe and, within a process, never repeat: more
	// than 32 of them carry into a second counter digit.
	seen := map[string]bool{}
	for range 100 {
		id := newRequestID()
		if len(id) != 26 || strings.Trim(id, base32Alphabet) != "" || requestID(id) != id || seen[id] {
			t.Fatalf("request id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

func TestServerErrorsLogAtErrorAndUnroutedRequests(t *testing.T) {
	_, line, _ := serve(t, httptest.NewRequest(http.MethodGet, "/nowhere", nil), func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	if line.Level != "ERROR" || line.Status != 503 || line.Route != "" {
		t.Errorf("line %+v", line)
	}
}

// A request cut off by a panic after its status went out (net/http's
// ErrAbortHandler, a download broken midway) has its line, at error level.
func TestAbortedRequestLogged(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewAccess(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	h := AccessLog(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("partial"))
		panic(http.ErrAbortHandler)
	}), nil)
	func() {
		defer func() {
			if recover() != http.ErrAbortHandler {
				t.Error("the panic did not go on")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v2/a/blobs/sha256:aa", nil))
	}()
	var line accessLine
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line.Level != "ERROR" || line.Status != 200 || line.BytesOut != 7 {
		t.Fatalf("line %+v (%v) from %q", line, err, buf.String())
	}
}
