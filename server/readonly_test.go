package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func TestReadOnlyRefusesWritesServesReads(t *testing.T) {
	srv := httptest.NewServer(server.New(registry.New(inmemory.New(), registry.Options{}), server.Options{ReadOnly: true}))
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		want         int
		allow        string // of a 405: the methods the registry answers there
	}{
		{"GET", "/v2/", 200, ""},
		{"GET", "/v2/a/tags/list", 404, ""},
		{"HEAD", "/v2/a/manifests/latest", 404, ""},
		{"POST", "/v2/a/blobs/uploads/", 405, ""},
		{"PUT", "/v2/a/manifests/latest", 405, "GET, HEAD"},
		{"DELETE", "/v2/a/manifests/latest", 405, "GET, HEAD"},
		{"DELETE", "/v2/a/blobs/sha256:" + strings.Repeat("a", 64), 405, "GET, HEAD"},
		{"OPTIONS", "/v2/a/manifests/latest", 405, "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
		if tc.want == 405 && !strings.Contains(resp.Header.Get("Content-Type"), "json") {
			t.Errorf("%s %s: refusal without an OCI error body", tc.method, tc.path)
		}
		if allow, ok := resp.Header["Allow"]; tc.want == 405 && (!ok || strings.Join(allow, ", ") != tc.allow) {
			t.Errorf("%s %s: Allow %q (present %v), want %q", tc.method, tc.path, allow, ok, tc.allow)
		}
	}
}
