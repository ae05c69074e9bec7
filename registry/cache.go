package registry

import (
	"context"
	"errors"
	"time"
)

// Cache holds small values the registry would otherwise read from the
// backend on every request (a blob's size in a repository). It is shared by
// every replica (Redis) or private to one process. The registry treats any
// cache error as a miss, so a cache that is down makes Lading slower, never
// wrong; and it invalidates on every delete.
type Cache interface {
	// Get returns ErrCacheMiss when the key is absent.
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Delete(ctx context.Context, keys ...string) error
}

// Forgetter is a Cache that can also drop entries without refusing them
// for a while after, as Delete may (a lookup that began before a removal
// must not put the removed entry back): for entries dropped only to be read
// afresh, not because what they describe went.
type Forgetter interface {
	Forget(ctx context.Context, keys ...string) error
}

// ErrCacheMiss is returned by Cache.Get for an absent key.
var ErrCacheMiss = errors.New("cache miss")

// linkTTL bounds how long a cached link may outlive a delete that raced a
// refill of the cache; deletes themselves invalidate at once.
const linkTTL = 10 * time.Minute

func linkKey(repo, dgst string) string { return "link:" + repo + "@" + dgst }

// cacheGet reads key, reporting hits and misses; errors count as misses.
func (r *Registry) cacheGet(ctx context.Context, key string) ([]byte, bool) {
	if r.cache == nil {
		return nil, false
	}
	v, err := r.cache.Get(ctx, key)
	if err != nil && !errors.Is(err, ErrCacheMiss) {
		r.log.Debug("cache read failed", "err", err)
		if r.cacheFailed != nil && ctx.Err() == nil { // a caller gone is no outage
			r.cacheFailed()
		}
	}
	hit := err == nil
	if r.cacheObs != nil {
		r.cacheObs(hit)
	}
	return v, hit
}

func (r *Registry) cacheSet(ctx context.Context, key string, v []byte, ttl time.Duration) {
	if r.cache == nil {
		return
	}
	if err := r.cache.Set(ctx, key, v, ttl); err != nil {
		r.log.Debug("cache write failed", "err", err)
	}
}

// cacheDelete invalidates keys. A failure is logged loudly: the entry then
// lives until its TTL, which is the one way the cache can mislead.
func (r *Registry) cacheDelete(ctx context.Context, keys ...string) {
	if r.cache != nil {
		r.invalidate(ctx, r.cache.Delete, keys)
	}
}

// cacheForget drops keys to be read afresh from the store; see Forgetter.
func (r *Registry) cacheForget(ctx context.Context, keys ...string) {
	if f, ok := r.cache.(Forgetter); ok {
		r.invalidate(ctx, f.Forget, keys)
	} else {
		r.cacheDelete(ctx, keys...)
	}
}

// invalidate runs drop on keys. Not on the caller's context: a client
// that hangs up once the store has changed must not leave the old entry
// served until its TTL.
func (r *Registry) invalidate(ctx context.Context, drop func(context.Context, ...string) error, keys []string) {
	if err := drop(context.WithoutCancel(ctx), keys...); err != nil {
		n := r.invalidationsFailed.Add(1)
		if r.failedInvalidations.Allow() {
			r.invalidationsFailed.Add(-n)
			r.log.Warn("cache invalidation failed: what these keys cached may be served until its TTL (logged once a minute)", "keys", keys, "failures", n, "err", err)
		}
	}
}
