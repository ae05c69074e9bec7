package ops

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/lading-registry/lading/internal/imagetest"
)

// TestImmutableTags pushes with go-containerregistry to a registry whose
// v* tags are immutable: a second image under v1, and deletes of v1, get
// 403 DENIED with an OCI error body, and v1 still pulls the first image.
func TestImmutableTags(t *testing.T) {
	_, addr := serve(t, []string{"LADING_TAGS_IMMUTABLE=v*"}, "--root", t.TempDir())
	first := pushRandom(t, addr+"/ops/app:v1")
	v1, _ := name.ParseReference(addr + "/ops/app:v1")

	denied := func(what string, err error) {
		t.Helper()
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusForbidden ||
			len(terr.Errors) == 0 || terr.Errors[0].Code != transport.DeniedErrorCode {
			t.Fatalf("%s: %v, want 403 DENIED", what, err)
		}
	}
	denied("a second image under v1", remote.Write(v1, randomImage(t)))
	denied("DELETE of v1", remote.Delete(v1))
	d, _ := first.Digest()
	denied("DELETE by digest of what v1 names", remote.Delete(v1.Context().Digest(d.String())))

	// A retried push of the same image goes, and tags no pattern names move.
	if err := remote.Write(v1, first); err != nil {
		t.Fatalf("the same image under v1 again: %v", err)
	}
	pushRandom(t, addr+"/ops/app:latest")
	pushRandom(t, addr+"/ops/app:latest")

	got, err := remote.Image(v1)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Same(t, first, got)
}

// TestImmutableIndexKeepsItsChildren pushes a multi-platform index under
// an immutable tag: a DELETE of a child by digest, and of a child's layer,
// get 403 DENIED with an OCI error body, and the index and every child
// pull whole.
func TestImmutableIndexKeepsItsChildren(t *testing.T) {
	_, addr := serve(t, []string{"LADING_TAGS_IMMUTABLE=v*"}, "--root", t.TempDir())
	ref, _ := name.ParseReference(addr + "/ops/multi:v1")
	var idx v1.ImageIndex = empty.Index
	for _, arch := range []string{"amd64", "arm64"} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: randomImage(t),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	child := im.Manifests[1].Digest
	err = remote.Delete(ref.Context().Digest(child.String()))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusForbidden ||
		len(terr.Errors) == 0 || terr.Errors[0].Code != transport.DeniedErrorCode {
		t.Fatalf("DELETE of a child of v1: %v, want 403 DENIED", err)
	}
	img, _ := idx.Image(child)
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+addr+"/v2/ops/multi/blobs/"+layer.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Errors []struct{ Code string } }
	if err := json.NewDecoder(resp.Body).Decode(&body); resp.StatusCode != http.StatusForbidden || err != nil ||
		len(body.Errors) == 0 || body.Errors[0].Code != "DENIED" {
		t.Fatalf("DELETE of a layer of a child of v1: %d %+v (%v), want 403 DENIED", resp.StatusCode, body, err)
	}

	got, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	wantRaw, _ := idx.RawManifest()
	if gotRaw, err := got.RawManifest(); err != nil || !bytes.Equal(gotRaw, wantRaw) {
		t.Fatalf("v1 pulls other bytes than were pushed (%v)", err)
	}
	for _, desc := range im.Manifests {
		want, _ := idx.Image(desc.Digest)
		pulled, err := remote.Image(ref.Context().Digest(desc.Digest.String()))
		if err != nil {
			t.Fatalf("child %s: %v", desc.Digest, err)
		}
		imagetest.Same(t, want, pulled)
	}
}
