package filesystem

import (
	"testing"

	"github.com/lading-registry/lading/storage/driver"
)

// Under a batch, durable writes leave the barrier that makes their names
// durable to Commit, which syncs once for all of them; without one, each
// write waits itself. New bytes wait for a barrier before their name is
// made, batch or not.
func TestBatchDefersTheBarrier(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	syncs := func() uint64 {
		d.barrier.mu.Lock()
		defer d.barrier.mu.Unlock()
		return d.barrier.done
	}
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
}
