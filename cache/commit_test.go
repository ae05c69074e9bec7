package cache_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/cache"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// collectAfterLink plays a collection that removes the blob right after the
// commit wrote its link, and a transient failure of the next read of the
// collector's state (the commit's settle).
type collectAfterLink struct {
	driver.Driver
	blob  string
	armed atomic.Bool
}

func (c *collectAfterLink) PutContent(ctx context.Context, p string, b []byte) error {
	err := c.Driver.PutContent(ctx, p, b)
	if err == nil && strings.Contains(p, "/_layers/") {
		c.armed.Store(true)
	}
	return err
}

func (c *collectAfterLink) GetContent(ctx context.Context, p string) ([]byte, error) {
	if p == "/gc/state" && c.armed.CompareAndSwap(true, false) {
		_ = c.Driver.Delete(ctx, c.blob) // collected meanwhile
		return nil, errors.New("transient: 503 SlowDown")
	}
	return c.Driver.GetContent(ctx, p)
}

// A commit whose settle fails after it linked a blob that a collection
// then removed must leave no replica answering HEAD for it from the shared
// cache: the client, told the push failed, would skip the upload.
func TestFailedCommitLeavesNoCachedLink(t *testing.T) {
	addr := testenv.Redis(t)
	ra := cache.NewRedis(cache.RedisOptions{Addr: addr, Prefix: "commit:"})
	rb := cache.NewRedis(cache.RedisOptions{Addr: addr, Prefix: "commit:"})
	defer ra.Close()
	defer rb.Close()
	content := []byte("layer bytes")
	d := digest.FromBytes(content)
	hex := d.Encoded()
	store := inmemory.New()
	drv := &collectAfterLink{Driver: store, blob: "/blobs/sha256/" + hex[:2] + "/" + hex}
	a := registry.New(drv, registry.Options{Cache: ra, Locker: ra})   // replica A
	b := registry.New(store, registry.Options{Cache: rb, Locker: rb}) // replica B
	ctx := context.Background()
	repoA, _ := a.Repository("repo")
	repoB, _ := b.Repository("repo")
	_, err := repoA.Blobs().Put(ctx, d, bytes.NewReader(content))
	t.Logf("commit on A: %v", err)
	if err == nil {
		t.Fatal("setup: the commit did not fail")
	}
	desc, err := repoB.Blobs().Stat(ctx, d)
	t.Logf("HEAD on B: %v %v", desc.Size, err)
	if _, serr := store.Stat(ctx, drv.blob); !driver.IsNotFound(serr) {
		t.Fatalf("setup: blob still stored: %v", serr)
	}
	if err == nil {
		t.Errorf("a blob whose commit failed, and whose bytes are gone, is found through the cache by another replica (size %d)", desc.Size)
	}
}
