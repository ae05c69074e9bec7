package imagebuild

import (
	"archive/tar"
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-registry/lading/internal/imagetest"
)

var testMeta = Metadata{
	Version: "v1.2.3",
	Commit:  "0123456789abcdef0123456789abcdef01234567",
	Source:  SourceURL,
	Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
}

// testIndex assembles the default platforms' index around stand-ins for
// the binaries, which tell the platforms apart.
func testIndex(t *testing.T, meta Metadata) v1.ImageIndex {
	t.Helper()
	ps, err := ParsePlatforms(DefaultPlatforms)
	if err != nil {
		t.Fatal(err)
	}
	var bins []Binary
	for _, p := range ps {
		bins = append(bins, Binary{Platform: p, Data: []byte("lading for " + p.String())})
	}
	idx, err := Index(bins, []byte("-----BEGIN CERTIFICATE-----\n"), meta)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestDefaultPlatformsAreAmd64AndArm64(t *testing.T) {
	ps, err := ParsePlatforms(DefaultPlatforms)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if want := []string{"linux/amd64", "linux/arm64/v8"}; !slices.Equal(got, want) {
		t.Fatalf("default platforms %v, want %v", got, want)
	}
	for _, bad := range []string{"", "linux", "windows/amd64", "linux/amd64,linux/amd64", "linux/arm64,linux/arm64/v8"} {
		if _, err := ParsePlatforms(bad); err == nil {
			t.Errorf("ParsePlatforms(%q) took it", bad)
		}
	}
}

func TestIndexHoldsAnImagePerPlatform(t *testing.T) {
	idx := testIndex(t, testMeta)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests, want an OCI index of 2", im.MediaType, len(im.Manifests))
	}
	if im.Annotations["org.opencontainers.image.revision"] != testMeta.Commit {
		t.Errorf("index annotations %v lack the revision", im.Annotations)
	}
	var bases []v1.Hash
	for _, d := range im.Manifests {
		p := d.Platform
		if p == nil || p.OS != "linux" {
			t.Fatalf("manifest %s has platform %v", d.Digest, p)
		}
		if d.MediaType != types.OCIManifestSchema1 || d.ArtifactType != "" {
			// skopeo copies an index with artifactType set anew.
			t.Errorf("%s listed as %s, artifactType %q", p, d.MediaType, d.ArtifactType)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != p.OS || cf.Architecture != p.Architecture || cf.Variant != p.Variant {
			t.Errorf("%s: config says %s/%s/%s", p, cf.OS, cf.Architecture, cf.Variant)
		}
		if !cf.Created.Equal(testMeta.Created) {
			t.Errorf("%s: created %v, want the commit's time %v", p, cf.Created, testMeta.Created)
		}
		c := cf.Config
		if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"lading"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
			t.Errorf("%s: user %q, entrypoint %q, cmd %q", p, c.User, c.Entrypoint, c.Cmd)
		}
		if !slices.Contains(c.Env, "LADING_STORAGE_FILESYSTEM_ROOT=/var/lib/lading") || !slices.Contains(c.Env, "PATH=/usr/local/bin") {
			t.Errorf("%s: env %q", p, c.Env)
		}
		if _, ok := c.Volumes[DataDir]; !ok {
			t.Errorf("%s: volumes %v", p, c.Volumes)
		}
		if _, ok := c.ExposedPorts["5000/tcp"]; !ok {
			t.Errorf("%s: exposed ports %v", p, c.ExposedPorts)
		}
		for k, want := range map[string]string{
			"org.opencontainers.image.source":   SourceURL,
			"org.opencontainers.image.version":  "v1.2.3",
			"org.opencontainers.image.revision": testMeta.Commit,
			"org.opencontainers.image.created":  "2026-01-02T03:04:05Z",
		} {
			if c.Labels[k] != want {
				t.Errorf("%s: label %s = %q, want %q", p, k, c.Labels[k], want)
			}
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(layers) != 2 {
			t.Fatalf("%s: %d layers, want the base and the binary", p, len(layers))
		}
		base, _ := layers[0].Digest()
		bases = append(bases, base)
		files := tarFiles(t, layers[1])
		bin, ok := files["usr/local/bin/lading"]
		if !ok || len(files) != 1 {
			t.Fatalf("%s: binary layer holds %v", p, slices.Collect(maps.Keys(files)))
		}
		if string(bin.Data) != "lading for "+p.String() || bin.Mode != 0o755 {
			t.Errorf("%s: binary %q mode %o", p, bin.Data, bin.Mode)
		}
	}
	if bases[0] != bases[1] {
		t.Errorf("each platform has its own base layer (%s, %s): it should be one blob", bases[0], bases[1])
	}
}

func TestBaseLayer(t *testing.T) {
	files := tarFiles(t, baseLayer(t, testIndex(t, testMeta)))
	if f := files["etc/passwd"]; !bytes.Contains(f.Data, []byte("lading:x:65532:65532:")) {
		t.Errorf("/etc/passwd: %q", f.Data)
	}
	if f := files["etc/group"]; !bytes.Contains(f.Data, []byte("lading:x:65532:")) {
		t.Errorf("/etc/group: %q", f.Data)
	}
	if f := files["etc/ssl/certs/ca-certificates.crt"]; !bytes.HasPrefix(f.Data, []byte("-----BEGIN CERTIFICATE")) {
		t.Errorf("CA certificates: %q", f.Data)
	}
	if f := files["tmp/"]; f == nil || f.Mode != 0o1777 {
		t.Errorf("/tmp: %+v", f)
	}
	if f := files["var/lib/lading/"]; f == nil || f.Uid != UID || f.Gid != GID || f.Mode != 0o750 {
		t.Errorf("the data folder: %+v", f)
	}
}

// TestSameCommitSameDigest: the digest depends on the commit's metadata,
// not on when or where the image is assembled.
func TestSameCommitSameDigest(t *testing.T) {
	first, err := testIndex(t, testMeta).Digest()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a clock read anywhere would show
	second, _ := testIndex(t, testMeta).Digest()
	if first != second {
		t.Fatalf("two builds of one commit: %s and %s", first, second)
	}
	later := testMeta
	later.Created = later.Created.Add(time.Hour)
	if third, _ := testIndex(t, later).Digest(); third == first {
		t.Fatal("another commit time gave the same digest: the files are not dated by it")
	}

	var names []string
	for _, f := range tarEntries(t, baseLayer(t, testIndex(t, testMeta))) {
		names = append(names, f.Name)
		if !f.ModTime.Equal(testMeta.Created) || f.Uname != "" || f.Format != tar.FormatUSTAR {
			t.Errorf("%s: dated %v, owner name %q, format %v", f.Name, f.ModTime, f.Uname, f.Format)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
}

func TestFromGit(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE=2026-03-04T05:06:07Z", "GIT_AUTHOR_DATE=2026-03-04T05:06:07Z",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "f")
	git("commit", "-q", "-m", "one")
	git("tag", "v0.1.0")
	meta, err := FromGit(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Version != "v0.1.0" || len(meta.Commit) != 40 || !meta.Created.Equal(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)) {
		t.Fatalf("clean checkout: %+v", meta)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirty, err := FromGit(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if dirty.Version != "v0.1.0-dirty" || dirty.Commit != meta.Commit+"-dirty" {
		t.Fatalf("changed checkout: %+v", dirty)
	}
}

func tarEntries(t *testing.T, l v1.Layer) []imagetest.File {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return imagetest.Files(t, rc)
}

func tarFiles(t *testing.T, l v1.Layer) map[string]*imagetest.File {
	files := map[string]*imagetest.File{}
	for _, f := range tarEntries(t, l) {
		files[f.Name] = &f
	}
	return files
}

// baseLayer is the first layer of idx's first image.
func baseLayer(t *testing.T, idx v1.ImageIndex) v1.Layer {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return layers[0]
}
