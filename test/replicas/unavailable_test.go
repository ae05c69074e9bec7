package replicas

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// With the object store down or throttling, requests that need it are
// answered 503 UNAVAILABLE with Retry-After, which clients retry, not a
// 500; once it is back they succeed again.
func TestStorageUnavailableIs503(t *testing.T) {
	skipShort(t)
	for _, mode := range []struct {
		name string
		fail http.HandlerFunc
	}{
		{"throttled", testenv.SlowDown},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			s3 := testenv.S3(t)
			down := testenv.S3Outage(t, &s3, mode.fail)
			srv := startReplica(t, s3, "", testserver.Options{Allow5xx: true})
			data := randomBytes(t, 4096)
			d := pushBlob(t, srv, "down/repo", data)
			blob := srv.URL + "/v2/down/repo/blobs/" + d.String()

			down.Store(true)
			start := time.Now()
			resp, body := do(t, http.MethodGet, blob, nil, nil)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("GET with the store down: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			var doc struct {
				Errors []struct{ Code string } `json:"errors"`
			}
			if err := json.Unmarshal(body, &doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Code != "UNAVAILABLE" {
				t.Fatalf("error body %s (%v), want one UNAVAILABLE", body, err)
			}
			t.Logf("answered after %v", time.Since(start).Round(time.Millisecond))
			loc := srv.URL + "/v2/down/repo/blobs/uploads/"
			resp, body = do(t, http.MethodPost, loc, nil, nil)
			expect(t, resp, body, http.StatusServiceUnavailable)

			down.Store(false)
			getBlob(t, srv, "down/repo", d, data)
		})
	}
}

// An object store out of space makes a write 507 with a message saying so,
// not a 500 UNKNOWN nor a 503 that clients would retry at once.
func TestStorageFullIs507(t *testing.T) {
	skipShort(t)
	s3 := testenv.S3(t)
	full := testenv.S3Full(t, &s3)
	srv := startReplica(t, s3, "", testserver.Options{Allow5xx: true})
	data := randomBytes(t, 4096)
	d := digest.FromBytes(data)
	loc := startUpload(t, srv, "full/repo")
	full.Store(true)
	resp, body := do(t, http.MethodPut, srv.URL+withParam(loc, "digest="+d.String()), data,
		map[string]string{"Content-Type": "application/octet-stream"})
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), "storage full") {
		t.Fatalf("PUT with the store full: %d %s, want 507 saying storage full", resp.StatusCode, body)
	}
	full.Store(false)
	pushBlob(t, srv, "full/repo", data)
}
