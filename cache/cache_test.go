package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/lading-registry/lading/cache"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
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
	t.Parallel() // mostly waits out the lock's TTL, as the cut test does
	// Each renewal may take a twelfth of the TTL and the lock lapses only
	// when all fail for a whole TTL: seconds, not a scheduler's stall.
	const ttl = 3 * time.Second
	r := cache.NewRedis(cache.RedisOptions{Addr: testenv.Redis(t), LockTTL: ttl})
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
	time.Sleep(ttl + ttl/6)
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
	var logs testserver.SyncBuffer
	r := cache.NewRedis(cache.RedisOptions{Addr: "127.0.0.1:1", Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
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
	// The client's own lines about failed dials come in the process's log
	// format, at debug level, not as plain text on standard error.
	if got := logs.String(); !strings.Contains(got, `"level":"DEBUG","msg":"redis client: `) {
		t.Fatalf("the Redis client's lines are not in the log: %q", got)
	}
}

// A lock whose key another took (its holder stalled past LockTTL) is
// reported lost at the holder's next renewal.
func TestRedisReportsLostLock(t *testing.T) {
	addr := testenv.Redis(t)
	r := cache.NewRedis(cache.RedisOptions{Addr: addr, LockTTL: time.Second, Prefix: "lost-test:"})
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

// A lookup that read the store before another replica's delete, and sets
// what it found after the delete's invalidation, does not put the deleted
// entry back.
func TestRedisKeepsNoValueSetJustAfterADelete(t *testing.T) {
	r := cache.NewRedis(cache.RedisOptions{Addr: testenv.Redis(t), Prefix: "tomb-test:"})
	defer r.Close()
	ctx := context.Background()
	if err := r.Delete(ctx, "link:repo@d"); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(ctx, "link:repo@d", []byte("found before the delete"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get(ctx, "link:repo@d"); !errors.Is(err, registry.ErrCacheMiss) {
		t.Fatalf("a value set just after the delete is served: %q %v", v, err)
	}
	if err := r.Set(ctx, "link:repo@other", []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get(ctx, "link:repo@other"); err != nil || string(v) != "1" {
		t.Fatalf("another key: %q %v", v, err)
	}
}

// Registries that share a Redis under different prefixes share no entry.
func TestRedisPrefixesKeepRegistriesApart(t *testing.T) {
	addr := testenv.Redis(t)
	a := cache.NewRedis(cache.RedisOptions{Addr: addr, Prefix: "prod:"})
	b := cache.NewRedis(cache.RedisOptions{Addr: addr, Prefix: "staging:"})
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	if err := a.Set(ctx, "link:r@d", []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "link:r@d"); !errors.Is(err, registry.ErrCacheMiss) {
		t.Fatalf("another prefix's entry: %v", err)
	}
	if _, err := a.TryLock(ctx, "r/u"); err != nil {
		t.Fatal(err)
	}
	if unlock, err := b.TryLock(ctx, "r/u"); err != nil {
		t.Fatalf("another prefix's lock: %v", err)
	} else {
		unlock()
	}
}

// lateReplies forwards to a Redis, holding back the next reply for longer
// than the client's read timeout once armed.
type lateReplies struct {
	net.Listener
	armed atomic.Bool
}

func newLateReplies(t *testing.T, target string) *lateReplies {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lateReplies{Listener: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 && p.armed.CompareAndSwap(true, false) {
						time.Sleep(1200 * time.Millisecond)
					}
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// A lock whose SET's reply comes after the client's timeout, which the
// client then retries, is the caller's: the retry finds the key the first
// attempt set. Nor is a session ever locked out by a key no one holds.
func TestRedisLockSurvivesALateReply(t *testing.T) {
	addr := testenv.Redis(t)
	p := newLateReplies(t, addr)
	r := cache.NewRedis(cache.RedisOptions{Addr: p.Addr().String(), Prefix: "late-test:"})
	defer r.Close()
	ctx := context.Background()
	if err := r.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	p.armed.Store(true)
	unlock, err := r.TryLock(ctx, "repo/u1")
	if err == nil {
		if _, err := r.TryLock(ctx, "repo/u1"); !errors.Is(err, registry.ErrLocked) {
			t.Fatalf("the lock taken through a late reply is not held: %v", err)
		}
		unlock()
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		unlock, err := r.TryLock(ctx, "repo/u1")
		if err == nil {
			unlock()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no one holds the session, yet it stays locked: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cancelOnDelete cancels a context once the store has deleted something,
// as a client that hangs up just then does.
type cancelOnDelete struct {
	driver.Driver
	cancel context.CancelFunc
}

func (c cancelOnDelete) Delete(ctx context.Context, path string) error {
	err := c.Driver.Delete(ctx, path)
	c.cancel()
	return err
}

func (c cancelOnDelete) RemoveObject(ctx context.Context, path string) error {
	err := driver.RemoveObject(ctx, c.Driver, path)
	c.cancel()
	return err
}

// A blob delete whose client hangs up once the store has changed still
// invalidates the cache every replica reads.
func TestRedisInvalidationOutlivesTheRequest(t *testing.T) {
	r := cache.NewRedis(cache.RedisOptions{Addr: testenv.Redis(t), Prefix: "hangup-test:"})
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	reg := registry.New(cancelOnDelete{inmemory.New(), cancel}, registry.Options{Cache: r, Locker: r})
	repo, err := reg.Repository("repo")
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("layer bytes")
	d := digest.FromBytes(content)
	if _, err := repo.Blobs().Put(context.Background(), d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Blobs().Stat(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if err := repo.Blobs().Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Blobs().Stat(context.Background(), d); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("a blob deleted by a client that hung up is still found: %v", err)
	}
}

// Forget drops an entry to be read afresh: the value read next is cached
// at once, unlike after a Delete. A value with no TTL is kept.
func TestRedisForgetLeavesNoTombstone(t *testing.T) {
	r := cache.NewRedis(cache.RedisOptions{Addr: testenv.Redis(t), Prefix: "forget-test:"})
	defer r.Close()
	ctx := context.Background()
	if err := r.Forget(ctx, "link:repo@d"); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(ctx, "link:repo@d", []byte("read afresh"), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get(ctx, "link:repo@d"); err != nil || string(v) != "read afresh" {
		t.Fatalf("after Forget: %q %v", v, err)
	}
}

// cuttable forwards to a Redis until cut, then refuses connections and
// closes those it forwarded, as a partition between a replica and Redis.
type cuttable struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCuttable(t *testing.T, target string) *cuttable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttable{Listener: ln}
	t.Cleanup(p.cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *cuttable) cut() {
	p.Listener.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// A holder cut off from Redis cannot renew its lock: it is told the lock
// is lost while Redis still keeps the key, before another could take it.
func TestRedisReportsLossBeforeALockItCannotRenewLapses(t *testing.T) {
	t.Parallel() // mostly waits out the lock's TTL
	// The loss comes a twelfth of the TTL before the key lapses: half a
	// second for this goroutine to wake on a loaded machine.
	const ttl = 6 * time.Second
	addr := testenv.Redis(t)
	p := newCuttable(t, addr)
	r := cache.NewRedis(cache.RedisOptions{Addr: p.Addr().String(), LockTTL: ttl, Prefix: "cut-test:"})
	defer r.Close()
	direct := redis.NewClient(&redis.Options{Addr: addr})
	defer direct.Close()
	const key = "cut-test:lock:repo/u1"
	ctx := context.Background()
	unlock, lost, err := r.TryLockLost(ctx, "repo/u1")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	// Cut just after the first renewal, seen as the key's TTL going back
	// up: the next is a third of the TTL away, so none is under way.
	prev, err := direct.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(ttl); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-lost:
			t.Fatal("a lock kept by its holder reported lost")
		default:
		}
		pttl, err := direct.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pttl > prev {
			break
		}
		prev = pttl
		if time.Now().After(deadline) {
			t.Fatal("the lock was not renewed within its TTL")
		}
	}
	p.cut()
	// No later than Redis lets the key lapse: it counts the TTL from a
	// moment after sent. The connection is open already: no dial here.
	sent := time.Now()
	pttl, err := direct.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= 0 {
		t.Fatalf("the key has no TTL left at the cut: %v", pttl)
	}
	lapses := sent.Add(pttl)
	select {
	case <-lost:
		if now := time.Now(); !now.Before(lapses) {
			t.Fatalf("loss reported only %v after Redis let the key lapse", now.Sub(lapses))
		}
	case <-time.After(2 * ttl):
		t.Fatal("a lock that could not be renewed was never reported lost")
	}
}
