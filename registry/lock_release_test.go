package registry

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// failingRemoves fails the first n deletes it is asked for.
type failingRemoves struct {
	driver.Driver
	n atomic.Int32
}

func (f *failingRemoves) Delete(ctx context.Context, path string) error {
	if f.n.Add(-1) >= 0 {
		return errors.New("throttled")
	}
	return f.Driver.Delete(ctx, path)
}

// A release that fails (the store throttling a DELETE) is tried again,
// rather than leave the key locked by no one until the lease ends.
func TestFailedReleaseTriedAgain(t *testing.T) {
	defer func(was time.Duration) { releaseRetry = was }(releaseRetry)
	releaseRetry = 10 * time.Millisecond
	d := &failingRemoves{Driver: inmemory.New()}
	l := NewBackendLocker(d, time.Hour)
	unlock, err := l.TryLock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	d.n.Store(2)
	unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		unlock, err := l.TryLock(context.Background(), "k")
		if err == nil {
			unlock()
			return
		}
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("10 s after a release that failed twice: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A failed release whose delete went through after all, the key taken by
// another since, leaves the other's lease alone when it is tried again.
func TestReleaseTriedAgainSparesTheNextHolder(t *testing.T) {
	defer func(was time.Duration) { releaseRetry = was }(releaseRetry)
	releaseRetry = 10 * time.Millisecond
	d := &lostDeletes{Driver: inmemory.New()}
	l := NewBackendLocker(d, time.Hour)
	unlock, err := l.TryLock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	d.n.Store(1)
	unlock()
	next, err := l.TryLock(context.Background(), "k")
	if err != nil {
		t.Fatalf("after a delete whose answer was lost: %v", err)
	}
	defer next()
	time.Sleep(100 * time.Millisecond) // several retries' worth
	if _, err := l.TryLock(context.Background(), "k"); !errors.Is(err, ErrLocked) {
		t.Fatalf("the next holder's lease after the retries: %v, want it held", err)
	}
}

// lostDeletes deletes, then reports failure, the first n times.
type lostDeletes struct {
	driver.Driver
	n atomic.Int32
}

func (f *lostDeletes) Delete(ctx context.Context, path string) error {
	err := f.Driver.Delete(ctx, path)
	if f.n.Add(-1) >= 0 {
		return errors.New("answer lost")
	}
	return err
}

// lostCreates creates, then reports the request cancelled, the first n
// times: a client that hung up while its lease was being written.
type lostCreates struct {
	driver.Driver
	n atomic.Int32
}

func (f *lostCreates) Create(ctx context.Context, path string, content []byte) error {
	err := f.Driver.Create(ctx, path, content)
	if f.n.Add(-1) >= 0 {
		return context.Canceled
	}
	return err
}

// A lease written by a request that then failed (cancelled with its
// client) is removed, rather than hold the key for its whole term and lie
// in /locks until the key is locked again.
func TestLeaseOfAFailedLockRemoved(t *testing.T) {
	defer func(was time.Duration) { releaseRetry = was }(releaseRetry)
	releaseRetry = 10 * time.Millisecond
	d := &lostCreates{Driver: inmemory.New()}
	l := NewBackendLocker(d, time.Hour)
	d.n.Store(1)
	if _, err := l.TryLock(context.Background(), "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a lock whose create was cancelled: %v", err)
	}
	leaseGone(t, d, "k")
}

// A lease whose last renewal was applied with its answer lost holds newer
// bytes than its holder knows: a failed release is still tried again, by
// the lease's token.
func TestReleaseTriedAgainAfterALostRenewalAnswer(t *testing.T) {
	defer func(was time.Duration) { releaseRetry = was }(releaseRetry)
	releaseRetry = 10 * time.Millisecond
	d := &failingRemoves{Driver: inmemory.New()}
	l := &backendLocker{d: d, ttl: time.Hour, now: time.Now}
	unlock, err := l.TryLock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	// The renewal the holder never heard back from.
	held, err := l.read(context.Background(), lockPath("k"))
	if err != nil {
		t.Fatal(err)
	}
	held.Expires = held.Expires.Add(time.Minute)
	raw, _ := json.Marshal(held)
	if err := d.PutContent(context.Background(), lockPath("k"), raw); err != nil {
		t.Fatal(err)
	}
	d.n.Store(1)
	unlock()
	leaseGone(t, d, "k")
}

// leaseGone waits up to 10 s for the lease of key to be removed.
func leaseGone(t *testing.T, d driver.Driver, key string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := driver.StatObject(context.Background(), d, lockPath(key)); driver.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease of %s is still there after 10 s", key)
		}
	}
}
