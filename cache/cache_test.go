package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lading-registry/lading/cache"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/registry"
)

func testCache(t *testing.T, c registry.Cache) {
	ctx := context.Background()
	if _, err := c.Get(ctx, "a"); !errors.Is(err, registry.ErrCacheMiss) {
		t.Fatalf("get of absent key: %v", err)
	}
	if err := c.Set(ctx, "a", []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "a"); err != nil || string(v) != "1" {
		t.Fatalf("get = %q, %v", v, err)
	}
	if err := c.Delete(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "a"); !errors.Is(err, registry.ErrCacheMiss) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestRedis(t *testing.T) {
	r := cache.NewRedis(cache.RedisOptions{Addr: testenv.Redis(t), LockTTL: 300 * time.Millisecond})
	defer r.Close()
	testCache(t, r)

	ctx := context.Background()
	unlock, err := r.TryLock(ctx, "repo/u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.TryLock(ctx, "repo/u1"); !errors.Is(err, registry.ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	// Held past its TTL: the holder's renewals keep it.
	time.Sleep(700 * time.Millisecond)
	if _, err := r.TryLock(ctx, "repo/u1"); !errors.Is(err, registry.ErrLocked) {
		t.Fatalf("lock lapsed while held: %v", err)
	}
	unlock()
	unlock2, err := r.TryLock(ctx, "repo/u1")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	unlock2()
}

// With Redis gone the cache misses instead of failing, and locks are
// refused, quickly: every request pays for it before falling back.
func TestRedisDown(t *testing.T) {
	r := cache.NewRedis(cache.RedisOptions{Addr: "127.0.0.1:1"})
	defer r.Close()
	ctx := context.Background()
	start := time.Now()
	if _, err := r.Get(ctx, "a"); err == nil || errors.Is(err, registry.ErrCacheMiss) {
		t.Fatalf("get with Redis down: %v, want a connection error", err)
	}
	if _, err := r.TryLock(ctx, "k"); err == nil {
		t.Fatal("lock granted with Redis down")
	}
	// A refused loopback dial is immediate; what remains is the one retry's
	// backoff (at most a second), never the dialer's own retries on top.
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("two commands with Redis down took %v", took)
	}
}

// A lock whose key another took (its holder stalled past LockTTL) is
// reported lost at the holder's next renewal.
func TestRedisReportsLostLock(t *testing.T) {
	addr := testenv.Redis(t)
	r := cache.NewRedis(cache.RedisOptions{Addr: addr, LockTTL: 300 * time.Millisecond, Prefix: "lost-test:"})
	defer r.Close()
	ctx := context.Background()
	unlock, lost, err := r.TryLockLost(ctx, "repo/u1")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	select {
	case <-lost:
		t.Fatal("a lock kept by its holder reported lost")
	case <-time.After(500 * time.Millisecond):
	}
	other := redis.NewClient(&redis.Options{Addr: addr})
	defer other.Close()
	if err := other.Set(ctx, "lost-test:lock:repo/u1", "another holder", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("a lock taken by another was never reported lost")
	}
}

// The in-process cache keeps the same contract.
func TestMemoryAsRegistryCache(t *testing.T) {
	testCache(t, cache.NewMemory(16, time.Minute))
}
