package cache

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/lading-registry/lading/registry"
)

func TestMemory(t *testing.T) {
	ctx := context.Background()
	clock := time.Now()
	m := NewMemory(16, time.Second)
	m.now = func() time.Time { return clock }
	miss := func(key, why string) {
		t.Helper()
		if _, err := m.Get(ctx, key); !errors.Is(err, registry.ErrCacheMiss) {
			t.Fatalf("get %s %s: %v, want a miss", key, why, err)
		}
	}
	hit := func(key, want string) {
		t.Helper()
		if v, err := m.Get(ctx, key); err != nil || string(v) != want {
			t.Fatalf("get %s = %q, %v; want %q", key, v, err, want)
		}
	}
	miss("a", "never set")
	m.Set(ctx, "a", []byte("1"), time.Hour)
	m.Set(ctx, "e", nil, time.Hour) // an empty value is a value
	hit("a", "1")
	hit("e", "")

	clock = clock.Add(time.Second)
	miss("a", "past the longest life, whatever the ttl asked")

	m.Set(ctx, "b", []byte("2"), time.Hour)
	m.Delete(ctx, "b")
	miss("b", "deleted")
	m.Set(ctx, "b", []byte("stale"), time.Hour) // a read from before the delete
	miss("b", "set within a second of its delete")
	clock = clock.Add(time.Second)
	m.Set(ctx, "b", []byte("3"), time.Hour)
	hit("b", "3")
}

// A deleted key refuses values for its second however full the cache is,
// and deleted keys do not outlive two generations.
func TestMemoryDeletesOutliveEviction(t *testing.T) {
	ctx := context.Background()
	clock := time.Now()
	m := NewMemory(16, time.Second)
	m.now = func() time.Time { return clock }
	m.Set(ctx, "k", []byte("1"), time.Hour)
	m.Delete(ctx, "k")
	for i := range 1000 { // far past the cache's size
		m.Set(ctx, strconv.Itoa(i), []byte("x"), time.Hour)
	}
	m.Set(ctx, "k", []byte("stale"), time.Hour)
	if _, err := m.Get(ctx, "k"); !errors.Is(err, registry.ErrCacheMiss) {
		t.Fatalf("a value set within a second of its delete came back after evictions: %v", err)
	}
	for range 3 {
		clock = clock.Add(time.Second)
		m.Delete(ctx, "other")
	}
	if _, ok := m.older["k"]; ok || m.deleted["k"] != 0 {
		t.Fatal("a delete is remembered past two generations")
	}
}
