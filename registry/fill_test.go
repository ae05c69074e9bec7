package registry

import (
	"bytes"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// absent describes bytes the repository does not hold.
func absent(mediaType string, n int) v1.Descriptor {
	content := randomContent(n)
	return v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(content), Size: int64(n)}
}

// A mirror stores an index before its children and an image before its
// layers; a push may not, and a collection keeps what is there of both.
func TestFillStoresWhatReferencesAreMissingAndGCKeepsIt(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "mirror/app")
		layerBytes := randomContent(200)
		layer := v1.Descriptor{MediaType: testLayerType, Digest: digest.FromBytes(layerBytes), Size: int64(len(layerBytes))}
		img := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIManifest,
			Config: absent(testConfigType, 50), Layers: []v1.Descriptor{layer, absent(testLayerType, 300)}}
		imgBytes := mustJSON(t, img)
		child := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromBytes(imgBytes), Size: int64(len(imgBytes))}
		idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex,
			Manifests: []v1.Descriptor{child, absent(MediaTypeOCIManifest, 400)}}
		idxBytes := mustJSON(t, idx)

		_, err := f.ms.Put(f.ctx, "latest", "", idxBytes)
		wantErrCode(t, err, CodeManifestBlobUnknown)
		if _, err := f.ms.Fill(f.ctx, "latest", "", idxBytes); err != nil {
			t.Fatalf("fill index: %v", err)
		}
		_, err = f.ms.Put(f.ctx, child.Digest.String(), "", imgBytes)
		wantErrCode(t, err, CodeManifestBlobUnknown)
		if _, err := f.ms.Fill(f.ctx, child.Digest.String(), "", imgBytes); err != nil {
			t.Fatalf("fill image: %v", err)
		}
		if _, err := f.repo.Blobs().Put(f.ctx, layer.Digest, bytes.NewReader(layerBytes)); err != nil {
			t.Fatal(err)
		}

		rep := collect(t, reg, quickGC(true))
		if rep.ManifestsRemoved+rep.BlobsRemoved != 0 {
			t.Fatalf("a mirror's content collected: %+v", rep)
		}
		for _, ref := range []string{"latest", child.Digest.String()} {
			m, err := f.ms.Get(f.ctx, ref)
			if err != nil {
				t.Fatalf("get %s after gc: %v", ref, err)
			}
			if want := map[string][]byte{"latest": idxBytes}[ref]; want != nil && !bytes.Equal(m.Payload, want) {
				t.Fatalf("%s not byte-exact", ref)
			}
		}
		if _, err := f.repo.Blobs().Stat(f.ctx, layer.Digest); err != nil {
			t.Fatalf("layer after gc: %v", err)
		}

		// Untagged, the index goes, and with it what only it kept.
		if err := f.ms.Delete(f.ctx, "latest"); err != nil {
			t.Fatal(err)
		}
		rep = collect(t, reg, quickGC(true))
		if rep.ManifestsRemoved != 2 || hasBlob(t, reg, layer.Digest) {
			t.Fatalf("untagged mirror content kept: %+v", rep)
		}
	})
}
