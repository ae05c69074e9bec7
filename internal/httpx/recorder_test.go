package httpx

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spyWriter is a ResponseWriter with ReadFrom, like net/http's own,
// remembering what reached it.
type spyWriter struct {
	*httptest.ResponseRecorder
	readFromSrc io.Reader
}

func (s *spyWriter) ReadFrom(src io.Reader) (int64, error) {
	s.readFromSrc = src
	return io.Copy(s.ResponseRecorder, src)
}

func blobFile(t *testing.T, size int) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestRecorderKeepsInterfaces(t *testing.T) {
	_, w := Record(httptest.NewRecorder())
	if _, ok := w.(io.ReaderFrom); !ok {
		t.Error("Recorder hides io.ReaderFrom")
	}
	if _, ok := w.(http.Flusher); !ok {
		t.Error("Recorder hides http.Flusher")
	}
	if _, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok {
		t.Error("Recorder has no Unwrap")
	}
	if rec, passOn := Record(w); rec != w || passOn != w {
		t.Error("Record wrapped a Recorder again instead of sharing it")
	}
	// A wrapper between middlewares: the Recorder beneath is shared and
	// the wrapper is what gets passed on.
	outer := &unwrapper{w}
	if rec, passOn := Record(outer); rec != w || passOn != outer {
		t.Error("Record did not find the Recorder through Unwrap")
	}
}

// TestReadFromReachesUnderlyingWriter copies a file the way a blob GET
// does and checks the file itself, which sendfile needs, reaches the
// underlying writer's ReadFrom, and the bytes are counted.
func TestReadFromReachesUnderlyingWriter(t *testing.T) {
	const size = 1<<20 + 7
	spy := &spyWriter{ResponseRecorder: httptest.NewRecorder()}
	rec, _ := Record(spy)

	n, err := io.Copy(rec, blobFile(t, size))
	if err != nil || n != size {
		t.Fatalf("copied %d, %v", n, err)
	}
	if _, ok := spy.readFromSrc.(syscall.Conn); !ok {
		t.Fatalf("underlying ReadFrom got %T, not the file", spy.readFromSrc)
	}
	if rec.Written() != size || spy.Body.Len() != size || rec.Status() != http.StatusOK {
		t.Fatalf("written %d, body %d, status %d", rec.Written(), spy.Body.Len(), rec.Status())
	}
}

func TestReadFromWithoutUnderlyingReadFrom(t *testing.T) {
	under := httptest.NewRecorder() // has no ReadFrom
	rec, _ := Record(under)
	n, err := rec.ReadFrom(strings.NewReader("hello"))
	if err != nil || n != 5 || rec.Written() != 5 || under.Body.String() != "hello" {
		t.Fatalf("n %d err %v written %d body %q", n, err, rec.Written(), under.Body)
	}
}

func TestStatus(t *testing.T) {
	rec, _ := Record(httptest.NewRecorder())
	if rec.Status() != http.StatusOK || rec.WroteHeader() {
		t.Errorf("nothing written: status %d, want 200, and WroteHeader %v", rec.Status(), rec.WroteHeader())
	}
	rec.WriteHeader(http.StatusEarlyHints)
	if rec.WroteHeader() {
		t.Error("an informational status counted as the response's")
	}
	rec.WriteHeader(http.StatusCreated)
	rec.WriteHeader(http.StatusInternalServerError) // ignored by net/http too
	if rec.Status() != http.StatusCreated {
		t.Errorf("status %d, want the first final one, 201", rec.Status())
	}
}

// TestOverRealServer runs the Recorder inside net/http: ServeContent,
// Flush and a write deadline through http.ResponseController (which needs
// Unwrap), and the request body count.
func TestOverRealServer(t *testing.T) {
	const size = 3<<20 + 1
	f := blobFile(t, size)
	var got struct {
		written, read int64
		deadlineErr   error
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw, _ := Record(w)
		body := CountBody(r)
		io.Copy(io.Discard, r.Body)
		got.deadlineErr = http.NewResponseController(rw).SetWriteDeadline(time.Now().Add(time.Minute))
		http.ServeContent(rw, r, "blob", time.Time{}, f)
		got.written, got.read = rw.Written(), body.BytesRead()
	}))

	resp, err := http.Post(srv.URL, "application/octet-stream", strings.NewReader("twelve bytes"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	srv.Close() // the handler records after the client has its bytes
	if n != size || got.written != size {
		t.Errorf("client got %d bytes, recorder counted %d, want %d", n, got.written, size)
	}
	if got.read != 12 {
		t.Errorf("request body counted %d, want 12", got.read)
	}
	if got.deadlineErr != nil {
		t.Errorf("ResponseController through Recorder: %v", got.deadlineErr)
	}
}

func TestCountBodyShared(t *testing.T) {
	r := httptest.NewRequest("PUT", "/", strings.NewReader("abc"))
	outer := CountBody(r)
	if CountBody(r) != outer {
		t.Fatal("CountBody wrapped twice")
	}
	io.ReadAll(r.Body)
	if outer.BytesRead() != 3 {
		t.Fatalf("counted %d", outer.BytesRead())
	}
	empty := httptest.NewRequest("GET", "/", nil)
	if CountBody(empty).BytesRead() != 0 || empty.Body != http.NoBody {
		t.Fatal("empty body replaced")
	}
}

type unwrapper struct{ http.ResponseWriter }

func (u *unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

func TestLabels(t *testing.T) {
	r := httptest.NewRequest("GET", "/v2/a/b/manifests/latest", nil)
	labels, r := WithLabels(r)
	if again, r2 := WithLabels(r); again != labels || r2 != r {
		t.Fatal("WithLabels installed a second Labels")
	}
	routed := r.WithContext(r.Context()) // what a router passes inward
	h := Label(func(*http.Request) (string, string) { return "manifest", "a/b" })(http.NotFoundHandler())
	h.ServeHTTP(httptest.NewRecorder(), routed)
	if labels.Route != "manifest" || labels.Repository != "a/b" {
		t.Fatalf("labels %+v", labels)
	}
	labels.Resolve(r, func(*http.Request) (string, string) { return "other", "" })
	if labels.Route != "manifest" {
		t.Fatal("Resolve overwrote labels set inside")
	}
}
