package registry

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// TestEvictUnpulled runs a mirror's eviction on every backend: tags and
// untagged manifests neither pulled nor written within Unpulled go, with
// the blobs only they used, and a signature's tag with its image; the
// others stay whole, and so does what has no note yet (which gets one); a
// dry run counts the same and removes nothing; notes of manifests gone go
// next time.
func TestEvictUnpulled(t *testing.T) {
	forEachPruneDriver(t, "", func(t *testing.T, reg *Registry, clock *pruneClock, tick func()) {
		f := newFixture(t, reg, "mirror/app")
		untagged := func() digest.Digest {
			payload := mustJSON(t, f.image())
			return f.put(digest.FromBytes(payload).String(), payload).Descriptor.Digest
		}
		signature := func(image digest.Digest) digest.Digest {
			_, d := f.pushImage("sha256-" + image.Encoded() + ".sig")
			return d
		}
		note := func(ds ...digest.Digest) {
			t.Helper()
			for _, d := range ds {
				if err := f.ms.NotePull(f.ctx, d); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, oldD := f.pushImage("old")       // tagged, pulled long ago
		_, pulledD := f.pushImage("pulled") // tagged, pulled lately
		looseD := untagged()                // pulled long ago
		pinnedD := untagged()               // pulled lately
		oldSig, pulledSig := signature(oldD), signature(pulledD)
		_, unnotedTagD := f.pushImage("unnoted") // never noted: held before eviction began
		unnotedD := untagged()
		note(oldD, looseD, oldSig, pulledSig)
		tick()
		note(pulledD, pinnedD)
		tick()
		f.put("fresh", mustJSON(t, f.image())) // written after the notes
		fi, err := driver.StatObject(f.ctx, reg.driver, pulledPath(f.repo.name, pulledD))
		if err != nil {
			t.Fatal(err)
		}
		const unpulled = time.Hour
		clock.set(fi.ModTime.Add(unpulled)) // the notes of pulledD and pinnedD are just within it

		opts := quickGC(false)
		opts.Unpulled = unpulled
		opts.DryRun = true
		var listed []GCItem
		opts.Removed = func(it GCItem) { listed = append(listed, it) }
		before := storedBlobs(t, reg)
		dry := collect(t, reg, opts)
		if after := storedBlobs(t, reg); !slices.Equal(before, after) {
			t.Fatal("a dry run deleted blobs")
		}
		mustPullable(t, f, "old")
		if len(listed) == 0 || listed[0] != (GCItem{Kind: "tag", Repository: "mirror/app", Tag: "old", Digest: oldD}) {
			t.Fatalf("dry run listed %+v first, want the tag old", listed)
		}

		opts.DryRun, opts.Removed = false, nil
		done := collect(t, reg, opts)
		// old, its signature, loose: each manifest's bytes, config and layer.
		if done.TagsEvicted != 2 || done.ManifestsRemoved != 3 || done.BlobsRemoved != 9 {
			t.Fatalf("report %+v", done)
		}
		dry.Duration, done.Duration, dry.DryRun = 0, 0, false
		dry.Stored.At, done.Stored.At = time.Time{}, time.Time{}
		if dry != done {
			t.Fatalf("dry run reported %+v, the real run %+v", dry, done)
		}
		pulledSigTag := "sha256-" + pulledD.Encoded() + ".sig"
		f.wantTags("fresh", "pulled", pulledSigTag, "unnoted")
		for _, ref := range []string{"pulled", "fresh", pinnedD.String(), pulledSigTag, "unnoted", unnotedD.String()} {
			mustPullable(t, f, ref)
		}
		for _, d := range []digest.Digest{unnotedTagD, unnotedD} {
			if _, err := driver.StatObject(f.ctx, reg.driver, pulledPath(f.repo.name, d)); err != nil {
				t.Errorf("manifest %s held without a note has none after the run: %v", d, err)
			}
		}
		for _, d := range []digest.Digest{oldD, looseD, oldSig} {
			if _, err := f.ms.Get(f.ctx, d.String()); !errors.Is(err, ErrManifestUnknown) {
				t.Errorf("manifest %s not pulled within %v is still there: %v", d, unpulled, err)
			}
		}

		// The loose manifest's note outlived it: the next run takes it.
		if _, err := driver.StatObject(f.ctx, reg.driver, pulledPath(f.repo.name, looseD)); err != nil {
			t.Fatalf("note of a manifest collected in the run: %v", err)
		}
		again := collect(t, reg, opts)
		if again.TagsEvicted+again.ManifestsRemoved+again.BlobsRemoved != 0 {
			t.Fatalf("second run removed %+v", again)
		}
		if _, err := driver.StatObject(f.ctx, reg.driver, pulledPath(f.repo.name, looseD)); !driver.IsNotFound(err) {
			t.Fatalf("note of a manifest gone: %v, want it removed", err)
		}
		if _, err := driver.StatObject(f.ctx, reg.driver, pulledPath(f.repo.name, pinnedD)); err != nil {
			t.Fatalf("note of a manifest kept: %v", err)
		}

		// Without Unpulled nothing is evicted, whatever the notes say.
		clock.set(time.Now().Add(100 * unpulled))
		if rep := collect(t, reg, quickGC(false)); rep.TagsEvicted+rep.ManifestsRemoved != 0 {
			t.Fatalf("a collection without Unpulled evicted %+v", rep)
		}
		mustPullable(t, f, "pulled")
	})
}
