package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// pausingDriver pauses once, for pause, after 2 MiB of a blob's write or
// read: an S3 part upload, a retried read.
type pausingDriver struct {
	driver.Driver
	pause               time.Duration
	inWrite, inRead     atomic.Bool // armed
	pausedW, pausedRead atomic.Bool // happened
}

type pausingWriter struct {
	driver.FileWriter
	d *pausingDriver
	n int
}

func (w *pausingWriter) Write(p []byte) (int, error) {
	if w.n += len(p); w.n > 2<<20 && w.d.inWrite.CompareAndSwap(true, false) {
		time.Sleep(w.d.pause)
		w.d.pausedW.Store(true)
	}
	return w.FileWriter.Write(p)
}

func (d *pausingDriver) Writer(ctx context.Context, path string, app bool) (driver.FileWriter, error) {
	w, err := d.Driver.Writer(ctx, path, app)
	if err != nil {
		return nil, err
	}
	return &pausingWriter{FileWriter: w, d: d}, nil
}

type pausingReader struct {
	io.ReadCloser
	d *pausingDriver
	n int
}

func (r *pausingReader) Read(p []byte) (int, error) {
	if r.n > 2<<20 && r.d.inRead.CompareAndSwap(true, false) {
		time.Sleep(r.d.pause)
		r.d.pausedRead.Store(true)
	}
	n, err := r.ReadCloser.Read(p)
	r.n += n
	return n, err
}

func (d *pausingDriver) Reader(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	rc, err := d.Driver.Reader(ctx, path, off)
	if err != nil {
		return nil, err
	}
	return &pausingReader{ReadCloser: rc, d: d}, nil
}

// tlsServer serves h over TLS, with HTTP/2 or HTTP/1.1 alone.
func tlsServer(t *testing.T, h http.Handler, h2 bool) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := srv.Client()
	if !h2 {
		c.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return srv, c
}

// Time the server spends on storage between two reads of a push, or two
// writes of a pull, is not the client's: a pause of storage longer than
// the body's idle timeout cuts neither, over HTTP/2 as over HTTP/1.1. (On
// HTTP/2 a deadline is a timer of the stream that fires whether or not a
// read or write waits.)
func TestStoragePauseCutsNoTransfer(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	d := digest.FromBytes(blob)
	for _, h2 := range []bool{false, true} {
		drv := &pausingDriver{Driver: inmemory.New(), pause: 1500 * time.Millisecond}
		log := slog.New(slog.DiscardHandler)
		h := New(registry.New(drv, registry.Options{Logger: log}), Options{Logger: log, BodyIdleTimeout: 500 * time.Millisecond})
		srv, c := tlsServer(t, h, h2)

		drv.inWrite.Store(true)
		resp, err := c.Post(srv.URL+"/v2/r/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(blob))
		if err != nil {
			t.Fatalf("h2=%v push: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || !drv.pausedW.Load() || (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("h2=%v push over HTTP/%d with a storage pause: %d %s (paused %v)", h2, resp.ProtoMajor, resp.StatusCode, body, drv.pausedW.Load())
		}

		drv.inRead.Store(true)
		resp, err = c.Get(srv.URL + "/v2/r/blobs/" + d.String())
		if err != nil {
			t.Fatalf("h2=%v pull: %v", h2, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(blob)) || !drv.pausedRead.Load() {
			t.Fatalf("h2=%v pull with a storage pause: %d of %d bytes, %v (paused %v)", h2, n, len(blob), err, drv.pausedRead.Load())
		}
	}
}

// A client that stops sending midway through a chunk over HTTP/2 is still
// cut after the idle timeout: the session keeps what came, and the upload
// slot is free again.
func TestStalledChunkOverHTTP2(t *testing.T) {
	h := newHandler(t, Options{BodyIdleTimeout: 300 * time.Millisecond, MaxUploads: 1})
	srv, c := tlsServer(t, h, true)
	loc := startSession(t, h, "a")
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("abc")) // then nothing
	req, _ := http.NewRequest(http.MethodPatch, srv.URL+loc, pr)
	began := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled chunk: %d, want 408", resp.StatusCode)
		}
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("stalled chunk answered after %v", took)
	}
	rec := serve(t, h, request{method: http.MethodPatch, target: loc, body: []byte("def"), header: map[string]string{"Content-Range": "3-5"}})
	wantStatus(t, rec, http.StatusAccepted, "")
}

// An endpoint outside the API that reads a body (the token server's form)
// is bounded on HTTP/2 too, from its first read: a client declaring a body
// it never sends does not hold the request for ever.
func TestBoundBodiesBoundsHTTP2Reads(t *testing.T) {
	read := make(chan error, 1)
	srv, c := tlsServer(t, BoundBodies(300*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	})), true)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/auth/token", pr)
	go func() {
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case err := <-read:
		if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			t.Fatalf("read of a body never sent: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read of a body never sent still waits after 5s")
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// The end of a response that HTTP/2 sends after the handler returns (what
// its buffer holds) is bounded too: a client that takes none of it for the
// timeout loses the stream, rather than holding it, the handler's buffers
// and any unread request body for as long as it stays connected.
func TestHTTP2ResponseTailBounded(t *testing.T) {
	const window = 1 << 20
	srv, c := tlsServer(t, BoundBodies(300*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, window)) // all the client's window takes
		w.Write(make([]byte, 100))    // waits in the buffer past the handler's end
	})), true)
	c.Transport.(*http.Transport).HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: window, MaxReceiveBufferPerConnection: window}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(time.Second) // taking nothing
	if n, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Fatalf("read the whole response (%d bytes) after taking none of it for longer than the bound", n)
	}
}

// A watch's timer runs only while a call waits: a call that waits past
// the timeout is cancelled once; calls that return in time never are,
// however long the gaps between them; and none leaves its timer armed.
func TestStallWatch(t *testing.T) {
	var cancels atomic.Int32
	w := newStallWatch(100*time.Millisecond, func() { cancels.Add(1) })
	for range 3 {
		w.begin()
		time.Sleep(10 * time.Millisecond)
		w.end()
		time.Sleep(150 * time.Millisecond) // storage, between calls
	}
	if n := cancels.Load(); n != 0 {
		t.Fatalf("%d cancels of calls that returned in time", n)
	}
	if w.timer.Stop() {
		t.Fatal("the timer is still armed after the call returned")
	}
	w.begin()
	time.Sleep(300 * time.Millisecond)
	w.end()
	if n := cancels.Load(); n != 1 {
		t.Fatalf("%d cancels of a call waiting three times the timeout, want 1", n)
	}
}

// A body BoundBodies watches is watched again by no endpoint, whatever
// the access log and the metrics wrapped it in since: two watches would
// double each read's timer work.
func TestWatchedUnderCounters(t *testing.T) {
	rc := http.NewResponseController(httptest.NewRecorder())
	w := newWatchedBody(io.NopCloser(strings.NewReader("x")), rc, time.Second)
	for _, tc := range []struct {
		body io.ReadCloser
		want bool
	}{
		{w, true},
		{&httpx.Body{ReadCloser: w}, true},
		{&httpx.Body{ReadCloser: &httpx.Body{ReadCloser: w}}, true},
		{&httpx.Body{ReadCloser: io.NopCloser(strings.NewReader("x"))}, false},
		{io.NopCloser(strings.NewReader("x")), false},
	} {
		if got := watched(tc.body); got != tc.want {
			t.Errorf("watched(%T) = %v, want %v", tc.body, got, tc.want)
		}
	}
}
