package cache

import (
	"context"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/lading-registry/lading/registry"
)

// Memory is a registry.Cache private to one process, for a registry that
// alone serves its storage. Entries live at most maxTTL, so a change made
// by another process (a `lading gc` beside the server) is seen within it.
// A deleted key refuses values for maxTTL: a read that began before the
// delete cannot put back what the delete removed.
type Memory struct {
	mu      sync.Mutex // orders Set against Delete
	entries *otter.Cache[string, memoryEntry]
	maxTTL  time.Duration
	now     func() time.Time
}

type memoryEntry struct {
	value   []byte // nil: deleted
	expires time.Time
}

// NewMemory keeps up to size entries, each at most maxTTL.
func NewMemory(size int, maxTTL time.Duration) *Memory {
	return &Memory{entries: otter.Must(&otter.Options[string, memoryEntry]{MaximumSize: size}), maxTTL: maxTTL, now: time.Now}
}

// Get implements registry.Cache.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	e, ok := m.entries.GetIfPresent(key)
	if !ok || e.value == nil || !m.now().Before(e.expires) {
		return nil, registry.ErrCacheMiss
	}
	return e.value, nil
}

// Set implements registry.Cache; ttl is capped at maxTTL.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if value == nil {
		value = []byte{}
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries.GetIfPresent(key); ok && e.value == nil && now.Before(e.expires) {
		return nil // deleted since the read that found value may have begun
	}
	m.entries.Set(key, memoryEntry{value: value, expires: now.Add(min(ttl, m.maxTTL))})
	return nil
}

// Delete implements registry.Cache.
func (m *Memory) Delete(_ context.Context, keys ...string) error {
	expires := m.now().Add(m.maxTTL)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.entries.Set(k, memoryEntry{expires: expires})
	}
	return nil
}

var _ registry.Cache = (*Memory)(nil)
