package registry

import (
	"bytes"
	"slices"
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

// fsck of a mirror's store takes references not stored yet for what they
// are; a store that is no mirror reports them, and a mirror still reports
// a blob stored corrupt.
func TestFsckOfAMirror(t *testing.T) {
	reg := New(manifestDrivers["filesystem"](t), Options{})
	f := newFixture(t, reg, "mirror/app")
	layer := f.blob(testLayerType, randomContent(100))
	img := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIManifest,
		Config: absent(testConfigType, 50), Layers: []v1.Descriptor{layer, absent(testLayerType, 300)}}
	imgBytes := mustJSON(t, img)
	child := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromBytes(imgBytes), Size: int64(len(imgBytes))}
	idx := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex,
		Manifests: []v1.Descriptor{child, absent(MediaTypeOCIManifest, 400)}})
	for ref, payload := range map[string][]byte{"latest": idx, child.Digest.String(): imgBytes} {
		if _, err := f.ms.Fill(f.ctx, ref, "", payload); err != nil {
			t.Fatal(err)
		}
	}
	mirrorProblems := func() []string {
		var got []string
		if _, err := reg.Fsck(f.ctx, FsckOptions{Mirror: true, Problem: func(p FsckProblem) { got = append(got, p.Kind) }}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := mirrorProblems(); len(got) != 0 {
		t.Fatalf("fsck of a mirror: %v", got)
	}
	if _, got := fsckProblems(t, reg, false); len(got[ProblemMissingBlob]) != 3 {
		t.Fatalf("fsck of a store that is no mirror: %v, want 3 missing references", kinds(got))
	}
	// Bytes stored corrupt are damage on a mirror too.
	if err := reg.driver.PutContent(f.ctx, blobPath(layer.Digest), randomContent(100)); err != nil {
		t.Fatal(err)
	}
	if got := mirrorProblems(); !slices.Equal(got, []string{ProblemCorruptBlob}) {
		t.Fatalf("fsck of a mirror with a corrupt layer: %v", got)
	}
}
