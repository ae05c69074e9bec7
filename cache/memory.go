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
	entries *otter.Cache[string, memoryEntry]
	maxTTL  time.Duration
	now     func() time.Time
	// base is when the cache began: times are kept as nanoseconds since,
	// which Go measures on the monotonic clock, so a step of the wall
	// clock (an NTP correction) neither ages entries nor keeps them.
	base time.Time

	// mu orders Set against Delete. Deleted keys, with the time until
	// which they refuse values, are kept apart from the entries, where
	// eviction could drop them early, in two generations each spanning at
	// least maxTTL: the older is dropped whole, so none needs a sweep.
	mu             sync.Mutex
	deleted, older map[string]int64
	turn           int64
}

type memoryEntry struct {
	value   []byte
	expires int64 // nanoseconds since base
}

// NewMemory keeps up to size entries, each at most maxTTL.
func NewMemory(size int, maxTTL time.Duration) *Memory {
	return &Memory{entries: otter.Must(&otter.Options[string, memoryEntry]{MaximumSize: size}), maxTTL: maxTTL, now: time.Now,
		base: time.Now(), deleted: map[string]int64{}}
}

// clock is the time in nanoseconds since base.
func (m *Memory) clock() int64 { return int64(m.now().Sub(m.base)) }

// Get implements registry.Cache.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	e, ok := m.entries.GetIfPresent(key)
	if !ok || m.clock() >= e.expires {
		return nil, registry.ErrCacheMiss
	}
	return e.value, nil
}

// Set implements registry.Cache; ttl is capped at maxTTL.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if value == nil {
		value = []byte{}
	}
	now := m.clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.turnOver(now)
	if refusing(m.deleted, key, now) || refusing(m.older, key, now) {
		return nil // deleted since the read that found value may have begun
	}
	m.entries.Set(key, memoryEntry{value: value, expires: now + int64(min(ttl, m.maxTTL))})
	return nil
}

// Delete implements registry.Cache.
func (m *Memory) Delete(_ context.Context, keys ...string) error {
	now := m.clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.turnOver(now)
	for _, k := range keys {
		m.entries.Invalidate(k)
		m.deleted[k] = now + int64(m.maxTTL)
	}
	return nil
}

// refusing reports whether key, deleted, still refuses values at now.
func refusing(deleted map[string]int64, key string, now int64) bool {
	until, ok := deleted[key]
	return ok && now < until
}

// turnOver starts a new generation of deleted keys once the current one
// has spanned maxTTL: every key of the one it drops has expired.
func (m *Memory) turnOver(now int64) {
	if now < m.turn {
		return
	}
	m.older, m.deleted = m.deleted, map[string]int64{}
	m.turn = now + int64(m.maxTTL)
}

var _ registry.Cache = (*Memory)(nil)
