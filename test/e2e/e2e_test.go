// Package e2e drives a real `lading serve` with go-containerregistry, the
// client library behind crane, ko and many registries' own tests.
package e2e

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-registry/lading/internal/imagetest"
	"github.com/lading-registry/lading/internal/testserver"
)

// start runs lading for one test and returns its host:port.
func start(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs lading")
	}
	return testserver.Start(t, testserver.Options{}).Addr
}

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestImageRoundTrip(t *testing.T) {
	addr := start(t)
	docker, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	oci := mutate.MediaType(docker, types.OCIManifestSchema1)
	oci = mutate.ConfigMediaType(oci, types.OCIConfigJSON)
	for _, tc := range []struct {
		ref string
		img v1.Image
	}{
		{addr + "/e2e/docker:v1", docker},
		{addr + "/e2e/nested/oci:v1", oci},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			r := ref(t, tc.ref)
			if err := remote.Write(r, tc.img); err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Get(r)
			if err != nil {
				t.Fatal(err)
			}
			wantType, _ := tc.img.MediaType()
			if desc.MediaType != wantType {
				t.Fatalf("media type %q, want %q", desc.MediaType, wantType)
			}
			got, err := desc.Image()
			if err != nil {
				t.Fatal(err)
			}
			imagetest.Same(t, tc.img, got)
		})
	}
}

func TestIndexRoundTrip(t *testing.T) {
	addr := start(t)
	oci, err := random.Index(512, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	docker := mutate.IndexMediaType(oci, types.DockerManifestList)
	for _, tc := range []struct {
		repo string
		idx  v1.ImageIndex
	}{
		{"e2e/oci-index", oci},
		{"e2e/docker-list", docker},
	} {
		t.Run(tc.repo, func(t *testing.T) {
			r := ref(t, addr+"/"+tc.repo+":multi")
			if err := remote.WriteIndex(r, tc.idx); err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Get(r)
			if err != nil {
				t.Fatal(err)
			}
			wantType, _ := tc.idx.MediaType()
			want, _ := tc.idx.RawManifest()
			if desc.MediaType != wantType || !bytes.Equal(desc.Manifest, want) {
				t.Fatalf("index differs: %s\nwant %s\ngot  %s", desc.MediaType, want, desc.Manifest)
			}
			im, _ := tc.idx.IndexManifest()
			for _, child := range im.Manifests {
				wantImg, err := tc.idx.Image(child.Digest)
				if err != nil {
					t.Fatal(err)
				}
				gotImg, err := remote.Image(ref(t, addr+"/"+tc.repo+"@"+child.Digest.String()))
				if err != nil {
					t.Fatal(err)
				}
				imagetest.Same(t, wantImg, gotImg)
			}
		})
	}
}

// countingTransport records the requests a client makes.
type countingTransport struct {
	mu   sync.Mutex
	reqs []string // "METHOD path?query"
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.URL.RequestURI())
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count(method, contains string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.reqs {
		if strings.HasPrefix(r, method+" ") && strings.Contains(r, contains) {
			n++
		}
	}
	return n
}

func TestCopyMountsBlobs(t *testing.T) {
	addr := start(t)
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := addr+"/team/source:v1", addr+"/other/dest:v1"
	if err := remote.Write(ref(t, src), img); err != nil {
		t.Fatal(err)
	}
	spy := &countingTransport{}
	if err := crane.Copy(src, dst, crane.WithTransport(spy)); err != nil {
		t.Fatal(err)
	}
	// Two layers and the config are mounted; no byte is uploaded.
	if n := spy.count("POST", "mount="); n != 3 {
		t.Errorf("%d mount requests, want 3: %q", n, spy.reqs)
	}
	if n := spy.count("PATCH", "") + spy.count("PUT", "/blobs/uploads/"); n != 0 {
		t.Errorf("%d upload requests during a copy: %q", n, spy.reqs)
	}
	srcDigest, err := crane.Digest(src)
	if err != nil {
		t.Fatal(err)
	}
	dstDigest, err := crane.Digest(dst)
	if err != nil || dstDigest != srcDigest {
		t.Fatalf("copied digest %s, want %s (%v)", dstDigest, srcDigest, err)
	}
	got, err := remote.Image(ref(t, dst))
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Same(t, img, got)
}

func TestTagsAndCatalog(t *testing.T) {
	addr := start(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tags := []string{"1.0", "1.1", "latest", "v2"}
	for _, tag := range tags {
		if err := remote.Write(ref(t, addr+"/lib/app:"+tag), img); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(ref(t, addr+"/lib/tool:x"), img); err != nil {
		t.Fatal(err)
	}
	got, err := crane.ListTags(addr + "/lib/app")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, tags) {
		t.Fatalf("tags %v, want %v", got, tags)
	}
	repos, err := crane.Catalog(addr)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(repos, []string{"lib/app", "lib/tool"}) {
		t.Fatalf("catalog %v", repos)
	}
}

func TestDelete(t *testing.T) {
	addr := start(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"keep", "drop"} {
		if err := remote.Write(ref(t, addr+"/del/app:"+tag), img); err != nil {
			t.Fatal(err)
		}
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	if err := crane.Delete(addr + "/del/app:drop"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, addr+"/del/app:drop")
	if _, err := crane.Head(addr + "/del/app:keep"); err != nil {
		t.Fatalf("deleting one tag lost another: %v", err)
	}

	byDigest := addr + "/del/app@" + d.String()
	if err := crane.Delete(byDigest); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, byDigest)
	wantNotFound(t, addr+"/del/app:keep")
}

func wantNotFound(t *testing.T, s string) {
	t.Helper()
	_, err := remote.Get(ref(t, s))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Fatalf("%s after delete: %v, want 404", s, err)
	}
}
