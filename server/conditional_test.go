package server

import (
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

// A cache holding a blob or manifest's ETag revalidates it for nothing
// (304), and a range resumed against an ETag is served only while it holds.
func TestConditionalRequests(t *testing.T) {
	h := newHandler(t, Options{})
	content := []byte("0123456789")
	d := pushBlob(t, h, "a", content)
	blob := "/v2/a/blobs/" + d.String()
	etag := `"` + d.String() + `"`
	other := `"` + digest.FromString("other").String() + `"`

	for _, tc := range []struct {
		ifNoneMatch string
		want        int
	}{
		{etag, http.StatusNotModified},
		{other + ", W/" + etag, http.StatusNotModified}, // weak comparison
		{"*", http.StatusNotModified},
		{other, http.StatusOK},
		{d.String(), http.StatusOK}, // not a quoted entity tag
	} {
		for _, method := range []string{"GET", "HEAD"} {
			rec := serve(t, h, request{method: method, target: blob, header: map[string]string{"If-None-Match": tc.ifNoneMatch}})
			if rec.Code != tc.want {
				t.Errorf("%s with If-None-Match %s: status %d, want %d", method, tc.ifNoneMatch, rec.Code, tc.want)
			}
			if rec.Code == http.StatusNotModified && (rec.Header().Get("ETag") != etag || rec.Header().Get("Docker-Content-Digest") != d.String() ||
				rec.Header().Get("Cache-Control") != "max-age=31536000") {
				t.Errorf("304 headers %v", rec.Header())
			}
		}
	}
	// Only what exists is not modified.
	missing := "/v2/a/blobs/" + digest.FromString("missing").String()
	wantStatus(t, serve(t, h, request{method: "GET", target: missing, header: map[string]string{"If-None-Match": "*"}}), 404, "BLOB_UNKNOWN")

	for _, tc := range []struct {
		ifRange string
		want    int
		body    string
	}{
		{"", http.StatusPartialContent, "234"},
		{etag, http.StatusPartialContent, "234"},
		{other, http.StatusOK, string(content)},
		{"W/" + etag, http.StatusOK, string(content)}, // If-Range compares strongly
		{"Sat, 28 Nov 2026 12:00:00 GMT", http.StatusOK, string(content)},
	} {
		hdr := map[string]string{"Range": "bytes=2-4"}
		if tc.ifRange != "" {
			hdr["If-Range"] = tc.ifRange
		}
		rec := serve(t, h, request{method: "GET", target: blob, header: hdr})
		if rec.Code != tc.want || rec.Body.String() != tc.body {
			t.Errorf("If-Range %q: %d %q, want %d %q", tc.ifRange, rec.Code, rec.Body, tc.want, tc.body)
		}
	}

	// A tag's ETag is its manifest's digest: it holds until the tag moves.
	first := imageManifest(t, h, "a", nil)
	wantStatus(t, putManifest(t, h, "a", "latest", first), 201, "")
	firstTag := `"` + digest.FromBytes(first).String() + `"`
	for _, method := range []string{"GET", "HEAD"} {
		rec := serve(t, h, request{method: method, target: "/v2/a/manifests/latest", header: map[string]string{"If-None-Match": firstTag}})
		wantStatus(t, rec, http.StatusNotModified, "")
		if rec.Header().Get("Content-Type") == "" || rec.Header().Get("Docker-Content-Digest") != digest.FromBytes(first).String() {
			t.Errorf("%s: 304 headers %v", method, rec.Header())
		}
	}
	second := imageManifest(t, h, "a", nil)
	wantStatus(t, putManifest(t, h, "a", "latest", second), 201, "")
	rec := serve(t, h, request{method: "GET", target: "/v2/a/manifests/latest", header: map[string]string{"If-None-Match": firstTag}})
	wantStatus(t, rec, http.StatusOK, "")
	if rec.Body.String() != string(second) {
		t.Error("the moved tag's GET did not send the new manifest")
	}
}

// A manifest by tag is revalidated by a cache in front at every request;
// by digest it is kept as a blob is. Answers of both kinds say so.
func TestManifestCacheControl(t *testing.T) {
	h := newHandler(t, Options{})
	payload := imageManifest(t, h, "a", nil)
	wantStatus(t, putManifest(t, h, "a", "latest", payload), 201, "")
	d := digest.FromBytes(payload).String()
	for _, tc := range []struct{ ref, want string }{{"latest", "no-cache"}, {d, blobCacheControl}} {
		for _, method := range []string{"GET", "HEAD"} {
			for _, inm := range []string{"", `"` + d + `"`} {
				rec := serve(t, h, request{method: method, target: "/v2/a/manifests/" + tc.ref, header: map[string]string{"If-None-Match": inm}})
				if rec.Code != http.StatusOK && rec.Code != http.StatusNotModified || rec.Header().Get("Cache-Control") != tc.want {
					t.Errorf("%s %s (If-None-Match %q): %d, Cache-Control %q, want %q", method, tc.ref, inm, rec.Code, rec.Header().Get("Cache-Control"), tc.want)
				}
			}
		}
	}
	// A 404 is asked again too, by tag or digest: a cache keeping it
	// would hide the push that follows.
	for _, ref := range []string{"missing", digest.FromString("missing").String()} {
		for _, method := range []string{"GET", "HEAD"} {
			rec := serve(t, h, request{method: method, target: "/v2/a/manifests/" + ref})
			if rec.Code != http.StatusNotFound || rec.Header().Get("Cache-Control") != "no-cache" {
				t.Errorf("%s of missing %s: %d, Cache-Control %q", method, ref, rec.Code, rec.Header().Get("Cache-Control"))
			}
		}
	}
}
