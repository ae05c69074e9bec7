package distimport

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// run imports tr into reg and returns the report and the problems met.
func run(t *testing.T, reg *registry.Registry, tr *tree, opts Options) (Report, []Problem) {
	t.Helper()
	src, err := Open(tr.root)
	if err != nil {
		t.Fatal(err)
	}
	var problems []Problem
	opts.Problem = func(p Problem) { problems = append(problems, p) }
	rep, err := Import(context.Background(), reg, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problems != len(problems) {
		t.Fatalf("report counts %d problems, %d were told", rep.Problems, len(problems))
	}
	return rep, problems
}

func newRegistry() *registry.Registry { return registry.New(inmemory.New(), registry.Options{}) }

func repo(t *testing.T, reg *registry.Registry, name string) *registry.Repository {
	t.Helper()
	r, err := reg.Repository(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantManifest fails unless repository name serves payload under ref.
func wantManifest(t *testing.T, reg *registry.Registry, name, ref string, payload []byte) {
	t.Helper()
	m, err := repo(t, reg, name).Manifests().Get(context.Background(), ref)
	if err != nil {
		t.Fatalf("%s:%s: %v", name, ref, err)
	}
	if string(m.Payload) != string(payload) {
		t.Fatalf("%s:%s is\n%s\nnot\n%s", name, ref, m.Payload, payload)
	}
}

func TestImport(t *testing.T) {
	tr := newTree(t)
	img := tr.image("team/app", "one", "v1", "latest")
	untagged := tr.image("team/app", "two")
	// An index holding an index, children before parents nowhere in the
	// source's order (digests sort as they will).
	arm := tr.image("team/app", "arm")
	inner := tr.manifest("team/app", indexManifest(arm, untagged))
	outer := tr.manifest("team/app", indexManifest(inner, img), "multi")
	// A referrer of a subject the source does not hold, and one of img.
	sbom := tr.layer("team/app", "application/spdx+json", []byte("sbom"))
	empty := tr.layer("team/app", "application/vnd.oci.empty.v1+json", []byte("{}"))
	gone := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("gone"), Size: 10}
	orphan := tr.manifest("team/app", imageManifest(empty, &gone, sbom))
	sig := tr.manifest("team/app", imageManifest(empty, &img, sbom))
	// The same image in a repository of its own, whose blobs are then
	// linked rather than copied; and one with only an upload in progress.
	tr.image("team", "one", "v1")
	tr.write(tr.v2("repositories", "team", "_uploads", "0d5a", "data"), []byte("half a blob"))
	tr.write(tr.v2("repositories", "uploading", "_uploads", "0d5a", "startedat"), []byte("2024-01-01T00:00:00Z"))

	reg := newRegistry()
	var done []string
	rep, problems := run(t, reg, tr, Options{Done: func(r RepositoryReport) { done = append(done, r.Name) }})
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if want := []string{"team", "team/app", "uploading"}; !slices.Equal(done, want) {
		t.Fatalf("repositories %v, want %v", done, want)
	}
	want := RepositoryReport{
		Blobs:     Counts{Added: 8, Linked: 2},
		Manifests: Counts{Added: 8},
		Tags:      Counts{Added: 4},
	}
	got := rep.Total
	got.Name, got.Bytes = "", 0
	if got != want || rep.Total.Bytes == 0 {
		t.Fatalf("totals %+v, want %+v", rep.Total, want)
	}
	for _, m := range []struct {
		repo, ref string
		desc      v1.Descriptor
	}{
		{"team/app", "v1", img}, {"team/app", "latest", img}, {"team/app", "multi", outer},
		{"team/app", inner.Digest.String(), inner}, {"team/app", untagged.Digest.String(), untagged},
		{"team/app", orphan.Digest.String(), orphan}, {"team", "v1", img},
	} {
		payload, err := os.ReadFile(tr.v2("blobs", "sha256", m.desc.Digest.Encoded()[:2], m.desc.Digest.Encoded(), "data"))
		if err != nil {
			t.Fatal(err)
		}
		wantManifest(t, reg, m.repo, m.ref, payload)
	}
	refs, _, err := repo(t, reg, "team/app").Manifests().ReferrersPage(context.Background(), img.Digest, "", "")
	if err != nil || len(refs) != 1 || refs[0].Digest != sig.Digest {
		t.Fatalf("referrers of the image: %v %v, want %s", refs, err, sig.Digest)
	}
	if names, _, _ := reg.Catalog(context.Background(), "", 10); !slices.Equal(names, []string{"team", "team/app"}) {
		t.Fatalf("catalog %v: a repository with nothing but an upload is not one to make", names)
	}

	// Again: everything is there, nothing is read or written.
	rep, problems = run(t, reg, tr, Options{})
	if len(problems) > 0 || rep.Total.Blobs.Added+rep.Total.Blobs.Linked+rep.Total.Manifests.Added+rep.Total.Tags.Added > 0 ||
		rep.Total.Blobs.Present != 10 || rep.Total.Manifests.Present != 8 || rep.Total.Tags.Present != 4 {
		t.Fatalf("a second import: %+v %v", rep.Total, problems)
	}
}

func TestImportSkipsWhatCannotBeImported(t *testing.T) {
	tr := newTree(t)
	good := tr.image("app", "good", "good")
	// A layer whose bytes rotted on disk, and the image, index and tag
	// that need it.
	config := tr.layer("app", v1.MediaTypeImageConfig, []byte(`{"os":"linux"}`))
	rotten := tr.layer("app", v1.MediaTypeImageLayer, []byte("the right bytes"))
	tr.write(tr.v2("blobs", "sha256", rotten.Digest.Encoded()[:2], rotten.Digest.Encoded(), "data"), []byte("the wrong bytes"))
	bad := tr.manifest("app", imageManifest(config, nil, rotten), "bad")
	list := tr.manifest("app", indexManifest(good, bad), "list")
	// A layer linked whose bytes are gone.
	missing := digest.FromString("missing")
	tr.link("app", missing)
	// A schema 1 manifest, tagged.
	schema1 := tr.manifest("app", []byte(`{"schemaVersion":1,"name":"app","tag":"old","architecture":"amd64","fsLayers":[],"history":[]}`), "old")

	reg := newRegistry()
	rep, problems := run(t, reg, tr, Options{})
	wantProblems := map[string]string{
		"blob " + rotten.Digest.String():      "do not match the digest",
		"blob " + missing.String():            "missing from the source",
		"manifest " + bad.Digest.String():     "needs blob " + rotten.Digest.String(),
		"manifest " + list.Digest.String():    "needs manifest " + bad.Digest.String(),
		"manifest " + schema1.Digest.String(): "schema 1",
		"tag bad":                             "not imported",
		"tag list":                            "not imported",
		"tag old":                             "not imported",
	}
	for _, p := range problems {
		if want, ok := wantProblems[p.What]; !ok || p.Repository != "app" || !strings.Contains(p.Err.Error(), want) {
			t.Errorf("unexpected problem %s", p)
		}
		delete(wantProblems, p.What)
	}
	for what, err := range wantProblems {
		t.Errorf("no problem told for %s (%s)", what, err)
	}
	if rep.Total.Blobs.Failed != 2 || rep.Total.Manifests.Failed != 3 || rep.Total.Tags.Failed != 3 {
		t.Fatalf("totals %+v", rep.Total)
	}
	// What is whole came in; the rotten bytes did not.
	wantManifest(t, reg, "app", "good", mustRead(t, tr, good.Digest))
	if _, err := reg.StatBlob(context.Background(), rotten.Digest); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("the rotten blob: %v, want BLOB_UNKNOWN", err)
	}
}

func mustRead(t *testing.T, tr *tree, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(tr.v2("blobs", "sha256", d.Encoded()[:2], d.Encoded(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportDryRun(t *testing.T) {
	tr := newTree(t)
	tr.image("app", "one", "v1")
	rotten := tr.layer("app", v1.MediaTypeImageLayer, []byte("the right bytes"))
	tr.write(tr.v2("blobs", "sha256", rotten.Digest.Encoded()[:2], rotten.Digest.Encoded(), "data"), []byte("the wrong bytes"))
	reg := newRegistry()
	// A blob the registry holds for another repository would be linked.
	other := repo(t, reg, "other").Blobs()
	layer := []byte("layer one")
	if _, err := other.Put(context.Background(), digest.FromBytes(layer), strings.NewReader(string(layer))); err != nil {
		t.Fatal(err)
	}

	rep, problems := run(t, reg, tr, Options{DryRun: true})
	if len(problems) != 1 || problems[0].What != "blob "+rotten.Digest.String() {
		t.Fatalf("problems %v, want the rotten blob's", problems)
	}
	if want := (Counts{Added: 1, Linked: 1, Failed: 1}); rep.Total.Blobs != want || rep.Total.Manifests.Added != 1 || rep.Total.Tags.Added != 1 || !rep.DryRun {
		t.Fatalf("totals %+v", rep.Total)
	}
	if names, _, _ := reg.Catalog(context.Background(), "", 10); !slices.Equal(names, []string{"other"}) {
		t.Fatalf("a dry run wrote: the catalog is %v", names)
	}
}

func TestImportRepositories(t *testing.T) {
	tr := newTree(t)
	for _, name := range []string{"team/app", "team/app/sub", "team/web", "other"} {
		tr.image(name, name, "v1")
	}
	reg := newRegistry()
	var done []string
	run(t, reg, tr, Options{Repositories: []string{"team/*", "other"}, Done: func(r RepositoryReport) { done = append(done, r.Name) }})
	if want := []string{"other", "team/app", "team/web"}; !slices.Equal(done, want) {
		t.Fatalf("imported %v, want %v (a * does not cross a /)", done, want)
	}
	done = nil
	run(t, newRegistry(), tr, Options{Repositories: []string{"team/**"}, Done: func(r RepositoryReport) { done = append(done, r.Name) }})
	if want := []string{"team/app", "team/app/sub", "team/web"}; !slices.Equal(done, want) {
		t.Fatalf("imported %v, want %v (a ** does)", done, want)
	}
	src, _ := Open(tr.root)
	if _, err := Import(context.Background(), reg, src, Options{Repositories: []string{"team/["}}); err == nil {
		t.Fatal("a malformed pattern was taken")
	}
}

func TestImportInterrupted(t *testing.T) {
	tr := newTree(t)
	tr.image("a", "a", "v1")
	tr.image("b", "b", "v1")
	src, err := Open(tr.root)
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	rep, err := Import(ctx, reg, src, Options{Done: func(RepositoryReport) { cancel() }})
	if !errors.Is(err, context.Canceled) || rep.Repositories != 1 {
		t.Fatalf("an interrupted import: %v after %d repositories", err, rep.Repositories)
	}
	// The next run goes on from there.
	rep, problems := run(t, reg, tr, Options{})
	if len(problems) > 0 || rep.Total.Manifests.Present != 1 || rep.Total.Manifests.Added != 1 {
		t.Fatalf("the next run: %+v %v", rep.Total, problems)
	}
}

// TestImportStopsMidRepository checks that a cancelled context stops a
// repository's copies, although the storage's writes do not heed it.
func TestImportStopsMidRepository(t *testing.T) {
	tr := newTree(t)
	tr.image("a", "a", "v1")
	src, err := Open(tr.root)
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry()
	im := &importer{reg: reg, src: src}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := im.repository(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled import of a repository: %v", err)
	}
	if names, _, _ := reg.Catalog(context.Background(), "", 10); len(names) > 0 {
		t.Fatalf("a cancelled import wrote %v", names)
	}
}

func TestOpen(t *testing.T) {
	tr := newTree(t)
	tr.image("app", "one", "v1")
	for _, dir := range []string{tr.root, tr.v2()} {
		src, err := Open(dir)
		if err != nil || src.Dir != tr.v2() {
			t.Fatalf("Open(%s): %v, %v", dir, src, err)
		}
	}
	lading := t.TempDir()
	for _, d := range []string{"blobs", "repositories", "catalog"} {
		if err := os.Mkdir(lading+"/"+d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for dir, want := range map[string]string{
		t.TempDir():            "holds no Distribution storage",
		lading:                 "is a Lading store",
		tr.v2("blobs"):         "holds no Distribution storage",
		tr.root + "/not-there": "no such file",
	} {
		if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s): %v, want %q", dir, err, want)
		}
	}
}

// A tag immutable in Lading and naming another manifest there is not
// moved, and holds back none of the tags pushed with it; a dry run says
// the same.
func TestImportKeepsImmutableTags(t *testing.T) {
	rules, _ := glob.ParseTagRules("v*")
	reg := registry.New(inmemory.New(), registry.Options{ImmutableTags: rules})
	first := newTree(t)
	a := first.image("app", "A", "v1")
	run(t, reg, first, Options{})

	tr := newTree(t)
	b := tr.image("app", "B", "v1", "latest")
	dry, _ := run(t, reg, tr, Options{DryRun: true})
	rep, problems := run(t, reg, tr, Options{})
	ms := repo(t, reg, "app").Manifests()
	if got, err := ms.Stat(context.Background(), "latest"); err != nil || got.Digest != b.Digest {
		t.Errorf("latest: %v %v, want %s", got.Digest, err, b.Digest)
	}
	if got, err := ms.Stat(context.Background(), "v1"); err != nil || got.Digest != a.Digest {
		t.Errorf("immutable v1: %v %v, want %s", got.Digest, err, a.Digest)
	}
	if rep.Total.Tags != (Counts{Added: 1, Failed: 1}) || dry.Total.Tags != rep.Total.Tags || len(problems) != 1 {
		t.Errorf("tags %+v (dry run %+v), problems %v", rep.Total.Tags, dry.Total.Tags, problems)
	}
}
