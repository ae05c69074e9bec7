package filesystem

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lading-registry/lading/storage/driver"
)

// countingSyncs returns a driver and a count of the barrier's syncs. The
// machine never counts as crowded for it and its callers never give up on
// a sync, however slow other tests make the disk.
func countingSyncs(t *testing.T) (*Driver, func() uint64) {
	d := settled(t)
	d.barrier.crowded = func() bool { return false }
	d.barrier.patience = time.Hour
	finished := func() uint64 {
		d.barrier.mu.Lock()
		defer d.barrier.mu.Unlock()
		return d.barrier.done
	}
	base := finished()
	return d, func() uint64 { return finished() - base }
}

// Under a batch, durable writes leave the barrier that makes their names
// durable to Commit, which syncs once for all of them; without one, each
// write waits itself. New bytes wait for a barrier before their name is
// made, batch or not.
func TestBatchDefersTheBarrier(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, syncs := countingSyncs(t)
		ctx, batch := driver.WithBatch(t.Context())
		if err := d.PutContent(ctx, "/a/blob", []byte("bytes")); err != nil {
			t.Fatal(err)
		}
		if err := d.PutContent(ctx, "/b/link", nil); err != nil {
			t.Fatal(err)
		}
		if err := d.Create(ctx, "/c/lease", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := d.Move(ctx, "/a/blob", "/d/blob"); err != nil {
			t.Fatal(err)
		}
		if n := syncs(); n != 2 {
			t.Fatalf("%d syncs before Commit, want 2 (the blob's and the lease's bytes)", n)
		}
		if err := batch.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := syncs(); n != 3 {
			t.Fatalf("%d syncs after Commit, want 3", n)
		}
		if err := d.PutContent(t.Context(), "/e/link", nil); err != nil {
			t.Fatal(err)
		}
		if n := syncs(); n != 4 {
			t.Fatalf("%d syncs after an empty write outside the batch, want 4", n)
		}
	})
}

// Contents staged side by side share one barrier for their bytes: the
// first Publish waits for it, the others find it done.
func TestStagedBytesShareABarrier(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, syncs := countingSyncs(t)
		var staged []driver.Staged
		for _, p := range []string{"/a/one", "/b/two", "/c/three"} {
			s, err := d.Stage(t.Context(), p, []byte(p))
			if err != nil {
				t.Fatal(err)
			}
			staged = append(staged, s)
		}
		if n := syncs(); n != 0 {
			t.Fatalf("%d syncs while staging, want 0", n)
		}
		ctx, batch := driver.WithBatch(t.Context())
		for _, s := range staged {
			if err := s.Publish(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := syncs(); n != 2 {
			t.Fatalf("%d syncs for three staged contents published in a batch, want 2 (their bytes, their names)", n)
		}
		for _, p := range []string{"/a/one", "/b/two", "/c/three"} {
			if b, err := d.GetContent(t.Context(), p); err != nil || string(b) != p {
				t.Errorf("GetContent(%s) = %q, %v", p, b, err)
			}
		}
	})
}

// syncfs reports a writeback error once: a caller whose change the failed
// sync covered gets its error even when it waits after a later sync
// succeeded; a caller after that later sync does not.
func TestBarrierKeepsAFailureForWhomItCovered(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, _ := countingSyncs(t)
		b := d.barrier
		eio := errors.New("EIO")
		results := []error{eio, nil}
		b.sync = func() error {
			err := results[0]
			results = results[1:]
			return err
		}
		covered := b.ticket()
		if err := b.waitFor(covered, nil); err != eio {
			t.Fatalf("the failed sync's own caller: %v", err)
		}
		later := b.ticket()
		if err := b.waitFor(later, nil); err != nil {
			t.Fatalf("a caller after the failure, whose sync succeeded: %v", err)
		}
		if err := b.waitFor(covered, nil); err != eio {
			t.Fatalf("the failed sync's caller, waiting after a later success: %v", err)
		}
		// A caller that can sync its own changes does so instead: the sync may
		// have failed on another file.
		if err := b.waitFor(covered, func() error { return nil }); err != nil {
			t.Fatalf("the failed sync's caller with its own fsync: %v", err)
		}
	})
}

// A batch's Commit retried after its sync failed does not take a later
// sync's success for its own: it must make its names durable itself.
func TestRetriedCommitMeetsItsFailure(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, _ := countingSyncs(t)
		eio := errors.New("EIO")
		syncErr := error(eio)
		d.barrier.sync = func() error { return syncErr }
		d.fsync = func(string, int) error { return eio }
		ctx, batch := driver.WithBatch(t.Context())
		if err := d.PutContent(ctx, "/a/link", nil); err != nil {
			t.Fatal(err)
		}
		if err := batch.Commit(); !errors.Is(err, eio) {
			t.Fatalf("Commit: %v, want EIO", err)
		}
		syncErr = nil // later syncs succeed; the names' own fsync still fails
		if err := batch.Commit(); !errors.Is(err, eio) {
			t.Fatalf("retried Commit: %v, want EIO", err)
		}
	})
}

// The fallback leaves a batch's list of files as it was, for a retried
// Commit: sorting and dropping duplicates in place would blank its tail.
func TestFallbackKeepsTheBatchsList(t *testing.T) {
	d, _ := countingSyncs(t)
	ctx := t.Context()
	for _, p := range []string{"/b/x", "/a/x"} {
		if err := d.PutContent(ctx, p, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{d.root + "/b/x", d.root + "/a/x", d.root + "/a/x"}
	kept := slices.Clone(files)
	if err := d.syncChanges(files...); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(files, kept) {
		t.Fatalf("syncChanges left the list %q, was %q", files, kept)
	}
}
