package registry_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// opLog records the backend calls that pass through driver.Instrument: on
// an object store each is a billed request.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) observe(op string, _ time.Duration, _ error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
}

func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops := l.ops
	l.ops = nil
	return ops
}

// A chunk reads the session's state once (Resume), not again under the
// lock: the data's size vouches for the state the handle holds.
func TestAppendReadsStateOnce(t *testing.T) {
	ctx := context.Background()
	var log opLog
	repo := repository(t, registry.New(driver.Instrument(inmemory.New(), log.observe), registry.Options{}), "r")
	u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader([]byte("first")), 0); err != nil {
		t.Fatal(err)
	}
	u, err = repo.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	log.take()
	if _, err := u.Append(ctx, bytes.NewReader([]byte("second")), 5); err != nil {
		t.Fatal(err)
	}
	if ops := log.take(); slices.Contains(ops, "GetContent") {
		t.Fatalf("append of a resumed session read state again: %q", ops)
	}
}

// A handle read before another request's chunk landed still appends in the
// right place, or is told where the session stands.
func TestStaleHandleAppends(t *testing.T) {
	ctx := context.Background()
	repo := repository(t, registry.New(inmemory.New(), registry.Options{}), "r")
	u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader([]byte("one,")), 0); err != nil {
		t.Fatal(err)
	}
	resume := func() *registry.Upload {
		h, err := repo.Blobs().Resume(ctx, u.ID())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	staleA, staleB, current := resume(), resume(), resume()
	if _, err := current.Append(ctx, bytes.NewReader([]byte("two,")), 4); err != nil {
		t.Fatal(err)
	}
	// The client names the offset the stale handle believes in.
	_, err = staleA.Append(ctx, bytes.NewReader([]byte("lost,")), 4)
	var re *registry.RangeError
	if !errors.As(err, &re) || re.Offset != 8 {
		t.Fatalf("stale append at 4: %v, want RangeError at 8", err)
	}
	// The client names no offset: the chunk goes at the session's end.
	if _, err := staleB.Append(ctx, bytes.NewReader([]byte("three")), -1); err != nil {
		t.Fatal(err)
	}
	if staleB.Offset() != 13 {
		t.Fatalf("offset after the stale handle's chunk: %d, want 13", staleB.Offset())
	}
	want := []byte("one,two,three")
	d := digest.FromBytes(want)
	if _, err := resume().Commit(ctx, d, int64(len(want))); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, repo, d); !bytes.Equal(got, want) {
		t.Fatalf("blob %q, want %q", got, want)
	}
}

// Releasing a backend lease within its term costs one object removal, no
// read.
func TestBackendLockReleaseWithoutRead(t *testing.T) {
	ctx := context.Background()
	var log opLog
	l := registry.NewBackendLocker(driver.Instrument(inmemory.New(), log.observe), time.Minute)
	unlock, err := l.TryLock(ctx, "r/session")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if ops := log.take(); !slices.Equal(ops, []string{"Create", "RemoveObject"}) {
		t.Fatalf("lock and release: %q, want [Create RemoveObject]", ops)
	}
	if _, err := l.TryLock(ctx, "r/session"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}
