package registry

import (
	"errors"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// A blob DELETE takes a repository's link, not the bytes a kept manifest
// uses: a collection keeps them, on every backend, whether the image is
// tagged or an index's child, and the image pulls again once fsck's repair
// links them back, or once the layer is pushed again. Before, the
// collector marked blobs by the links left, and took them.
func TestGCKeepsTheBytesOfUnlinkedBlobs(t *testing.T) {
	for name, mk := range manifestDrivers {
		t.Run(name, func(t *testing.T) {
			reg := New(mk(t), Options{})
			f := newFixture(t, reg, "app")
			unlink := func(d digest.Digest) {
				t.Helper()
				if err := f.repo.Blobs().Delete(f.ctx, d); err != nil {
					t.Fatal(err)
				}
			}
			img := f.image()
			f.put("v1", mustJSON(t, img))
			child := f.image()
			childM := f.put(digest.FromBytes(mustJSON(t, child)).String(), mustJSON(t, child))
			f.put("multi", mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex,
				Manifests: []v1.Descriptor{childM.Descriptor}}))
			content := randomContent(64)
			again := f.image()
			again.Layers = []v1.Descriptor{f.blob(testLayerType, content)}
			f.put("v2", mustJSON(t, again))
			unlinked := []digest.Digest{img.Config.Digest, img.Layers[0].Digest, child.Layers[0].Digest, again.Layers[0].Digest}
			for _, d := range unlinked {
				unlink(d)
			}

			collect(t, reg, quickGC(true))
			for _, d := range unlinked {
				if !hasBlob(t, reg, d) {
					t.Fatalf("blob %s collected though a kept manifest uses it", d)
				}
				if hasLink(t, reg, "app", d) {
					t.Fatalf("the collector linked %s again: its delete was asked for", d)
				}
			}
			for _, tag := range []string{"v1", "multi", "v2"} {
				if err := pullable(f.ctx, f.repo, tag); !errors.Is(err, ErrBlobUnknown) {
					t.Fatalf("%s pulled with a layer unlinked: %v", tag, err)
				}
			}

			// The layer pushed again finds its bytes stored and is linked.
			f.blob(testLayerType, content)
			mustPullable(t, f, "v2")

			_, got := fsckProblems(t, reg, false)
			if !slices.Equal(kinds(got), []string{ProblemUnlinkedBlob, ProblemUnlinkedBlob, ProblemUnlinkedBlob}) {
				t.Fatalf("fsck found %v", got)
			}
			rep, got := fsckProblems(t, reg, true)
			if rep.Problems != 3 || rep.Repaired != 3 {
				t.Fatalf("fsck --repair: %+v %v", rep, got)
			}
			for _, tag := range []string{"v1", "multi", "v2"} {
				mustPullable(t, f, tag)
			}
			if rep := collect(t, reg, quickGC(true)); rep.BlobsRemoved+rep.LinksRemoved+rep.ManifestsRemoved != 0 {
				t.Fatalf("a run after the repair removed %+v", rep)
			}
			for _, tag := range []string{"v1", "multi", "v2"} {
				mustPullable(t, f, tag)
			}
		})
	}
}
