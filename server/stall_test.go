package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// fsServer serves a registry on the filesystem driver over a real
// listener, holding one blob of size bytes. Copied, every request seems to
// come over TLS, which takes blob bodies through buffers instead of to
// sendfile (see kernelCopy), though the connection is plain TCP.
func fsServer(t testing.TB, opts Options, size int, copied bool) (*httptest.Server, digest.Digest, []byte) {
	t.Helper()
	h, d, blob := fsHandler(t, opts, size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if copied {
			r.TLS = &tls.ConnectionState{}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, d, blob
}

// fsHandler is fsServer's handler, without a listener.
func fsHandler(t testing.TB, opts Options, size int) (http.Handler, digest.Digest, []byte) {
	t.Helper()
	fsd, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.New(driver.Instrument(fsd, nil), registry.Options{Logger: opts.Logger})
	blob := make([]byte, size)
	rand.Read(blob)
	repo, _ := reg.Repository("a")
	d := digest.FromBytes(blob)
	if _, err := repo.Blobs().Put(context.Background(), d, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	return New(reg, opts), d, blob
}

// TestStalledDownloadCut asks for a blob far larger than the socket
// buffers and reads nothing: the server gives up on the client after the
// idle timeout and closes the connection.
func TestStalledDownloadCut(t *testing.T) {
	for name, copied := range bodyPaths {
		t.Run(name, func(t *testing.T) { stalledDownloadCut(t, copied) })
	}
}

// bodyPaths are the two ways a blob's body goes: copied over TLS, by
// sendfile over plain TCP.
var bodyPaths = map[string]bool{"copied": true, "sendfile": false}

func stalledDownloadCut(t *testing.T, copied bool) {
	srv, d, blob := fsServer(t, Options{BodyIdleTimeout: 300 * time.Millisecond}, 48<<20, copied)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/a/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", d)
	time.Sleep(2 * time.Second)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after the client stalled (%d bytes read)", n)
	}
	if n >= int64(len(blob)) {
		t.Fatalf("the whole blob arrived (%d bytes): the client did not stall the server", n)
	}
}

// TestDownloadDeadlineLifted downloads a blob, idles past the timeout and
// sends a second request on the same connection: the deadline of the
// first download (which net/http lifts after each response) must not cut
// the second answer.
func TestDownloadDeadlineLifted(t *testing.T) {
	for name, copied := range bodyPaths {
		t.Run(name, func(t *testing.T) { downloadDeadlineLifted(t, copied) })
	}
}

func downloadDeadlineLifted(t *testing.T, copied bool) {
	// The client must take each MiB within the timeout, which a loaded
	// machine's stall must not make it miss; the idle gap must outlast it.
	const timeout = time.Second
	srv, d, blob := fsServer(t, Options{BodyIdleTimeout: timeout}, 3<<20, copied)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := range 2 {
		if i > 0 {
			time.Sleep(timeout + timeout/2)
		}
		fmt.Fprintf(conn, "GET /v2/a/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", d)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, blob) {
			t.Fatalf("request %d: %d bytes, %v", i, len(got), err)
		}
	}
}

// sourceRecorder is a ResponseWriter whose ReadFrom notes what it was given.
type sourceRecorder struct {
	httptest.ResponseRecorder
	sources []io.Reader
}

func (s *sourceRecorder) ReadFrom(src io.Reader) (int64, error) {
	s.sources = append(s.sources, src)
	return io.Copy(&s.ResponseRecorder, src)
}

// TestStallGuardKeepsSendfile checks that the guard hands the response
// writer pieces of the same shape it was given, a limited reader straight
// over the file, which is what net/http passes to sendfile.
func TestStallGuardKeepsSendfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blob")
	content := make([]byte, 2*sendPiece+123)
	rand.Read(content)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := &sourceRecorder{ResponseRecorder: *httptest.NewRecorder()}
	g := &idleWriter{w: rec, rc: http.NewResponseController(rec), timeout: time.Minute}
	n, err := io.Copy(g, io.LimitReader(f, int64(len(content))))
	if err != nil || n != int64(len(content)) || !bytes.Equal(rec.Body.Bytes(), content) {
		t.Fatalf("copied %d bytes (%v)", n, err)
	}
	if len(rec.sources) != 3 {
		t.Fatalf("%d pieces, want 3", len(rec.sources))
	}
	for i, src := range rec.sources {
		lr, ok := src.(*io.LimitedReader)
		if !ok || lr.R != f {
			t.Fatalf("piece %d is a %T, not a limited reader over the file", i, src)
		}
	}
}

// TestBodyPathByPeer checks which way a blob's body goes, by the request's
// peer: to the response writer's ReadFrom as limited readers over the file
// (sendfile) over plain TCP, whatever the host, through Write over TLS.
func TestBodyPathByPeer(t *testing.T) {
	h, d, blob := fsHandler(t, Options{BodyIdleTimeout: time.Minute}, 3*sendPiece/2)
	for _, tc := range []struct {
		name, peer, local string
		tls, kernel       bool
	}{
		{name: "other host", peer: "192.0.2.7:40000", local: "192.0.2.1:5000", kernel: true},
		{name: "other host, v6", peer: "[2001:db8::7]:40000", local: "[2001:db8::1]:5000", kernel: true},
		{name: "loopback", peer: "127.0.0.1:40000", local: "127.0.0.1:5000", kernel: true},
		{name: "loopback, v6", peer: "[::1]:40000", local: "[::1]:5000", kernel: true},
		{name: "own address", peer: "192.0.2.1:40000", local: "192.0.2.1:5000", kernel: true},
		{name: "other host, TLS", peer: "192.0.2.7:40000", local: "192.0.2.1:5000", tls: true},
		{name: "loopback, TLS", peer: "127.0.0.1:40000", local: "127.0.0.1:5000", tls: true},
	} {
		for _, rng := range []string{"", "bytes=1000-"} {
			t.Run(tc.name+" "+rng, func(t *testing.T) {
				local, err := net.ResolveTCPAddr("tcp", tc.local)
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, net.Addr(local))
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v2/a/blobs/"+d.String(), nil)
				req.RemoteAddr = tc.peer
				if tc.tls {
					req.TLS = &tls.ConnectionState{}
				}
				want := blob
				if rng != "" {
					req.Header.Set("Range", rng)
					want = blob[1000:]
				}
				rec := &sourceRecorder{ResponseRecorder: *httptest.NewRecorder()}
				h.ServeHTTP(rec, req)
				if !bytes.Equal(rec.Body.Bytes(), want) {
					t.Fatalf("status %d, %d bytes, want %d", rec.Code, rec.Body.Len(), len(want))
				}
				if kernel := len(rec.sources) > 0; kernel != tc.kernel {
					t.Fatalf("%d pieces went to ReadFrom, want sendfile %v", len(rec.sources), tc.kernel)
				}
				for i, src := range rec.sources {
					if lr, ok := src.(*io.LimitedReader); !ok {
						t.Fatalf("piece %d is a %T, not a limited reader", i, src)
					} else if _, ok := lr.R.(*os.File); !ok {
						t.Fatalf("piece %d reads a %T, not the file", i, lr.R)
					}
				}
			})
		}
	}
}

// A client that stops reading a large manifest (pipelining GETs without
// reading their answers) loses its connection after BodyIdleTimeout, as
// one that stops reading a blob does, instead of holding handlers and
// their responses for ever.
func TestStalledManifestGETCut(t *testing.T) {
	var running atomic.Int64
	track := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			running.Add(1)
			defer running.Add(-1)
			next.ServeHTTP(w, r)
		})
	}
	h := newHandler(t, Options{BodyIdleTimeout: 200 * time.Millisecond, Middleware: []Middleware{track}})
	cd := pushBlob(t, h, "a", []byte("{}"))
	big := strings.Repeat("x", 4<<20-2048)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[],"annotations":{"big":"%s"}}`, cd, big)
	wantStatus(t, serve(t, h, request{method: http.MethodPut, target: "/v2/a/manifests/t", body: []byte(m),
		header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}}), http.StatusCreated, "")
	srv := httptest.NewServer(h)
	defer srv.Close()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\n\r\n"
	conn.Write([]byte(req + req + req))
	for deadline := time.Now().Add(10 * time.Second); running.Load() > 0 || time.Now().Before(deadline.Add(-9*time.Second)); {
		if time.Now().After(deadline) {
			t.Fatalf("a client reading nothing holds %d handlers 10 s on, past a BodyIdleTimeout of 200 ms", running.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlowSteadyDownloadNotCut reads a blob steadily, far slower than a
// MiB per idle timeout but never pausing near it, through small socket
// buffers: a body written from buffers (TLS, HTTP/2) must not be cut.
// (By sendfile a client must take a MiB per timeout: see sendPiece.)
func TestSlowSteadyDownloadNotCut(t *testing.T) {
	const timeout = 200 * time.Millisecond
	h, d, blob := fsHandler(t, Options{BodyIdleTimeout: timeout}, 3<<20)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.TLS = &tls.ConnectionState{} // the copy path
		h.ServeHTTP(w, r)
	}))
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10) })
	}}).Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/a/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", d)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 16<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// 32 KiB each 15 ms: about 2 MB/s, a MiB in 500 ms.
	var got []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := io.ReadFull(resp.Body, buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
		time.Sleep(15 * time.Millisecond)
	}
	if !bytes.Equal(got, blob) {
		t.Fatalf("a steady slow reader got %d of %d bytes", len(got), len(blob))
	}
}

// smallBuffers gives every accepted connection a small send buffer, so
// that the server's writes wait on the client as over a slow link.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}
