package registry

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// release is an index under a tag, over an image and a nested index over
// another image, with a signature beside it.
type release struct {
	index, child, nested, grandchild digest.Digest
	// blobs are the images' configs and layers.
	blobs []digest.Digest
	// signature refers to the index; signatureLayer is its alone.
	signature, signatureLayer digest.Digest
}

// pushRelease pushes a release under tag; the index lists extra too.
func (f *fixture) pushRelease(tag string, extra ...v1.Descriptor) release {
	f.t.Helper()
	var r release
	byDigest := func(v any) v1.Descriptor {
		payload := mustJSON(f.t, v)
		return f.put(digest.FromBytes(payload).String(), payload).Descriptor
	}
	image := func() v1.Descriptor {
		m := f.image()
		r.blobs = append(r.blobs, m.Config.Digest, m.Layers[0].Digest)
		return byDigest(m)
	}
	index := func(children ...v1.Descriptor) v1.Index {
		return v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: children}
	}
	child, grandchild := image(), image()
	nested := byDigest(index(grandchild))
	top := f.put(tag, mustJSON(f.t, index(append([]v1.Descriptor{child, nested}, extra...)...))).Descriptor
	sig := f.artifact(top, sigType, nil)
	r.index, r.child, r.nested, r.grandchild = top.Digest, child.Digest, nested.Digest, grandchild.Digest
	r.signature, r.signatureLayer = byDigest(sig).Digest, sig.Layers[0].Digest
	return r
}

// wantDenied checks that err refuses the delete of d as part of what tag
// names.
func wantDenied(t *testing.T, err error, d, root digest.Digest, tag string) {
	t.Helper()
	e, ok := AsError(err)
	if !ok || e.Code != CodeDenied {
		t.Fatalf("delete of %s: %v, want DENIED", d, err)
	}
	for _, s := range []string{d.String(), root.String(), "immutable tag " + tag + " "} {
		if !strings.Contains(e.Message, s) {
			t.Errorf("message %q does not name %s", e.Message, s)
		}
	}
}

// An immutable release stays whole: the manifests its tag reaches down
// indexes and the blobs they reference are not deleted; its signatures
// and what only they reference are, as is a mutable tag's release.
func TestImmutableReleaseKeepsWhatItReaches(t *testing.T) {
	withImmutable(t, "v*", func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "app")
		// Shared by the immutable release and a mutable one.
		shared := f.image()
		sharedImage := f.put(digest.FromBytes(mustJSON(t, shared)).String(), mustJSON(t, shared)).Descriptor
		rel := f.pushRelease("v1", sharedImage)
		rc := f.pushRelease("rc1", sharedImage)

		blobs := f.repo.Blobs()
		for _, d := range []digest.Digest{rel.child, rel.nested, rel.grandchild, sharedImage.Digest} {
			wantDenied(t, f.ms.Delete(f.ctx, d.String()), d, rel.index, "v1")
		}
		for _, d := range append(rel.blobs, shared.Config.Digest, shared.Layers[0].Digest, rel.child) {
			wantDenied(t, blobs.Delete(f.ctx, d), d, rel.index, "v1")
		}
		wantErrCode(t, blobs.Delete(f.ctx, rel.index), CodeDenied)

		// Signatures come and go beside a release.
		if err := f.ms.Delete(f.ctx, rel.signature.String()); err != nil {
			t.Fatalf("delete of the release's signature: %v", err)
		}
		if err := blobs.Delete(f.ctx, rel.signatureLayer); err != nil {
			t.Fatalf("delete of the signature's layer: %v", err)
		}
		// A mutable tag's release goes, all but what it shares.
		for _, d := range []digest.Digest{rc.child, rc.grandchild, rc.nested, rc.signature, rc.index} {
			if err := f.ms.Delete(f.ctx, d.String()); err != nil {
				t.Fatalf("delete of %s of rc1: %v", d, err)
			}
		}
		for _, d := range append(rc.blobs, rc.signatureLayer) {
			if err := blobs.Delete(f.ctx, d); err != nil {
				t.Fatalf("delete of blob %s of rc1: %v", d, err)
			}
		}

		// The release pulls whole.
		for _, d := range []digest.Digest{rel.index, rel.child, rel.nested, rel.grandchild, sharedImage.Digest} {
			if _, err := f.ms.Get(f.ctx, d.String()); err != nil {
				t.Errorf("manifest %s after the refused deletes: %v", d, err)
			}
		}
		for _, d := range append(rel.blobs, shared.Config.Digest, shared.Layers[0].Digest) {
			if _, err := blobs.Stat(f.ctx, d); err != nil {
				t.Errorf("blob %s after the refused deletes: %v", d, err)
			}
		}
	})
}

// An image an immutable tag names keeps its config and layers; a mutable
// tag's image does not.
func TestImmutableImageKeepsItsBlobs(t *testing.T) {
	withImmutable(t, "v*", func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "app")
		for _, tag := range []string{"v2", "latest"} {
			img := f.image()
			tagged := f.put(tag, mustJSON(t, img)).Descriptor
			for _, d := range []digest.Digest{img.Config.Digest, img.Layers[0].Digest} {
				err := f.repo.Blobs().Delete(f.ctx, d)
				if tag == "latest" && err != nil {
					t.Errorf("delete of blob %s of %s: %v", d, tag, err)
				} else if tag == "v2" {
					wantDenied(t, err, d, tagged.Digest, tag)
				}
			}
		}
	})
}

// A rule scoped to other repositories costs a delete here nothing, and
// binds nothing; in its own it binds.
func TestImmutableRulesOfOtherRepositories(t *testing.T) {
	rules, _ := glob.ParseTagRules("prod/**:v*")
	drv := &countingDriver{Driver: driver.Instrument(inmemory.New(), nil)}
	reg := New(drv, Options{ImmutableTags: rules})
	f, prod := newFixture(t, reg, "app"), newFixture(t, reg, "prod/web")
	rel, prodRel := f.pushRelease("v1"), prod.pushRelease("v1")
	drv.walks.Store(0)
	if err := f.ms.Delete(f.ctx, rel.child.String()); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.Blobs().Delete(f.ctx, rel.blobs[0]); err != nil {
		t.Fatal(err)
	}
	if n := drv.walks.Load(); n != 0 {
		t.Errorf("%d tag listings for deletes no rule binds", n)
	}
	wantDenied(t, prod.ms.Delete(prod.ctx, prodRel.child.String()), prodRel.child, prodRel.index, "v1")
	wantDenied(t, prod.repo.Blobs().Delete(prod.ctx, prodRel.blobs[0]), prodRel.blobs[0], prodRel.index, "v1")
}

// countingDriver counts the listings of tags, and the reads of manifest
// records.
type countingDriver struct {
	driver.Driver
	walks, reads atomic.Int64
}

func (c *countingDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if strings.Contains(p, "/_manifests/") {
		c.reads.Add(1)
	}
	return c.Driver.GetContent(ctx, p)
}

func (c *countingDriver) Walk(ctx context.Context, dir, from string, fn driver.WalkFunc) error {
	if strings.Contains(dir, "/_tags") {
		c.walks.Add(1)
	}
	return c.Driver.Walk(ctx, dir, from, fn)
}

// recordReadDriver fails the reads of one manifest's record made under
// holdKey.
type recordReadDriver struct {
	driver.Driver
	record string
}

func (d *recordReadDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if ctx.Value(holdKey{}) != nil && p == d.record {
		return nil, context.DeadlineExceeded
	}
	return d.Driver.GetContent(ctx, p)
}

func (d *recordReadDriver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if ctx.Value(holdKey{}) != nil && p == d.record {
		return driver.FileInfo{}, context.DeadlineExceeded
	}
	return d.Driver.Stat(ctx, p)
}

// A manifest of a release that cannot be read may reach what is deleted:
// the delete is refused.
func TestImmutableReleaseSurvivesAFailedRead(t *testing.T) {
	rules, _ := glob.ParseTagRules("v*")
	drv := &recordReadDriver{Driver: driver.Instrument(inmemory.New(), nil)}
	f := newFixture(t, New(drv, Options{ImmutableTags: rules}), "app")
	rel := f.pushRelease("v1")
	drv.record = manifestLinkPath("app", rel.nested)
	failing := context.WithValue(f.ctx, holdKey{}, true)
	if err := f.ms.Delete(failing, rel.grandchild.String()); err == nil || errors.Is(err, &Error{Code: CodeDenied}) {
		t.Errorf("delete of the grandchild while its parent cannot be read: %v, want the read's error", err)
	}
	if err := f.repo.Blobs().Delete(failing, rel.blobs[2]); err == nil || errors.Is(err, &Error{Code: CodeDenied}) {
		t.Errorf("delete of the grandchild's config while its parent cannot be read: %v, want the read's error", err)
	}
	if _, err := f.ms.Get(f.ctx, rel.grandchild.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.Blobs().Stat(f.ctx, rel.blobs[2]); err != nil {
		t.Fatal(err)
	}
}

// What is not a release's to keep is answered as any delete is: a layer's
// digest through the manifests' delete is no manifest, and a blob the
// repository does not link is unknown. A child deleted before its index
// was pushed, which the push took by the child's blob link, still keeps
// its layers, so that a push of the child mends the release.
func TestImmutableReleaseAnswersOtherDeletesAsBefore(t *testing.T) {
	withImmutable(t, "v*", func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "app")
		rel := f.pushRelease("v1")
		wantErrCode(t, f.ms.Delete(f.ctx, rel.blobs[1].String()), CodeManifestUnknown)
		if err := reg.driver.Delete(f.ctx, layerLinkPath("app", rel.blobs[1])); err != nil {
			t.Fatal(err)
		}
		wantErrCode(t, f.repo.Blobs().Delete(f.ctx, rel.blobs[1]), CodeBlobUnknown)
		e, _ := AsError(f.repo.Blobs().Delete(f.ctx, rel.index))
		if e == nil || e.Code != CodeDenied || !strings.Contains(e.Message, "blob "+rel.index.String()+" is the manifest immutable tag v1") {
			t.Errorf("blob delete of the tagged manifest: %v", e)
		}

		m := f.image()
		payload := mustJSON(t, m)
		child := f.put(digest.FromBytes(payload).String(), payload).Descriptor
		if err := f.ms.Delete(f.ctx, child.Digest.String()); err != nil {
			t.Fatal(err)
		}
		top := f.put("v2", mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{child}})).Descriptor
		for _, d := range []digest.Digest{m.Config.Digest, m.Layers[0].Digest} {
			wantDenied(t, f.repo.Blobs().Delete(f.ctx, d), d, top.Digest, "v2")
		}
		f.put(child.Digest.String(), payload)
	})
}

// A run of deletes reads each release's manifests once: once one has
// walked them, the later ones list and read the tags and no manifest (a
// manifest delete, its own record), and still refuse what a release
// holds.
func TestImmutableReleasesAreReadOnce(t *testing.T) {
	rules, _ := glob.ParseTagRules("v*")
	drv := &countingDriver{Driver: driver.Instrument(inmemory.New(), nil)}
	reg := New(drv, Options{ImmutableTags: rules})
	f := newFixture(t, reg, "app")
	rel := f.pushRelease("v1")
	f.pushRelease("v2")
	blobs := f.repo.Blobs()
	// No release holds it: this delete walks them all.
	drv.reads.Store(0)
	if err := blobs.Delete(f.ctx, rel.signatureLayer); err != nil {
		t.Fatal(err)
	}
	if drv.reads.Load() == 0 {
		t.Fatal("the first delete read no record")
	}
	drv.reads.Store(0)
	drv.walks.Store(0)
	wantDenied(t, blobs.Delete(f.ctx, rel.blobs[3]), rel.blobs[3], rel.index, "v1")
	wantDenied(t, f.ms.Delete(f.ctx, rel.grandchild.String()), rel.grandchild, rel.index, "v1")
	if n, w := drv.reads.Load(), drv.walks.Load(); n > 1 || w != 2 {
		t.Errorf("two later deletes read %d records, listed the tags %d times; want at most the deleted manifest's record, and 2", n, w)
	}
}

// A tag another process removed (fsck --repair, whose manifest's bytes
// were lost) and a push put back elsewhere protects its new release, not
// the one a delete before read.
func TestImmutableTagPushedAgainProtectsItsNewRelease(t *testing.T) {
	withImmutable(t, "v*", func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "app")
		f.pushImage("v1")
		other, _ := f.pushImage("latest")
		if err := f.ms.Delete(f.ctx, digest.FromBytes(other).String()); err != nil {
			t.Fatal(err) // walks v1's release
		}
		if err := reg.driver.Delete(f.ctx, tagPath("app", "v1")); err != nil {
			t.Fatal(err) // as a repair in another process does
		}
		m := f.image()
		payload := mustJSON(t, m)
		top := f.put("v1", payload).Descriptor
		wantDenied(t, f.repo.Blobs().Delete(f.ctx, m.Layers[0].Digest), m.Layers[0].Digest, top.Digest, "v1")
		wantErrCode(t, f.ms.Delete(f.ctx, top.Digest.String()), CodeDenied)
	})
}
