package migration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/imagetest"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// pushed is what the test put into Distribution, to find again in Lading.
type pushed struct {
	images  map[string]v1.Image      // by repo:tag
	indexes map[string]v1.ImageIndex // by repo:tag
	tags    map[string][]string      // by repository
	// artifact is an SBOM-like artifact whose subject is images["mig/app:v1"].
	artifact     []byte
	artifactRepo string
}

const sbomType = "application/vnd.example.sbom.v1+json"

// pushToDistribution pushes an OCI image under two tags, the same image into
// a second (nested) repository, a Docker schema 2 image, a multi-platform
// index holding another index, and an untagged artifact whose subject is
// the OCI image.
func pushToDistribution(t *testing.T, addr string) pushed {
	t.Helper()
	p := pushed{images: map[string]v1.Image{}, indexes: map[string]v1.ImageIndex{}, tags: map[string][]string{}}
	docker := must[v1.Image](t)(random.Image(64<<10, 2))
	oci := mutate.ConfigMediaType(mutate.MediaType(must[v1.Image](t)(random.Image(64<<10, 3)), types.OCIManifestSchema1), types.OCIConfigJSON)
	inner := must[v1.ImageIndex](t)(random.Index(4<<10, 1, 2))
	multi := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: inner},
		mutate.IndexAddendum{Add: oci, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	p.images["mig/app:v1"] = oci
	p.images["mig/app:latest"] = oci
	p.images["mig/team/copy:v1"] = oci
	p.images["mig/docker:v2"] = docker
	p.indexes["mig/multi:v1"] = multi
	for tagged, img := range p.images {
		if err := remote.Write(ref(t, addr+"/"+tagged), img); err != nil {
			t.Fatalf("pushing %s to Distribution: %v", tagged, err)
		}
	}
	if err := remote.WriteIndex(ref(t, addr+"/mig/multi:v1"), multi); err != nil {
		t.Fatalf("pushing the index to Distribution: %v", err)
	}
	p.tags = map[string][]string{"mig/app": {"latest", "v1"}, "mig/team/copy": {"v1"}, "mig/docker": {"v2"}, "mig/multi": {"v1"}}

	// The artifact goes by plain HTTP: a client library falls back to the
	// referrers tag scheme against Distribution, and the point here is
	// Distribution's own storage of a subject.
	p.artifactRepo = "mig/app"
	repo := must[name.Reference](t)(name.ParseReference(addr + "/mig/app")).Context()
	config := static.NewLayer([]byte("{}"), types.MediaType(ocispec.MediaTypeEmptyJSON))
	sbom := static.NewLayer([]byte(`{"spdxVersion":"SPDX-2.3"}`), types.MediaType("application/spdx+json"))
	for _, l := range []v1.Layer{config, sbom} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	subject := descriptorOf(t, oci)
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: sbomType,
		Config:       layerDescriptor(t, config),
		Layers:       []ocispec.Descriptor{layerDescriptor(t, sbom)},
		Subject:      &subject,
	}
	m.SchemaVersion = 2
	p.artifact = must[[]byte](t)(json.Marshal(m))
	d := artifactDigest(t, p.artifact)
	req := must[*http.Request](t)(http.NewRequest(http.MethodPut, "http://"+addr+"/v2/mig/app/manifests/"+d.String(), bytes.NewReader(p.artifact)))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	resp := must[*http.Response](t)(http.DefaultClient.Do(req))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("Distribution answered the artifact's push with %s", resp.Status)
	}
	return p
}

func artifactDigest(t *testing.T, payload []byte) v1.Hash {
	t.Helper()
	h, _, err := v1.SHA256(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func descriptorOf(t *testing.T, img v1.Image) ocispec.Descriptor {
	t.Helper()
	mt := must[types.MediaType](t)(img.MediaType())
	return ocispec.Descriptor{MediaType: string(mt), Digest: digestOf(t, must[v1.Hash](t)(img.Digest())), Size: must[int64](t)(img.Size())}
}

func layerDescriptor(t *testing.T, l v1.Layer) ocispec.Descriptor {
	t.Helper()
	mt := must[types.MediaType](t)(l.MediaType())
	return ocispec.Descriptor{MediaType: string(mt), Digest: digestOf(t, must[v1.Hash](t)(l.Digest())), Size: must[int64](t)(l.Size())}
}

// The summary line of a run that changed nothing.
var nothingNew = regexp.MustCompile(`(?m)^imported 4 repositories from .*: blobs 0 copied \(0 B\), 0 linked, \d+ present, 0 skipped; manifests 0 added, \d+ present, 0 skipped; tags 0 set, 5 present, 0 skipped; 0 problems$`)

// TestImportFromDistribution pushes to a real Distribution, imports its
// storage into a fresh Lading store, on a file system and on S3, and pulls
// everything back from a real lading serve; then imports again beside the
// server, which finds nothing new.
func TestImportFromDistribution(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Distribution and lading")
	}
	distRoot := t.TempDir()
	dist := startDistribution(t, distRoot)
	want := pushToDistribution(t, dist.addr)
	dist.stop()

	t.Run("filesystem", func(t *testing.T) {
		root := t.TempDir()
		importAndPull(t, distRoot, want, []string{"--root", root}, nil, testserver.Options{Root: root})
	})
	t.Run("s3", func(t *testing.T) {
		env := testserver.S3Env(testenv.S3(t))
		importAndPull(t, distRoot, want, nil, env, testserver.Options{Env: env})
	})
}

// importAndPull imports distRoot into the store that args and env name,
// serves that store with opts, and checks that it gives back want.
func importAndPull(t *testing.T, distRoot string, want pushed, args, env []string, opts testserver.Options) {
	stdout, stderr, code := ladingImport(t, env, append(args, distRoot)...)
	if code != 0 || stderr != "" {
		t.Fatalf("lading import exited %d:\n%s%s", code, stdout, stderr)
	}
	for _, line := range []string{
		"mig/app: blobs 6 copied", // the image's 3 layers and config, the artifact's 2 blobs
		"mig/team/copy: blobs 0 copied (0 B), 4 linked, 0 present, 0 skipped; manifests 1 added",
		"mig/multi: ",
		"mig/docker: ",
		"; 0 problems",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("the import's output lacks %q:\n%s", line, stdout)
		}
	}

	srv := testserver.Start(t, opts)
	for tagged, img := range want.images {
		got, err := remote.Image(ref(t, srv.Addr+"/"+tagged))
		if err != nil {
			t.Fatalf("pulling %s from Lading: %v", tagged, err)
		}
		imagetest.Same(t, img, got)
	}
	for tagged, idx := range want.indexes {
		sameIndex(t, srv.Addr, tagged, idx)
	}
	for repo, tags := range want.tags {
		got, err := remote.List(ref(t, srv.Addr+"/"+repo).Context())
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, tags) {
			t.Errorf("tags of %s: %v, want %v", repo, got, tags)
		}
	}
	checkArtifact(t, srv.Addr, want)

	// Again, beside the server: everything is there already.
	stdout, stderr, code = ladingImport(t, env, append(args, distRoot)...)
	if code != 0 || stderr != "" || !nothingNew.MatchString(stdout) {
		t.Fatalf("a second import exited %d and did not say it found everything present:\n%s%s", code, stdout, stderr)
	}
}

// sameIndex checks that Lading serves idx under tagged, and every manifest
// under it, nested indexes' included, byte for byte.
func sameIndex(t *testing.T, addr, tagged string, idx v1.ImageIndex) {
	t.Helper()
	r := ref(t, addr+"/"+tagged)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatalf("pulling %s from Lading: %v", tagged, err)
	}
	raw := must[[]byte](t)(idx.RawManifest())
	mt := must[types.MediaType](t)(idx.MediaType())
	if !bytes.Equal(desc.Manifest, raw) || desc.MediaType != mt {
		t.Fatalf("%s differs:\nwant %s %s\ngot  %s %s", tagged, mt, raw, desc.MediaType, desc.Manifest)
	}
	repo := r.Context().String()
	for _, child := range must[*v1.IndexManifest](t)(idx.IndexManifest()).Manifests {
		at := strings.TrimPrefix(repo, addr+"/") + "@" + child.Digest.String()
		if child.MediaType.IsIndex() {
			sameIndex(t, addr, at, must[v1.ImageIndex](t)(idx.ImageIndex(child.Digest)))
			continue
		}
		got, err := remote.Image(ref(t, addr+"/"+at))
		if err != nil {
			t.Fatalf("pulling %s from Lading: %v", at, err)
		}
		imagetest.Same(t, must[v1.Image](t)(idx.Image(child.Digest)), got)
	}
}

// checkArtifact checks that the untagged artifact came over byte for byte,
// and that Lading lists it among its subject's referrers.
func checkArtifact(t *testing.T, addr string, want pushed) {
	t.Helper()
	d := artifactDigest(t, want.artifact)
	desc, err := remote.Get(ref(t, addr+"/"+want.artifactRepo+"@"+d.String()))
	if err != nil {
		t.Fatalf("pulling the artifact from Lading: %v", err)
	}
	if !bytes.Equal(desc.Manifest, want.artifact) {
		t.Fatalf("the artifact differs:\nwant %s\ngot  %s", want.artifact, desc.Manifest)
	}
	subject := must[v1.Hash](t)(want.images["mig/app:v1"].Digest())
	sd := must[name.Digest](t)(name.NewDigest(addr + "/" + want.artifactRepo + "@" + subject.String()))
	idx, err := remote.Referrers(sd, remote.WithReferrersTagFallback(false))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range must[*v1.IndexManifest](t)(idx.IndexManifest()).Manifests {
		if r.Digest == d && r.ArtifactType == sbomType {
			return
		}
	}
	t.Fatalf("Lading does not list the artifact %s among the referrers of %s", d, subject)
}
