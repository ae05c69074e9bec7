package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// TestUploadSlots holds the only upload slot with a stalled chunk and
// checks that further uploads are turned away with 429 and a Retry-After,
// that status requests are not, and that the slot comes back.
func TestUploadSlots(t *testing.T) {
	// reading tells when the held chunk's body is being read, by which
	// time its request has its slot.
	reading := make(chan struct{})
	var first string
	h := newHandler(t, Options{MaxUploads: 1, Middleware: []Middleware{func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch && r.URL.Path == first {
				r.Body = &firstRead{ReadCloser: r.Body, reading: reading}
			}
			next.ServeHTTP(w, r)
		})
	}}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	first = startSession(t, h, "a")
	second := startSession(t, h, "a")

	pr, pw := io.Pipe()
	held := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, srv.URL+first, pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(held)
			return
		}
		held <- resp
	}()
	if _, err := pw.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	<-reading

	resp := do(t, http.MethodPatch, srv.URL+second, "xyz")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || resp.code != registry.CodeTooManyRequests {
		t.Fatalf("second upload: %d, Retry-After %q, code %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.code)
	}
	digest := "sha256:" + strings.Repeat("0", 64)
	if resp := do(t, http.MethodPost, srv.URL+"/v2/a/blobs/uploads/?digest="+digest, "xyz"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("monolithic upload: %d", resp.StatusCode)
	}
	if resp := do(t, http.MethodGet, srv.URL+second, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status request: %d", resp.StatusCode)
	}
	if resp := do(t, http.MethodPost, srv.URL+"/v2/a/blobs/uploads/", ""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("opening a session: %d", resp.StatusCode)
	}

	pw.Close()
	if r := <-held; r == nil || r.StatusCode != http.StatusAccepted {
		t.Fatalf("held upload: %v", r)
	}
	if resp := do(t, http.MethodPatch, srv.URL+second, "xyz"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload after the slot came back: %d", resp.StatusCode)
	}
}

type firstRead struct {
	io.ReadCloser
	reading chan struct{}
	once    sync.Once
}

func (b *firstRead) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.reading) })
	return b.ReadCloser.Read(p)
}

type response struct {
	*http.Response
	code registry.Code
}

func do(t *testing.T, method, url, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rec := httptest.NewRecorder()
	rec.Code = resp.StatusCode
	io.Copy(rec.Body, resp.Body)
	return response{resp, errorCode(t, rec)}
}

// TestStalledBodyTimesOut sends part of a declared chunk and stalls: the
// server gives up with 408 after the idle timeout, and the session keeps
// the bytes that did arrive.
func TestStalledBodyTimesOut(t *testing.T) {
	h := newHandler(t, Options{BodyIdleTimeout: 300 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()
	loc := startSession(t, h, "a")

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	began := time.Now()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", loc)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	// The answer says what happened, not the server's address.
	if host, _, _ := net.SplitHostPort(srv.Listener.Addr().String()); strings.Contains(string(body), host) || !strings.Contains(string(body), "stalled") {
		t.Fatalf("answer to a stalled body: %s", body)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("answered after %v", took)
	}
	rec := serve(t, h, request{method: http.MethodGet, target: loc})
	if got := rec.Header().Get("Range"); got != "0-2" {
		t.Fatalf("session Range %q after 3 bytes, want 0-2", got)
	}
}

// TestManifestLengthNotAllocated declares a manifest of the largest size
// allowed and sends a few bytes: the server allocates for what arrived.
func TestManifestLengthNotAllocated(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	reg := registry.New(inmemory.New(), registry.Options{Logger: discard, MaxManifestSize: 64 << 20})
	h := New(reg, Options{Logger: discard})
	req := httptest.NewRequest(http.MethodPut, "/v2/a/manifests/latest", strings.NewReader(`{"schemaVersion":2}`))
	req.ContentLength = 64 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	runtime.ReadMemStats(&after)
	if rec.Code >= 500 {
		t.Fatalf("status %d", rec.Code)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Fatalf("a %d-byte body with a declared 64 MiB allocated %d bytes", req.ContentLength, grew)
	}
}

// TestBodyDeadlineEndsWithBody reads a body to its end, then reads again
// past the deadline's slack as a careless reader might, and then works for
// longer than the timeout: the request must not be cancelled, which it
// would be if the late read had armed the deadline again under the
// server's background read.
func TestBodyDeadlineEndsWithBody(t *testing.T) {
	const timeout = 200 * time.Millisecond
	cancelled := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout}
		io.ReadAll(body)
		time.Sleep(deadlineSlack + 100*time.Millisecond)
		body.Read(make([]byte, 1))
		time.Sleep(3 * timeout)
		cancelled <- r.Context().Err()
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/octet-stream", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-cancelled; err != nil {
		t.Fatalf("request cancelled after its body ended: %v", err)
	}
}

// TestUnreadBodyIsBounded declares a body it never sends to endpoints that
// do not read one, before any of them has authenticated anything: net/http
// reads such a body before it answers, and must give up on it.
func TestUnreadBodyIsBounded(t *testing.T) {
	h := newHandler(t, Options{BodyIdleTimeout: 300 * time.Millisecond})
	srv := httptest.NewServer(BoundBodies(300*time.Millisecond, h))
	defer srv.Close()
	for _, target := range []string{"GET /v2/", "GET /v2/a/tags/list", "DELETE /v2/a/manifests/latest", "GET /nowhere"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", target)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s with a body never sent: no answer in 5s", target)
		}
	}
	// A body that comes is read as before.
	loc := startSession(t, h, "a")
	req, _ := http.NewRequest(http.MethodPatch, srv.URL+loc, strings.NewReader("abc"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("chunk through the bound: %d", resp.StatusCode)
	}
}

// On HTTP/2 the bound is not set at the request's start: a body an
// endpoint begins to read only after a while is still read whole.
func TestBoundBodiesLeavesHTTP2Alone(t *testing.T) {
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
		}
	})
	srv := httptest.NewUnstartedServer(BoundBodies(300*time.Millisecond, read))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL, "application/octet-stream", bytes.NewReader(make([]byte, 20<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP/%d %d, want HTTP/2 200", resp.ProtoMajor, resp.StatusCode)
	}
}

// A blob past MaxBlobSize is refused with 413: unread when its length is
// declared, else read only up to the limit, so that neither a monolithic
// push nor a session ever holds more than the limit.
func TestMaxBlobSize(t *testing.T) {
	const limit = 1000
	h := newHandler(t, Options{MaxBlobSize: limit})
	small, big := bytes.Repeat([]byte("a"), limit), bytes.Repeat([]byte("b"), limit+1)

	pushBlob(t, h, "r", small) // exactly the limit
	for _, chunked := range []bool{false, true} {
		d := digest.FromBytes(big)
		rec := serve(t, h, request{method: http.MethodPost, target: "/v2/r/blobs/uploads/?digest=" + d.String(), body: big, chunked: chunked})
		wantStatus(t, rec, http.StatusRequestEntityTooLarge, registry.CodeBlobUploadInvalid)
		rec = serve(t, h, request{method: http.MethodHead, target: "/v2/r/blobs/" + d.String()})
		wantStatus(t, rec, http.StatusNotFound, "")
	}

	// A session: chunks up to the limit are taken, a declared chunk past it
	// is refused before it is read, one of unknown length stops at it.
	loc := startSession(t, h, "r")
	rec := serve(t, h, request{method: http.MethodPatch, target: loc, body: big[:600], header: map[string]string{"Content-Range": "0-599"}})
	wantStatus(t, rec, http.StatusAccepted, "")
	loc = rec.Header().Get("Location")
	rec = serve(t, h, request{method: http.MethodPatch, target: loc, body: big[:401], header: map[string]string{"Content-Range": "600-1000"}})
	wantStatus(t, rec, http.StatusRequestEntityTooLarge, registry.CodeBlobUploadInvalid)
	rec = serve(t, h, request{method: http.MethodGet, target: loc})
	wantStatus(t, rec, http.StatusNoContent, "")
	if got := rec.Header().Get("Range"); got != "0-599" {
		t.Fatalf("after a refused chunk the session holds %q, want 0-599", got)
	}
	// A chunk sent again (its answer lost), or starting elsewhere, is out
	// of order as without a limit: 416, which the client recovers from.
	for _, cr := range []string{"0-599", "400-999"} {
		rec = serve(t, h, request{method: http.MethodPatch, target: loc, body: big[:600], header: map[string]string{"Content-Range": cr}})
		wantStatus(t, rec, http.StatusRequestedRangeNotSatisfiable, registry.CodeRangeInvalid)
	}
	rec = serve(t, h, request{method: http.MethodPatch, target: loc, body: big[:500], chunked: true})
	wantStatus(t, rec, http.StatusRequestEntityTooLarge, registry.CodeBlobUploadInvalid)
	rec = serve(t, h, request{method: http.MethodGet, target: loc})
	wantStatus(t, rec, http.StatusNoContent, "")
	if got := rec.Header().Get("Range"); got != "0-999" {
		t.Fatalf("after a chunk of unknown length past the limit the session holds %q, want 0-999", got)
	}
	// The final PUT with a body past the limit is refused too, and the
	// session commits what it holds.
	rec = serve(t, h, request{method: http.MethodPut, target: withQuery(loc, "digest="+digest.FromBytes(big).String()), body: big[:1]})
	wantStatus(t, rec, http.StatusRequestEntityTooLarge, registry.CodeBlobUploadInvalid)
	rec = serve(t, h, request{method: http.MethodPut, target: withQuery(loc, "digest="+digest.FromBytes(big[:limit]).String())})
	wantStatus(t, rec, http.StatusCreated, "")
}

// A limit as large as a size can be takes every blob.
func TestMaxBlobSizeAtItsLargest(t *testing.T) {
	h := newHandler(t, Options{MaxBlobSize: math.MaxInt64})
	pushBlob(t, h, "r", []byte("content"))
	loc := startSession(t, h, "r")
	rec := serve(t, h, request{method: http.MethodPatch, target: loc, body: []byte("chunk"), chunked: true})
	wantStatus(t, rec, http.StatusAccepted, "")
}

// A session that holds more than the limit, from before the limit was set,
// is not committed past it.
func TestMaxBlobSizeSetAfterASessionBegan(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.New(inmemory.New(), registry.Options{Logger: quiet})
	before := New(reg, Options{Logger: quiet})
	content := bytes.Repeat([]byte("c"), 1500)
	loc := startSession(t, before, "r")
	rec := serve(t, before, request{method: http.MethodPatch, target: loc, body: content})
	wantStatus(t, rec, http.StatusAccepted, "")
	loc = rec.Header().Get("Location")

	after := New(reg, Options{Logger: quiet, MaxBlobSize: 1000})
	d := digest.FromBytes(content)
	rec = serve(t, after, request{method: http.MethodPut, target: withQuery(loc, "digest="+d.String())})
	wantStatus(t, rec, http.StatusRequestEntityTooLarge, registry.CodeBlobUploadInvalid)
	rec = serve(t, after, request{method: http.MethodHead, target: "/v2/r/blobs/" + d.String()})
	wantStatus(t, rec, http.StatusNotFound, "")
}
