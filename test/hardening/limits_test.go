package hardening

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-registry/lading/internal/testserver"
)

// TestConnectionLimits checks the listener's limits on a real process with
// short timeouts: oversized headers are refused, and connections that send
// headers slowly or sit idle are closed.
func TestConnectionLimits(t *testing.T) {
	srv := start(t, testserver.Options{Env: []string{"LADING_HTTP_READHEADERTIMEOUT=1s", "LADING_HTTP_IDLETIMEOUT=1s"}})

	t.Run("oversized header", func(t *testing.T) {
		conn := dial(t, srv.Addr)
		fmt.Fprintf(conn, "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 100<<10))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("100 KiB header: %d", resp.StatusCode)
		}
	})

	t.Run("slow headers", func(t *testing.T) {
		conn := dial(t, srv.Addr)
		fmt.Fprintf(conn, "GET /v2/ HTTP/1.1\r\nHost: x\r\n")
		waitClosed(t, conn, 5*time.Second)
	})

	t.Run("idle connection", func(t *testing.T) {
		conn := dial(t, srv.Addr)
		br := bufio.NewReader(conn)
		fmt.Fprintf(conn, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		waitClosed(t, conn, 5*time.Second)
	})
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitClosed fails unless the server closes conn within limit; whatever
// it sends before closing is ignored.
func waitClosed(t *testing.T, conn net.Conn, limit time.Duration) {
	t.Helper()
	began := time.Now()
	conn.SetReadDeadline(began.Add(limit))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	t.Logf("closed by the server after %v", time.Since(began).Round(10*time.Millisecond))
}

// TestMaxBlobSize pushes layers with go-containerregistry to a process
// started with http.maxblobsize: a layer within it lands, one past it is
// refused with 413 BLOB_UPLOAD_INVALID, which the client shows, and leaves
// no blob behind.
func TestMaxBlobSize(t *testing.T) {
	srv := start(t, testserver.Options{Env: []string{"LADING_HTTP_MAXBLOBSIZE=1MiB"}})
	repo, err := name.NewRepository(srv.Addr + "/limits/layers")
	if err != nil {
		t.Fatal(err)
	}
	small, err := random.Layer(512<<10, types.OCIUncompressedLayer)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, small); err != nil {
		t.Fatalf("a layer within the limit: %v", err)
	}
	big, err := random.Layer(2<<20, types.OCIUncompressedLayer)
	if err != nil {
		t.Fatal(err)
	}
	err = remote.WriteLayer(repo, big)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusRequestEntityTooLarge ||
		len(terr.Errors) == 0 || terr.Errors[0].Code != transport.BlobUploadInvalidErrorCode {
		t.Fatalf("a layer past the limit: %v, want 413 BLOB_UPLOAD_INVALID", err)
	}
	d, _ := big.Digest()
	resp, err := http.Head("http://" + srv.Addr + "/v2/limits/layers/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of the layer past the limit: %d, want 404", resp.StatusCode)
	}
}
