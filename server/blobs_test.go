package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/cache"
	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func randomBlob(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlobGetHeadAndRanges(t *testing.T) {
	h := newHandler(t, Options{})
	content := randomBlob(t, 2048)
	d := pushBlob(t, h, "a/b", content)
	target := "/v2/a/b/blobs/" + d.String()

	rec := serve(t, h, request{method: "GET", target: target})
	wantStatus(t, rec, 200, "")
	if !bytes.Equal(rec.Body.Bytes(), content) {
		t.Fatal("body differs")
	}
	for k, v := range map[string]string{
		"Content-Length": "2048", "Docker-Content-Digest": d.String(), "ETag": `"` + d.String() + `"`, "Accept-Ranges": "bytes",
		"Cache-Control": "max-age=31536000", // a digest's bytes never change
	} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	// A Range on HEAD is ignored (RFC 9110, 14.2).
	for _, rg := range []string{"", "bytes=0-9", "bytes=5000-"} {
		rec = serve(t, h, request{method: "HEAD", target: target, header: map[string]string{"Range": rg}})
		wantStatus(t, rec, 200, "")
		if rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "2048" || rec.Header().Get("Docker-Content-Digest") != d.String() ||
			rec.Header().Get("Content-Range") != "" || rec.Header().Get("Cache-Control") != "max-age=31536000" {
			t.Fatalf("HEAD with Range %q: %d body bytes, headers %v", rg, rec.Body.Len(), rec.Header())
		}
	}

	ranges := []struct {
		header       string
		status       int
		from, to     int // body is content[from:to]
		contentRange string
	}{
		{"bytes=500-1499", 206, 500, 1500, "bytes 500-1499/2048"},
		{"bytes=500-", 206, 500, 2048, "bytes 500-2047/2048"},
		{"bytes=-500", 206, 1548, 2048, "bytes 1548-2047/2048"},
		{"bytes=2000-5000", 206, 2000, 2048, "bytes 2000-2047/2048"},
		{"bytes=500-0", 416, 0, 0, "bytes */2048"},
		{"bytes=5000-10000", 416, 0, 0, "bytes */2048"},
		{"bytes=0-1,5-6", 200, 0, 2048, ""},
	}
	for _, rg := range ranges {
		t.Run(rg.header, func(t *testing.T) {
			rec := serve(t, h, request{method: "GET", target: target, header: map[string]string{"Range": rg.header}})
			wantStatus(t, rec, rg.status, "")
			if got := rec.Header().Get("Content-Range"); got != rg.contentRange {
				t.Errorf("Content-Range %q, want %q", got, rg.contentRange)
			}
			// A part is as lasting as the whole; a refusal is not kept.
			if got, want := rec.Header().Get("Cache-Control"), map[bool]string{true: "max-age=31536000"}[rg.status != 416]; got != want {
				t.Errorf("Cache-Control %q, want %q", got, want)
			}
			if rg.status == 416 {
				if errorCode(t, rec) != registry.CodeRangeInvalid {
					t.Errorf("416 body %s", rec.Body)
				}
				return
			}
			if !bytes.Equal(rec.Body.Bytes(), content[rg.from:rg.to]) {
				t.Errorf("body is %d bytes, want content[%d:%d]", rec.Body.Len(), rg.from, rg.to)
			}
			if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(rg.to-rg.from) {
				t.Errorf("Content-Length %s", got)
			}
		})
	}
}

func TestBlobDelete(t *testing.T) {
	h := newHandler(t, Options{})
	d := pushBlob(t, h, "a", []byte("hello"))
	wantStatus(t, serve(t, h, request{method: "DELETE", target: "/v2/a/blobs/" + d.String()}), 202, "")
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/a/blobs/" + d.String()}), 404, registry.CodeBlobUnknown)

	h = newHandler(t, Options{DisableDeletes: true})
	d = pushBlob(t, h, "a", []byte("hello"))
	rec := serve(t, h, request{method: "DELETE", target: "/v2/a/blobs/" + d.String()})
	wantStatus(t, rec, 405, registry.CodeUnsupported)
	if allow := rec.Header().Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow %q with deletes disabled, want GET, HEAD", allow)
	}
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/a/blobs/" + d.String()}), 200, "")
}

// responseWriter is a bare ResponseWriter that counts ReadFrom calls, as
// the connection's writer would use them for sendfile.
type readFromWriter struct {
	*httptest.ResponseRecorder
	readFrom int
}

func (w *readFromWriter) ReadFrom(r io.Reader) (int64, error) {
	w.readFrom++
	return io.Copy(w.ResponseRecorder, r)
}

// TestBlobBodyReachesReadFrom checks that no layer between the handler and
// the connection hides io.ReaderFrom from a file's bytes: sendfile depends
// on it. A small body is copied instead, with the headers.
func TestBlobBodyReachesReadFrom(t *testing.T) {
	for _, size := range []int{4096, 128 << 10} {
		t.Run(strconv.Itoa(size), func(t *testing.T) { blobBodyReachesReadFrom(t, size, size > 64<<10) })
	}
}

func blobBodyReachesReadFrom(t *testing.T, size int, sendfile bool) {
	fsd, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(driver.Instrument(fsd, nil), registry.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := New(reg, Options{Middleware: []Middleware{func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if r.Method != http.MethodGet {
				return
			}
			if rec, _ := httpx.Record(w); rec.Status() != 200 || rec.Written() != int64(size) {
				t.Errorf("recorder saw status %d, %d bytes", rec.Status(), rec.Written())
			}
		})
	}}})
	content := randomBlob(t, size)
	d := pushBlob(t, h, "a", content)
	w := &readFromWriter{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v2/a/blobs/"+d.String(), nil))
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), content) {
		t.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
	}
	if sendfile != (w.readFrom > 0) {
		t.Fatalf("%d bytes reached the writer's ReadFrom %d times, want sendfile %v", size, w.readFrom, sendfile)
	}
}

func TestMonolithicPost(t *testing.T) {
	h := newHandler(t, Options{})
	content := []byte("monolithic")
	d := digest.FromBytes(content)
	rec := serve(t, h, request{method: "POST", target: "/v2/a/blobs/uploads/?digest=" + d.String(), body: content})
	wantStatus(t, rec, 201, "")
	if rec.Header().Get("Location") != "/v2/a/blobs/"+d.String() || rec.Header().Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("headers %v", rec.Header())
	}
	wrong := digest.FromString("other")
	rec = serve(t, h, request{method: "POST", target: "/v2/a/blobs/uploads/?digest=" + wrong.String(), body: content})
	wantStatus(t, rec, 400, registry.CodeDigestInvalid)

	empty := digest.FromBytes(nil)
	rec = serve(t, h, request{method: "POST", target: "/v2/a/blobs/uploads/?digest=" + empty.String()})
	wantStatus(t, rec, 201, "")
	rec = serve(t, h, request{method: "GET", target: "/v2/a/blobs/" + empty.String()})
	wantStatus(t, rec, 200, "")
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "0" {
		t.Fatalf("empty blob: %d bytes, Content-Length %q", rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
}

func TestMount(t *testing.T) {
	h := newHandler(t, Options{})
	d := pushBlob(t, h, "src", []byte("shared layer"))

	rec := serve(t, h, request{method: "POST", target: "/v2/dst/blobs/uploads/?mount=" + d.String() + "&from=src"})
	wantStatus(t, rec, 201, "")
	if rec.Header().Get("Location") != "/v2/dst/blobs/"+d.String() {
		t.Fatalf("Location %q", rec.Header().Get("Location"))
	}
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/dst/blobs/" + d.String()}), 200, "")

	// Without from, any repository that has the blob will do.
	rec = serve(t, h, request{method: "POST", target: "/v2/anon/blobs/uploads/?mount=" + d.String()})
	wantStatus(t, rec, 201, "")

	// A source without the blob: a session to upload it instead.
	missing := digest.FromString("not there")
	for _, target := range []string{
		"/v2/dst2/blobs/uploads/?mount=" + missing.String() + "&from=src",
		"/v2/dst2/blobs/uploads/?mount=" + missing.String(),
		"/v2/dst2/blobs/uploads/?mount=" + d.String() + "&from=elsewhere",
	} {
		rec = serve(t, h, request{method: "POST", target: target})
		wantStatus(t, rec, 202, "")
		if rec.Header().Get("Docker-Upload-UUID") == "" {
			t.Fatalf("%s: no session: %v", target, rec.Header())
		}
	}
}

func TestChunkedUpload(t *testing.T) {
	h := newHandler(t, Options{})
	content := randomBlob(t, 3000)
	d := digest.FromBytes(content)
	loc := startSession(t, h, "a")

	chunk := func(from, to int) request {
		return request{method: "PATCH", target: loc, body: content[from:to], header: map[string]string{
			"Content-Range": fmt.Sprintf("%d-%d", from, to-1),
			"Content-Type":  "application/octet-stream",
		}}
	}
	rec := serve(t, h, chunk(0, 1000))
	wantStatus(t, rec, 202, "")
	if rec.Header().Get("Range") != "0-999" || rec.Header().Get("Location") == "" {
		t.Fatalf("after first chunk: %v", rec.Header())
	}
	loc = rec.Header().Get("Location")

	// A gap and an overlap: 416 with the session's Range, which is unharmed.
	for _, bad := range []request{chunk(2000, 3000), chunk(500, 1500)} {
		rec = serve(t, h, bad)
		wantStatus(t, rec, 416, registry.CodeRangeInvalid)
		if rec.Header().Get("Range") != "0-999" || rec.Header().Get("Location") != loc {
			t.Fatalf("416 headers %v", rec.Header())
		}
	}
	// A chunk whose length disagrees with its Content-Range.
	short := chunk(1000, 2000)
	short.body = content[1000:1500]
	wantStatus(t, serve(t, h, short), 400, registry.CodeBlobUploadInvalid)

	rec = serve(t, h, request{method: "GET", target: loc})
	wantStatus(t, rec, 204, "")
	if rec.Header().Get("Range") != "0-999" || rec.Header().Get("Docker-Upload-UUID") == "" || rec.Header().Get("Location") == "" {
		t.Fatalf("status headers %v", rec.Header())
	}

	wantStatus(t, serve(t, h, chunk(1000, 2000)), 202, "")

	// PUT with the wrong digest fails and leaves the session resumable.
	wrong := digest.FromString("wrong")
	rec = serve(t, h, request{method: "PUT", target: withQuery(loc, "digest="+wrong.String())})
	wantStatus(t, rec, 400, registry.CodeDigestInvalid)
	rec = serve(t, h, request{method: "PUT", target: withQuery(loc, "digest=sha256:nothex")})
	wantStatus(t, rec, 400, registry.CodeDigestInvalid)

	// The last chunk rides on the PUT.
	last := chunk(2000, 3000)
	last.method, last.target = "PUT", withQuery(loc, "digest="+d.String())
	rec = serve(t, h, last)
	wantStatus(t, rec, 201, "")
	if rec.Header().Get("Location") != "/v2/a/blobs/"+d.String() {
		t.Fatalf("Location %q", rec.Header().Get("Location"))
	}
	rec = serve(t, h, request{method: "GET", target: "/v2/a/blobs/" + d.String()})
	if !bytes.Equal(rec.Body.Bytes(), content) {
		t.Fatal("committed blob differs")
	}
	// The session is gone once committed.
	wantStatus(t, serve(t, h, request{method: "GET", target: loc}), 404, registry.CodeBlobUploadUnknown)
}

func TestStreamedUploadSHA512(t *testing.T) {
	h := newHandler(t, Options{})
	content := randomBlob(t, 5000)
	sum := sha512.Sum512(content)
	d := digest.NewDigestFromBytes(digest.SHA512, sum[:])
	loc := startSession(t, h, "a")
	rec := serve(t, h, request{method: "PATCH", target: loc, body: content, chunked: true})
	wantStatus(t, rec, 202, "")
	if rec.Header().Get("Range") != "0-4999" {
		t.Fatalf("Range %q", rec.Header().Get("Range"))
	}
	rec = serve(t, h, request{method: "PUT", target: withQuery(rec.Header().Get("Location"), "digest="+d.String())})
	wantStatus(t, rec, 201, "")
	rec = serve(t, h, request{method: "GET", target: "/v2/a/blobs/" + d.String()})
	wantStatus(t, rec, 200, "")
	if !bytes.Equal(rec.Body.Bytes(), content) {
		t.Fatal("sha512 blob differs")
	}
}

func TestCancelUpload(t *testing.T) {
	h := newHandler(t, Options{DisableDeletes: true})
	loc := startSession(t, h, "a")
	wantStatus(t, serve(t, h, request{method: "PATCH", target: loc, body: []byte("abc")}), 202, "")
	wantStatus(t, serve(t, h, request{method: "DELETE", target: loc}), 204, "")
	wantStatus(t, serve(t, h, request{method: "GET", target: loc}), 404, registry.CodeBlobUploadUnknown)
}

// brokenBody fails after some bytes, as a client that disconnects.
type brokenBody struct{ n int }

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), b.n)
	b.n -= n
	return n, nil
}

func TestClientBodyFailureIs4xx(t *testing.T) {
	h := newHandler(t, Options{})
	loc := startSession(t, h, "a")
	for _, req := range []*http.Request{
		httptest.NewRequest("PATCH", loc, &brokenBody{n: 100}),
		httptest.NewRequest("POST", "/v2/a/blobs/uploads/?digest="+digest.FromString("x").String(), &brokenBody{n: 100}),
		httptest.NewRequest("PUT", "/v2/a/manifests/latest", &brokenBody{n: 100}),
	} {
		req.ContentLength = -1
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 400 {
			t.Errorf("%s %s: status %d, body %s", req.Method, req.URL, rec.Code, rec.Body)
		}
	}
	// What arrived before the break stays in the session.
	rec := serve(t, h, request{method: "GET", target: loc})
	if rec.Header().Get("Range") != "0-99" {
		t.Fatalf("Range after a broken chunk: %q", rec.Header().Get("Range"))
	}
}

// TestConcurrentChunksDoNotInterleave holds one PATCH mid-body and sends a
// second to the same session: the second is refused with 416 and the
// first completes whole. A commit or a cancel meanwhile is told to come
// back (429, Retry-After), not that a range it never sent is wrong.
func TestConcurrentChunksDoNotInterleave(t *testing.T) {
	h := newHandler(t, Options{})
	loc := startSession(t, h, "a")
	pr, pw := io.Pipe()
	first := httptest.NewRequest("PATCH", loc, pr)
	first.ContentLength = -1
	firstRec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { h.ServeHTTP(firstRec, first); close(done) }()
	// The pipe hands these bytes over only once the registry is reading the
	// body, which it does holding the session.
	if _, err := pw.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	rec := serve(t, h, request{method: "PATCH", target: loc, body: []byte("intruder")})
	wantStatus(t, rec, 416, registry.CodeRangeInvalid)
	d := digest.FromString("0123456789abcdef")
	for _, req := range []request{{method: "PUT", target: withQuery(loc, "digest="+d.String())}, {method: "DELETE", target: loc}} {
		rec := serve(t, h, req)
		wantStatus(t, rec, 429, registry.CodeTooManyRequests)
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s while a chunk streams: no Retry-After", req.method)
		}
	}
	pw.Write([]byte("abcdef"))
	pw.Close()
	<-done
	if firstRec.Code != 202 || firstRec.Header().Get("Range") != "0-15" {
		t.Fatalf("first chunk: %d %v", firstRec.Code, firstRec.Header())
	}
	wantStatus(t, serve(t, h, request{method: "PUT", target: withQuery(loc, "digest="+d.String())}), 201, "")
}

// A blob whose bytes went after its link was cached (a collection by
// another process, within the cache's trust) is BLOB_UNKNOWN on GET, not a
// 200 with a body cut short.
func TestBlobGoneBehindACachedLink(t *testing.T) {
	drv := inmemory.New()
	reg := registry.New(drv, registry.Options{Cache: cache.NewMemory(16, time.Minute)})
	h := New(reg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	content := randomBlob(t, 2048)
	d := pushBlob(t, h, "a/b", content)
	target := "/v2/a/b/blobs/" + d.String()
	wantStatus(t, serve(t, h, request{method: "HEAD", target: target}), 200, "")
	if err := drv.Delete(t.Context(), "/blobs/sha256/"+d.Encoded()[:2]+"/"+d.Encoded()); err != nil {
		t.Fatal(err)
	}
	for _, hdr := range []map[string]string{nil, {"Range": "bytes=10-20"}} {
		rec := serve(t, h, request{method: "GET", target: target, header: hdr})
		wantStatus(t, rec, 404, registry.CodeBlobUnknown)
	}
}

// The same holds for an empty blob: the open, not the bytes, tells.
func TestEmptyBlobGoneBehindACachedLink(t *testing.T) {
	drv := inmemory.New()
	reg := registry.New(drv, registry.Options{Cache: cache.NewMemory(16, time.Minute)})
	h := New(reg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	d := pushBlob(t, h, "a/b", []byte{})
	target := "/v2/a/b/blobs/" + d.String()
	wantStatus(t, serve(t, h, request{method: "GET", target: target}), 200, "")
	if err := drv.Delete(t.Context(), "/blobs/sha256/"+d.Encoded()[:2]+"/"+d.Encoded()); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, serve(t, h, request{method: "GET", target: target}), 404, registry.CodeBlobUnknown)
}
