package cache

import (
	"context"
	"sync"
	"time"

	"github.com/lading-registry/lading/registry"
)

// Memory is an in-process registry.Cache bounded to a number of entries,
// for a single process on its own storage: only that process deletes, so
// its own invalidations keep it exact. It must not be used by replicas
// sharing a backend, which need the shared Redis cache.
type Memory struct {
	mu      sync.Mutex
	max     int
	entries map[string]memEntry
	now     func() time.Time
}

type memEntry struct {
	v       []byte
	expires time.Time
}

// NewMemory returns a cache of at most max entries.
func NewMemory(max int) *Memory {
	return &Memory{max: max, entries: make(map[string]memEntry, max), now: time.Now}
}

// Get implements registry.Cache.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || m.now().After(e.expires) {
		delete(m.entries, key)
		return nil, registry.ErrCacheMiss
	}
	return e.v, nil
}

// Set implements registry.Cache. When full, it drops an arbitrary entry:
// Go's map order is random enough to act as random eviction, which costs
// nothing to maintain.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[key]; !ok && len(m.entries) >= m.max {
		for k := range m.entries {
			delete(m.entries, k)
			break
		}
	}
	m.entries[key] = memEntry{v: value, expires: m.now().Add(ttl)}
	return nil
}

// Delete implements registry.Cache.
func (m *Memory) Delete(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.entries, k)
	}
	return nil
}

var _ registry.Cache = (*Memory)(nil)
