package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// ctxDriver gives up when its context ends, as network backends do.
type ctxDriver struct{ driver.Driver }

func (d ctxDriver) GetContent(ctx context.Context, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d.Driver.GetContent(ctx, path)
}

// TestClientGone checks that a storage call abandoned because the client
// hung up is not answered (nor logged) as a server fault.
func TestClientGone(t *testing.T) {
	reg := registry.New(ctxDriver{inmemory.New()}, registry.Options{})
	h := New(reg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/a/manifests/latest", nil).WithContext(ctx))
	if rec.Code != statusClientClosed {
		t.Fatalf("status %d, want %d; %s", rec.Code, statusClientClosed, rec.Body)
	}
	// Also when it hangs up while a pushed blob is being stored: not a bad
	// body (400).
	body := []byte("some layer")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v2/a/blobs/uploads/?digest="+digest.FromBytes(body).String(), bytes.NewReader(body)).WithContext(ctx))
	if rec.Code != statusClientClosed {
		t.Fatalf("push: status %d, want %d; %s", rec.Code, statusClientClosed, rec.Body)
	}
	// A cancellation of the server's own making stays a 500.
	rec = httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest(http.MethodGet, "/v2/", nil), context.Canceled)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d for a server-side cancellation", rec.Code)
	}
}
