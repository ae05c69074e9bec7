package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// fuzzConfig is a blob the fuzzed repository holds, so that manifests
// naming it can pass validation and be stored.
const fuzzConfig = "{}"

// manifestPutCodes are the refusals Put may give a client's manifest: each
// maps to a 4xx in the server.
var manifestPutCodes = map[Code]bool{
	CodeManifestInvalid: true, CodeManifestBlobUnknown: true, CodeDigestInvalid: true,
	CodeTagInvalid: true, CodeManifestTooLarge: true,
}

func FuzzParseManifest(f *testing.F) {
	cfg := descJSON("application/vnd.oci.empty.v1+json", fuzzConfig)
	seeds := []struct{ payload, contentType string }{
		{`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `,"layers":[]}`, ""},
		{`{"schemaVersion":2,"config":` + cfg + `,"layers":[` + cfg + `],"subject":` + cfg + `,"artifactType":"a/b"}`, MediaTypeOCIManifest},
		{`{"schemaVersion":2,"manifests":[]}`, ""},
		{`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifestList + `","manifests":[]}`, MediaTypeDockerManifestList},
		{`{"schemaVersion":2,"config":` + cfg + `,"layers":[{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"sha256:` + digest.FromString("x").Encoded() + `","size":1,"urls":["https://example.com/x"]}]}`, MediaTypeOCIManifest},
		{`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:../../x","size":-1,"data":"e30="}}`, MediaTypeDockerManifest},
		{`{"schemaVersion":1}`, "application/vnd.docker.distribution.manifest.v1+prettyjws"},
		{`null`, ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.payload), s.contentType)
	}
	ctx := context.Background()
	reg := New(driver.Instrument(inmemory.New(), nil), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	repo, err := reg.Repository("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := repo.Blobs().Put(ctx, digest.FromString(fuzzConfig), bytes.NewReader([]byte(fuzzConfig))); err != nil {
		f.Fatal(err)
	}
	ms := repo.Manifests()

	f.Fuzz(func(t *testing.T, payload []byte, contentType string) {
		m, err := parseManifest(payload, contentType)
		if err != nil {
			wantErrCode(t, err, CodeManifestInvalid)
		} else {
			checkParsed(t, payload, m)
		}

		stored, perr := ms.Put(ctx, "fuzz", contentType, payload)
		if perr != nil {
			e, ok := AsError(perr)
			if !ok || !manifestPutCodes[e.Code] {
				t.Fatalf("Put refused with %v (%T), not a client error", perr, perr)
			}
			return
		}
		if err != nil {
			t.Fatalf("Put stored what parseManifest refuses: %v", err)
		}
		got, err := ms.Get(ctx, "fuzz")
		if err != nil {
			t.Fatalf("Get after Put: %v", err)
		}
		if !bytes.Equal(got.Payload, payload) || got.Descriptor.Digest != digest.FromBytes(payload) ||
			got.Descriptor.Size != int64(len(payload)) || got.Descriptor.MediaType != stored.Descriptor.MediaType {
			t.Fatalf("stored manifest differs: %+v", got.Descriptor)
		}
	})
}

// checkParsed re-reads an accepted payload and checks the structural rules
// parseManifest promises.
func checkParsed(t *testing.T, payload []byte, m *parsedManifest) {
	t.Helper()
	var doc struct {
		SchemaVersion int `json:"schemaVersion"`
	}
	if err := json.Unmarshal(payload, &doc); err != nil || doc.SchemaVersion != 2 {
		t.Fatalf("accepted a payload without schemaVersion 2 (%v)", err)
	}
	switch m.mediaType {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if m.config == nil || m.manifests != nil {
			t.Fatalf("accepted an image manifest with config %v and manifests %v", m.config, m.manifests)
		}
	case MediaTypeOCIIndex, MediaTypeDockerManifestList:
		if m.config != nil || m.layers != nil {
			t.Fatal("accepted an index with config or layers")
		}
	default:
		t.Fatalf("accepted media type %q", m.mediaType)
	}
	if m.artifactType != "" && !mediaTypeRE.MatchString(m.artifactType) {
		t.Fatalf("accepted artifactType %q", m.artifactType)
	}
	for _, r := range m.references() {
		checkDescriptor(t, r.desc)
	}
}

func checkDescriptor(t *testing.T, d v1.Descriptor) {
	t.Helper()
	if err := d.Digest.Validate(); err != nil {
		t.Fatalf("accepted descriptor digest %q: %v", d.Digest, err)
	}
	if d.Size < 0 || !mediaTypeRE.MatchString(d.MediaType) {
		t.Fatalf("accepted descriptor %+v", d)
	}
	if len(d.Data) > 0 && d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
		t.Fatalf("accepted descriptor data that does not match %s", d.Digest)
	}
}
