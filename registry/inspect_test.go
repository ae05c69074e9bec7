package registry

import (
	"context"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func TestInspectManifest(t *testing.T) {
	desc := func(mediaType, s string) v1.Descriptor {
		return v1.Descriptor{MediaType: mediaType, Digest: digest.FromString(s), Size: int64(len(s))}
	}
	config, layer := desc(v1.MediaTypeImageConfig, "config"), desc(v1.MediaTypeImageLayer, "layer")
	foreign := desc("application/vnd.oci.image.layer.nondistributable.v1.tar", "foreign")
	subject := desc(v1.MediaTypeImageManifest, "subject")
	img := mustJSON(t, v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, Config: config, Layers: []v1.Descriptor{layer, foreign}, Subject: &subject})
	needs, err := InspectManifest(img, "")
	if err != nil {
		t.Fatal(err)
	}
	// Neither the non-distributable layer nor the subject is needed.
	if needs.MediaType != MediaTypeOCIManifest || !slices.Equal(needs.Blobs, []digest.Digest{config.Digest, layer.Digest}) || needs.Manifests != nil {
		t.Fatalf("needs of an image: %+v", needs)
	}
	idx := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{subject}})
	if needs, err = InspectManifest(idx, ""); err != nil || needs.Blobs != nil || !slices.Equal(needs.Manifests, []digest.Digest{subject.Digest}) {
		t.Fatalf("needs of an index: %+v %v", needs, err)
	}
	_, err = InspectManifest([]byte(`{"schemaVersion":1}`), "")
	wantErrCode(t, err, CodeManifestInvalid)
}

func TestStatBlob(t *testing.T) {
	reg := New(inmemory.New(), Options{})
	f := newFixture(t, reg, "app")
	d := f.blob(testLayerType, []byte("stored")).Digest
	if desc, err := reg.StatBlob(f.ctx, d); err != nil || desc.Size != 6 {
		t.Fatalf("a stored blob: %+v %v", desc, err)
	}
	_, err := reg.StatBlob(context.Background(), digest.FromString("not stored"))
	wantErrCode(t, err, CodeBlobUnknown)
	_, err = reg.StatBlob(context.Background(), "sha256:short")
	wantErrCode(t, err, CodeDigestInvalid)
}
