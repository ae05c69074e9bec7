package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// lossyLocker grants every lock, and loses them all at once on lose, as
// leases do that lapsed while their holder stalled.
type lossyLocker struct {
	ch   chan struct{}
	once sync.Once
}

func (l *lossyLocker) TryLock(ctx context.Context, key string) (func(), error) {
	unlock, _, err := l.TryLockLost(ctx, key)
	return unlock, err
}

func (l *lossyLocker) TryLockLost(context.Context, string) (func(), <-chan struct{}, error) {
	return func() {}, l.ch, nil
}

func (l *lossyLocker) lose() { l.once.Do(func() { close(l.ch) }) }

// losingReader loses the locks while its body is being read.
type losingReader struct {
	r io.Reader
	l *lossyLocker
}

func (x losingReader) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	x.l.lose()
	return n, err
}

// A request whose lock on the session lapses writes, saves and publishes
// nothing more: another request may hold the session now. The client is
// told where the session stands, and a request holding the lock goes on.
func TestUploadStopsWhenItsLockLapses(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(t, 9000)
	d := digest.FromBytes(data)
	root := t.TempDir()
	fsd, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	drv := driver.Instrument(fsd, nil)
	lossy := &lossyLocker{ch: make(chan struct{})}
	repo := repository(t, registry.New(drv, registry.Options{Locker: lossy}), "r")
	u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader(data[:3000]), 0); err != nil {
		t.Fatal(err)
	}

	// Lost while the chunk arrives: nothing of it is written or counted.
	var re *registry.RangeError
	if _, err := u.Append(ctx, losingReader{bytes.NewReader(data[3000:6000]), lossy}, 3000); !errors.As(err, &re) || re.Offset != 3000 {
		t.Fatalf("chunk under a lapsed lock: %v, want a RangeError at 3000", err)
	}
	// Lost before the commit: nothing is published.
	if _, err := u.Commit(ctx, digest.FromBytes(data[:3000]), 3000); !errors.As(err, &re) {
		t.Fatalf("commit under a lapsed lock: %v, want a RangeError", err)
	}
	if _, err := repo.Blobs().Stat(ctx, digest.FromBytes(data[:3000])); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("blob published under a lapsed lock: %v", err)
	}

	// Whoever holds the session now finds it where it stood.
	held := repository(t, registry.New(drv, registry.Options{}), "r")
	u, err = held.Blobs().Resume(ctx, u.ID())
	if err != nil || u.Offset() != 3000 {
		t.Fatalf("resumed at %d, %v; want 3000", u.Offset(), err)
	}
	if _, err := u.AppendCommit(ctx, bytes.NewReader(data[3000:]), 3000, d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, held, d), data) {
		t.Fatal("content differs")
	}
}

// A request that lost its lock never drops the session, even where it
// would drop a damaged one: the session is another request's now.
func TestLapsedLockDropsNoSession(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(t, 9000)
	root := t.TempDir()
	lossy := &lossyLocker{ch: make(chan struct{})}
	repo := repository(t, registry.New(driver.Instrument(newFS(t, root), nil), registry.Options{Locker: lossy}), "r")
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader(data[:3000]), 0); err != nil {
		t.Fatal(err)
	}
	// Less data than the state vouches for: a session a holder drops.
	if err := os.Truncate(dataFile(root, u), 2000); err != nil {
		t.Fatal(err)
	}
	lossy.lose()
	var re *registry.RangeError
	if _, err := u.Append(ctx, bytes.NewReader(data[3000:]), 3000); !errors.As(err, &re) {
		t.Fatalf("append under a lapsed lock: %v, want a RangeError", err)
	}
	for _, p := range []string{dataFile(root, u), strings.TrimSuffix(dataFile(root, u), ".data") + ".state"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("a request without the lock dropped the session: %v", err)
		}
	}
}

func newFS(t testing.TB, root string) driver.Driver {
	t.Helper()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// losingAfter loses the locks once n bytes of its body have been read.
type losingAfter struct {
	r io.Reader
	l *lossyLocker
	n int
}

func (x *losingAfter) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if x.n -= n; x.n <= 0 {
		x.l.lose()
	}
	return n, err
}

// A lock that lapses after part of a chunk was written leaves the session
// as it stood, on every backend: the writer is let go as a stopped process
// would, recording nothing (on S3 a recorded tail could not be read back,
// and the next holder would have to drop the session).
func TestLapsedLockMidChunkLeavesTheSession(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(t, 4<<20)
	d := digest.FromBytes(data)
	for _, name := range []string{"filesystem", "s3"} {
		t.Run(name, func(t *testing.T) {
			drv := registry.Drivers[name](t)
			lossy := &lossyLocker{ch: make(chan struct{})}
			repo := repository(t, registry.New(drv, registry.Options{Locker: lossy}), "r")
			u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Append(ctx, bytes.NewReader(data[:1<<20]), 0); err != nil {
				t.Fatal(err)
			}
			body := &losingAfter{r: bytes.NewReader(data[1<<20:]), l: lossy, n: 3 << 19}
			var re *registry.RangeError
			if _, err := u.Append(ctx, body, 1<<20); !errors.As(err, &re) {
				t.Fatalf("chunk under a lock lapsed midway: %v, want a RangeError", err)
			}
			next := repository(t, registry.New(drv, registry.Options{}), "r")
			u, err = next.Blobs().Resume(ctx, u.ID())
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			at := u.Offset()
			if _, err := u.AppendCommit(ctx, bytes.NewReader(data[at:]), at, d); err != nil {
				t.Fatalf("the next holder going on from %d: %v", at, err)
			}
			if !bytes.Equal(readBlob(t, next, d), data) {
				t.Fatal("content differs")
			}
		})
	}
}
