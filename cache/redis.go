// Package cache holds the state replicas may share besides the storage
// backend: a Redis-backed cache for the registry's small lookups and a Redis
// lock for upload sessions.
package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lading-registry/lading/registry"
)

// Redis is a registry.Cache and registry.Locker on one Redis server, shared
// by every replica.
type Redis struct {
	c       *redis.Client
	prefix  string
	lockTTL time.Duration
}

// RedisOptions configure NewRedis.
type RedisOptions struct {
	Addr     string
	Password string
	DB       int
	// Prefix namespaces every key, so registries can share a server.
	Prefix string
	// LockTTL bounds how long a crashed holder keeps an upload locked.
	LockTTL time.Duration
	// Logger takes the Redis client's own lines, at debug level; nil
	// leaves them where they go (standard error, a line per failed dial).
	Logger *slog.Logger
}

// clientLog takes the Redis client's lines into the process's log at debug
// level: while Redis is down the client writes one per failed dial, plain
// text whatever log.format says, and Lading warns of the outage itself at
// most once a minute. The client has one logger for the whole process.
type clientLog struct{ log *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// NewRedis connects lazily: a Redis that is down at start only makes the
// cache miss, as it would later.
func NewRedis(opts RedisOptions) *Redis {
	if opts.LockTTL <= 0 {
		opts.LockTTL = 2 * time.Minute
	}
	if opts.Prefix == "" {
		opts.Prefix = "lading:"
	}
	if opts.Logger != nil {
		redis.SetLogger(clientLog{opts.Logger})
	}
	// Every caller falls back to the backend when Redis fails, so a Redis
	// that is down must fail fast: one dial per attempt, not the client's
	// default five with pauses between, which cost each request ~1s.
	c := redis.NewClient(&redis.Options{
		Addr:          opts.Addr,
		Password:      opts.Password,
		DB:            opts.DB,
		DialTimeout:   time.Second,
		ReadTimeout:   time.Second,
		WriteTimeout:  time.Second,
		MaxRetries:    1,
		DialerRetries: 1,
	})
	return &Redis{c: c, prefix: opts.Prefix, lockTTL: opts.LockTTL}
}

// Close closes the connection pool.
func (r *Redis) Close() error { return r.c.Close() }

// Ping reports whether the server answers.
func (r *Redis) Ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }

// Get implements registry.Cache.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := r.c.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, registry.ErrCacheMiss
	}
	return v, err
}

// A deleted key leaves a tombstone that refuses values for tombstoneTTL:
// a lookup on another replica that read the store before the delete, and
// sets what it found after the delete's invalidation, must not put the
// deleted entry back for its whole TTL. tombstoneTTL bounds how long such a
// lookup may take between its read and its set.
const tombstoneTTL = time.Minute

var (
	setScript = redis.NewScript(`if redis.call("exists", KEYS[2]) == 1 then return 0 end
if tonumber(ARGV[2]) > 0 then
	redis.call("set", KEYS[1], ARGV[1], "px", ARGV[2])
else
	redis.call("set", KEYS[1], ARGV[1])
end
return 1`)
	deleteScript = redis.NewScript(`for i = 1, #KEYS, 2 do
	redis.call("del", KEYS[i])
	redis.call("set", KEYS[i+1], "", "px", ARGV[1])
end
return 1`)
)

func (r *Redis) tombstone(key string) string { return r.prefix + "gone:" + key }

// Set implements registry.Cache; a key deleted within tombstoneTTL keeps
// no value.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return setScript.Run(ctx, r.c, []string{r.prefix + key, r.tombstone(key)}, value, ttl.Milliseconds()).Err()
}

// Forget implements registry.Forgetter: a plain DEL, which leaves no
// tombstone.
func (r *Redis) Forget(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + k
	}
	return r.c.Del(ctx, full...).Err()
}

// Delete implements registry.Cache.
func (r *Redis) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		full = append(full, r.prefix+k, r.tombstone(k))
	}
	return deleteScript.Run(ctx, r.c, full, tombstoneTTL.Milliseconds()).Err()
}

// Only the holder, known by its token, may renew or release a lock.
var (
	renewScript   = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)
	releaseScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
)

// TryLock implements registry.Locker with SET NX PX. The holder renews the
// lock while it holds it, so a long chunk does not outlive its lock, and a
// crashed holder's lock lapses after LockTTL. When Redis cannot be reached
// the lock is refused rather than assumed: two writers interleaving bytes
// is worse than a retry.
func (r *Redis) TryLock(ctx context.Context, key string) (func(), error) {
	unlock, _, err := r.TryLockLost(ctx, key)
	return unlock, err
}

// TryLockLost implements registry.LossReporter: a renewal that finds the
// key gone or another's (the holder stalled past LockTTL) reports the
// loss, as do renewals that cannot reach Redis until the key could lapse
// (registry.KeepLease).
func (r *Redis) TryLockLost(ctx context.Context, key string) (func(), <-chan struct{}, error) {
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	k := r.prefix + "lock:" + key
	taken := time.Now()
	ok, err := r.c.SetNX(ctx, k, token, r.lockTTL).Result()
	if err == nil && !ok {
		// The client retries a command whose reply came too late; the
		// retry then finds the key the first attempt set: this holder's.
		var v string
		v, err = r.c.Get(ctx, k).Result()
		ok = err == nil && v == token
		if errors.Is(err, redis.Nil) {
			err = nil // lapsed meanwhile: refused all the same
		}
	}
	if err != nil {
		// The key may have been set with no reply come back: left there,
		// it would lock the session out for LockTTL with no one holding it.
		go releaseScript.Run(context.WithoutCancel(ctx), r.c, []string{k}, token)
		return nil, nil, err
	}
	if !ok {
		return nil, nil, registry.ErrLocked
	}
	stop, lost := registry.KeepLease(r.lockTTL, taken, func(ctx context.Context) error {
		n, err := renewScript.Run(ctx, r.c, []string{k}, token, r.lockTTL.Milliseconds()).Int()
		if err == nil && n == 0 {
			return registry.ErrLeaseGone
		}
		return err
	})
	return func() {
		stop()
		// The script deletes the key only while it holds this token, so
		// it may be tried again until the key would have expired.
		release := func(ctx context.Context) error { return releaseScript.Run(ctx, r.c, []string{k}, token).Err() }
		if release(context.Background()) != nil {
			registry.ReleaseLater(time.Now().Add(r.lockTTL), release)
		}
	}, lost, nil
}

var (
	_ registry.Forgetter    = (*Redis)(nil)
	_ registry.Cache        = (*Redis)(nil)
	_ registry.Locker       = (*Redis)(nil)
	_ registry.LossReporter = (*Redis)(nil)
)
