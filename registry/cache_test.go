package registry

import (
	"context"
	"errors"
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
