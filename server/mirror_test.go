package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
)

// tagsMirror is an upstream that only lists tags; down when tags is nil.
type tagsMirror struct{ tags []string }

func (m tagsMirror) Manifest(context.Context, string, string) error { return nil }
func (m tagsMirror) StatBlob(context.Context, string, digest.Digest) (int64, error) {
	return 0, &registry.Error{Code: registry.CodeBlobUnknown}
}
func (m tagsMirror) FetchBlob(context.Context, string, digest.Digest) (BlobFill, error) {
	return nil, &registry.Error{Code: registry.CodeBlobUnknown}
}
func (m tagsMirror) Tags(context.Context, string) ([]string, bool, error) {
	return m.tags, m.tags != nil, nil
}

func TestMirrorTagsPaged(t *testing.T) {
	h := newHandler(t, Options{Mirror: tagsMirror{tags: []string{"v3", "v1", "latest", "v2", "v1"}}})
	for _, c := range []struct {
		query, want, next string
	}{
		{"", "latest,v1,v2,v3", ""},
		{"?n=2", "latest,v1", "last=v1"},
		{"?n=2&last=v1", "v2,v3", ""},
		{"?n=2&last=v0", "v1,v2", "last=v2"},
		{"?last=v3", "", ""},
		{"?n=0", "", ""},
	} {
		rec := serve(t, h, request{method: http.MethodGet, target: "/v2/team/app/tags/list" + c.query})
		var list tagList
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &list) != nil {
			t.Fatalf("%s: %d %s", c.query, rec.Code, rec.Body)
		}
		if got := strings.Join(list.Tags, ","); got != c.want {
			t.Errorf("%s: tags %q, want %q", c.query, got, c.want)
		}
		if link := rec.Header().Get("Link"); !strings.Contains(link, c.next) || (c.next == "") != (link == "") {
			t.Errorf("%s: Link %q, want one with %q", c.query, link, c.next)
		}
	}
	// Upstream down: the local tags, here none of a repository not held.
	h = newHandler(t, Options{Mirror: tagsMirror{}})
	wantStatus(t, serve(t, h, request{method: http.MethodGet, target: "/v2/team/app/tags/list"}), http.StatusNotFound, registry.CodeNameUnknown)
}
