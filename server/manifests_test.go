package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// imageManifest pushes a config and a layer to repo and returns the bytes of
// an OCI image manifest over them.
func imageManifest(t testing.TB, h http.Handler, repo string, mutate func(*v1.Manifest)) []byte {
	t.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := randomBlob(t, 300)
	m := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: pushBlob(t, h, repo, config), Size: int64(len(config))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: pushBlob(t, h, repo, layer), Size: int64(len(layer))}},
	}
	if mutate != nil {
		mutate(&m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putManifest(t testing.TB, h http.Handler, repo, ref string, payload []byte) *httptest.ResponseRecorder {
	t.Helper()
	return serve(t, h, request{method: "PUT", target: "/v2/" + repo + "/manifests/" + ref, body: payload,
		header: map[string]string{"Content-Type": v1.MediaTypeImageManifest}})
}

func TestManifestPushPullDelete(t *testing.T) {
	h := newHandler(t, Options{})
	payload := imageManifest(t, h, "a/b", nil)
	d := digest.FromBytes(payload)

	rec := putManifest(t, h, "a/b", "v1", payload)
	wantStatus(t, rec, 201, "")
	if rec.Header().Get("Location") != "/v2/a/b/manifests/"+d.String() || rec.Header().Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT headers %v", rec.Header())
	}
	if rec.Header().Get("OCI-Subject") != "" {
		t.Fatal("OCI-Subject on a manifest without subject")
	}

	for _, ref := range []string{"v1", d.String()} {
		rec = serve(t, h, request{method: "GET", target: "/v2/a/b/manifests/" + ref})
		wantStatus(t, rec, 200, "")
		if !bytes.Equal(rec.Body.Bytes(), payload) {
			t.Fatalf("GET %s: body differs", ref)
		}
		if rec.Header().Get("Content-Type") != v1.MediaTypeImageManifest || rec.Header().Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("GET %s headers %v", ref, rec.Header())
		}
		rec = serve(t, h, request{method: "HEAD", target: "/v2/a/b/manifests/" + ref})
		wantStatus(t, rec, 200, "")
		if rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != strconv.Itoa(len(payload)) {
			t.Fatalf("HEAD %s: %d body bytes, headers %v", ref, rec.Body.Len(), rec.Header())
		}
	}

	wantStatus(t, serve(t, h, request{method: "DELETE", target: "/v2/a/b/manifests/v1"}), 202, "")
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/a/b/manifests/v1"}), 404, registry.CodeManifestUnknown)
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/a/b/manifests/" + d.String()}), 200, "")
	wantStatus(t, serve(t, h, request{method: "DELETE", target: "/v2/a/b/manifests/" + d.String()}), 202, "")
	wantStatus(t, serve(t, h, request{method: "HEAD", target: "/v2/a/b/manifests/" + d.String()}), 404, "")
}

func TestManifestTagParams(t *testing.T) {
	h := newHandler(t, Options{})
	payload := imageManifest(t, h, "a", nil)
	d := digest.FromBytes(payload)
	rec := putManifest(t, h, "a", d.String()+"?tag=one&tag=two", payload)
	wantStatus(t, rec, 201, "")
	if got := rec.Header().Values("OCI-Tag"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("OCI-Tag %q", got)
	}
	for _, tag := range []string{"one", "two"} {
		wantStatus(t, serve(t, h, request{method: "HEAD", target: "/v2/a/manifests/" + tag}), 200, "")
	}
}

func TestManifestErrors(t *testing.T) {
	h := newHandler(t, Options{})
	good := imageManifest(t, h, "a", nil)
	missingBlob := imageManifest(t, h, "a", func(m *v1.Manifest) {
		m.Layers[0].Digest = digest.FromString("never pushed")
	})
	big := bytes.Repeat([]byte(" "), registry.DefaultMaxManifestSize+1)
	tests := []struct {
		name   string
		req    request
		status int
		code   registry.Code
	}{
		{"not json", request{method: "PUT", target: "/v2/a/manifests/x", body: []byte("{nope")}, 400, registry.CodeManifestInvalid},
		{"missing blob", request{method: "PUT", target: "/v2/a/manifests/x", body: missingBlob}, 400, registry.CodeManifestBlobUnknown},
		{"digest mismatch", request{method: "PUT", target: "/v2/a/manifests/" + digest.FromString("other").String(), body: good}, 400, registry.CodeDigestInvalid},
		{"too large declared", request{method: "PUT", target: "/v2/a/manifests/x", body: big}, 413, registry.CodeManifestTooLarge},
		{"too large chunked", request{method: "PUT", target: "/v2/a/manifests/x", body: big, chunked: true}, 413, registry.CodeManifestTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.header == nil {
				tt.req.header = map[string]string{"Content-Type": v1.MediaTypeImageManifest}
			}
			wantStatus(t, serve(t, h, tt.req), tt.status, tt.code)
		})
	}
	wantStatus(t, putManifest(t, h, "a", "x", good), 201, "")
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/a/manifests/nope"}), 404, registry.CodeManifestUnknown)

	h = newHandler(t, Options{DisableDeletes: true})
	good = imageManifest(t, h, "a", nil)
	wantStatus(t, putManifest(t, h, "a", "x", good), 201, "")
	wantStatus(t, serve(t, h, request{method: "DELETE", target: "/v2/a/manifests/x"}), 405, registry.CodeUnsupported)
}

func TestReferrers(t *testing.T) {
	h := newHandler(t, Options{})
	subject := imageManifest(t, h, "a", nil)
	sd := digest.FromBytes(subject)
	wantStatus(t, putManifest(t, h, "a", "base", subject), 201, "")

	const at = "application/vnd.example.sbom"
	referrer := imageManifest(t, h, "a", func(m *v1.Manifest) {
		m.ArtifactType = at
		m.Subject = &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: sd, Size: int64(len(subject))}
	})
	rd := digest.FromBytes(referrer)
	rec := putManifest(t, h, "a", rd.String(), referrer)
	wantStatus(t, rec, 201, "")
	if rec.Header().Get("OCI-Subject") != sd.String() {
		t.Fatalf("OCI-Subject %q", rec.Header().Get("OCI-Subject"))
	}

	list := func(target string) (v1.Index, http.Header) {
		rec := serve(t, h, request{method: "GET", target: target})
		wantStatus(t, rec, 200, "")
		if rec.Header().Get("Content-Type") != v1.MediaTypeImageIndex {
			t.Fatalf("Content-Type %q", rec.Header().Get("Content-Type"))
		}
		var idx v1.Index
		if err := json.Unmarshal(rec.Body.Bytes(), &idx); err != nil {
			t.Fatal(err)
		}
		if idx.SchemaVersion != 2 || idx.MediaType != v1.MediaTypeImageIndex || idx.Manifests == nil {
			t.Fatalf("not an index: %s", rec.Body)
		}
		return idx, rec.Header()
	}
	idx, _ := list("/v2/a/referrers/" + sd.String())
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != rd || idx.Manifests[0].ArtifactType != at {
		t.Fatalf("referrers %+v", idx.Manifests)
	}
	idx, hdr := list("/v2/a/referrers/" + sd.String() + "?artifactType=" + at)
	if len(idx.Manifests) != 1 || hdr.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered: %+v, %v", idx.Manifests, hdr)
	}
	idx, _ = list("/v2/a/referrers/" + sd.String() + "?artifactType=other")
	if len(idx.Manifests) != 0 {
		t.Fatalf("filter kept %+v", idx.Manifests)
	}
	// No referrers, and no such repository: an empty index.
	idx, _ = list("/v2/a/referrers/" + rd.String())
	if len(idx.Manifests) != 0 {
		t.Fatal("referrers of a referrer")
	}
	list("/v2/nowhere/referrers/" + sd.String())
}

// TestReferrersPaged has referrers whose descriptors together pass the
// 4 MiB a client reads of one response: they come in pages joined by Link
// headers, each under that size, every referrer once, the filter kept.
func TestReferrersPaged(t *testing.T) {
	h := newHandler(t, Options{})
	subject := imageManifest(t, h, "a", nil)
	sd := digest.FromBytes(subject)
	wantStatus(t, putManifest(t, h, "a", "base", subject), 201, "")
	const at = "application/vnd.example.big"
	want := map[string]bool{}
	for i := range 7 {
		// Sent unescaped, <, > and & are a byte each: json.Marshal would
		// make each six in the listing, and a page of 4 MiB of them pass
		// the bound.
		var m v1.Manifest
		if err := json.Unmarshal(imageManifest(t, h, "a", nil), &m); err != nil {
			t.Fatal(err)
		}
		m.ArtifactType = at
		m.Subject = &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: sd, Size: int64(len(subject))}
		m.Annotations = map[string]string{"payload": strings.Repeat(strconv.Itoa(i)+"<&>", 225000)}
		referrer, err := registry.MarshalUnescaped(m)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, putManifest(t, h, "a", digest.FromBytes(referrer).String(), referrer), 201, "")
		want[digest.FromBytes(referrer).String()] = true
	}
	for _, target := range []string{"/v2/a/referrers/" + sd.String(), "/v2/a/referrers/" + sd.String() + "?artifactType=" + at} {
		pages := 0
		got := collectPages(t, h, target, func(b []byte) []string {
			if len(b) > 4<<20 {
				t.Fatalf("a page of %d bytes", len(b))
			}
			pages++
			var idx v1.Index
			if err := json.Unmarshal(b, &idx); err != nil {
				t.Fatal(err)
			}
			var ds []string
			for _, m := range idx.Manifests {
				if m.ArtifactType != at {
					t.Fatalf("referrer of type %q", m.ArtifactType)
				}
				ds = append(ds, m.Digest.String())
			}
			return ds
		})
		if len(got) != len(want) || pages < 2 {
			t.Fatalf("%s: %d referrers in %d pages, want %d in several", target, len(got), pages, len(want))
		}
		seen := map[string]bool{}
		for _, d := range got {
			if !want[d] || seen[d] {
				t.Fatalf("%s: unexpected or repeated referrer %s", target, d)
			}
			seen[d] = true
		}
	}
}

// A query that does not parse is refused whole, never acted on in part;
// a push names at most MaxTagsPerPush tags.
func TestMalformedQueriesAndTooManyTags(t *testing.T) {
	h := newHandler(t, Options{})
	payload := imageManifest(t, h, "a", nil)
	d := digest.FromBytes(payload).String()
	for _, target := range []string{
		"/v2/a/manifests/" + d + "?tag=v1&tag=v2;x",
		"/v2/a/manifests/" + d + "?tag=v1&tag=v%zz2",
	} {
		wantStatus(t, serve(t, h, request{method: "PUT", target: target, body: payload,
			header: map[string]string{"Content-Type": v1.MediaTypeImageManifest}}), 400, registry.CodeUnsupported)
	}
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/a/tags/list?n=%zz"}), 400, registry.CodeUnsupported)
	wantStatus(t, serve(t, h, request{method: "POST", target: "/v2/a/blobs/uploads/?digest=" + d + "%zz", body: []byte("x")}), 400, registry.CodeUnsupported)
	var q []string
	for i := range registry.MaxTagsPerPush + 1 {
		q = append(q, fmt.Sprintf("tag=t%d", i))
	}
	wantStatus(t, serve(t, h, request{method: "PUT", target: "/v2/a/manifests/" + d + "?" + strings.Join(q, "&"), body: payload,
		header: map[string]string{"Content-Type": v1.MediaTypeImageManifest}}), 400, registry.CodeTagInvalid)
	// Nothing of them was stored.
	wantStatus(t, serve(t, h, request{method: "GET", target: "/v2/a/manifests/" + d}), 404, registry.CodeManifestUnknown)
	// At the limit, the push goes through.
	q = q[:registry.MaxTagsPerPush]
	wantStatus(t, serve(t, h, request{method: "PUT", target: "/v2/a/manifests/" + d + "?" + strings.Join(q, "&"), body: payload,
		header: map[string]string{"Content-Type": v1.MediaTypeImageManifest}}), 201, "")
}

// HEAD agrees with GET on manifest bytes lost or damaged in the store: a
// client that took a 200 for "there" would skip the push that mends them.
func TestManifestHeadAgreesWithGetOnDamagedBytes(t *testing.T) {
	drv := inmemory.New()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := New(registry.New(drv, registry.Options{Logger: logger}), Options{Logger: logger})
	payload := imageManifest(t, h, "a", nil)
	d := digest.FromBytes(payload)
	wantStatus(t, putManifest(t, h, "a", "v1", payload), 201, "")
	blob := "/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded()
	for _, damage := range []struct {
		name   string
		do     func() error
		status int
	}{
		{"changed", func() error { return drv.PutContent(context.Background(), blob, bytes.ToUpper(payload)) }, 500},
		{"lost", func() error { return drv.Delete(context.Background(), blob) }, 404},
	} {
		if err := damage.do(); err != nil {
			t.Fatal(err)
		}
		fresh := New(registry.New(drv, registry.Options{Logger: logger}), Options{Logger: logger}) // nothing held in memory
		for _, method := range []string{"GET", "HEAD"} {
			rec := httptest.NewRecorder() // not serve: a 500 is what is wanted here
			fresh.ServeHTTP(rec, httptest.NewRequest(method, "/v2/a/manifests/v1", nil))
			if rec.Code != damage.status {
				t.Errorf("%s of a manifest whose bytes are %s: %d, want %d", method, damage.name, rec.Code, damage.status)
			}
		}
	}
}
