package distimport

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// tree writes a Distribution storage tree, as Distribution lays it out, in
// a temporary folder: the tests' source.
type tree struct {
	t    *testing.T
	root string // storage.filesystem.rootdirectory
}

func newTree(t *testing.T) *tree {
	return &tree{t: t, root: t.TempDir()}
}

func (tr *tree) v2(parts ...string) string {
	return filepath.Join(append([]string{tr.root, "docker", "registry", "v2"}, parts...)...)
}

func (tr *tree) write(p string, b []byte) {
	tr.t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

// blob stores bytes in the blob store and returns their descriptor.
func (tr *tree) blob(mediaType string, b []byte) v1.Descriptor {
	d := digest.FromBytes(b)
	tr.write(tr.v2("blobs", "sha256", d.Encoded()[:2], d.Encoded(), "data"), b)
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// layer stores bytes and links them into repo.
func (tr *tree) layer(repo, mediaType string, b []byte) v1.Descriptor {
	desc := tr.blob(mediaType, b)
	tr.link(repo, desc.Digest)
	return desc
}

func (tr *tree) link(repo string, d digest.Digest) {
	tr.write(tr.v2("repositories", repo, "_layers", "sha256", d.Encoded(), "link"), []byte(d))
}

// manifest stores a manifest as a revision of repo, tagged with tags.
func (tr *tree) manifest(repo string, payload []byte, tags ...string) v1.Descriptor {
	var doc struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(payload, &doc)
	desc := tr.blob(doc.MediaType, payload)
	tr.write(tr.v2("repositories", repo, "_manifests", "revisions", "sha256", desc.Digest.Encoded(), "link"), []byte(desc.Digest))
	for _, tag := range tags {
		tr.tag(repo, tag, desc.Digest)
	}
	return desc
}

func (tr *tree) tag(repo, tag string, d digest.Digest) {
	tr.write(tr.v2("repositories", repo, "_manifests", "tags", tag, "current", "link"), []byte(d))
	// The tag's history, which the import leaves alone.
	tr.write(tr.v2("repositories", repo, "_manifests", "tags", tag, "index", "sha256", d.Encoded(), "link"), []byte(d))
}

// image stores an OCI image of one layer in repo: its config, its layer
// (content makes it unique) and its manifest.
func (tr *tree) image(repo, content string, tags ...string) v1.Descriptor {
	config := tr.layer(repo, v1.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","x":"`+content+`"}`))
	layer := tr.layer(repo, v1.MediaTypeImageLayerGzip, []byte("layer "+content))
	return tr.manifest(repo, imageManifest(config, nil, layer), tags...)
}

func imageManifest(config v1.Descriptor, subject *v1.Descriptor, layers ...v1.Descriptor) []byte {
	if layers == nil {
		layers = []v1.Descriptor{}
	}
	b, _ := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: config, Layers: layers, Subject: subject})
	return b
}

func indexManifest(children ...v1.Descriptor) []byte {
	b, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: children})
	return b
}
