package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// downCache fails every call, as Redis does while down, or as it answers a
// caller that went away.
type downCache struct{}

func (downCache) Get(ctx context.Context, _ string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("connection refused")
}
func (downCache) Set(context.Context, string, []byte, time.Duration) error { return errors.New("down") }
func (downCache) Delete(context.Context, ...string) error                  { return errors.New("down") }

// A cache read that failed is counted as a fallback to the storage, for
// the metric an alert watches; one whose caller went away is not.
func TestCacheFailedCountsOutagesOnly(t *testing.T) {
	var failed int
	reg := New(inmemory.New(), Options{Cache: downCache{}, CacheFailed: func() { failed++ }})
	if _, hit := reg.cacheGet(context.Background(), "k"); hit || failed != 1 {
		t.Fatalf("a read from a cache that is down: hit %v, counted %d", hit, failed)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, hit := reg.cacheGet(gone, "k"); hit || failed != 1 {
		t.Fatalf("a read whose caller went away: hit %v, counted %d", hit, failed)
	}
}

// A cache that is down refuses the invalidation of every push and delete:
// that is told once a minute, with how many failed, not once each.
func TestFailedInvalidationsLoggedOnceAMinute(t *testing.T) {
	var log bytes.Buffer
	reg := New(inmemory.New(), Options{Cache: downCache{}, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	for range 5 {
		reg.cacheDelete(context.Background(), "link:a@sha256:1")
		reg.cacheForget(context.Background(), "link:a@sha256:2")
	}
	if n := strings.Count(log.String(), "cache invalidation failed"); n != 1 {
		t.Fatalf("%d warnings for 10 failed invalidations, want 1:\n%s", n, log.String())
	}
	if got := reg.invalidationsFailed.Load(); got != 9 {
		t.Errorf("%d failures held for the next warning, want 9", got)
	}
}
