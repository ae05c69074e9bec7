package registry

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Locker grants exclusive, non-blocking ownership of a key (an upload
// session) so two writers never interleave bytes. Implementations span what
// the deployment shares: one process, or replicas through Redis or the
// storage backend.
type Locker interface {
	// TryLock takes key or fails at once with ErrLocked.
	TryLock(ctx context.Context, key string) (unlock func(), err error)
}

// ErrLocked is returned by TryLock when another writer holds the key.
var ErrLocked = &Error{Code: CodeBlobUploadInvalid, Message: "upload session is in use by another request"}

// NewLocalLocker returns a Locker for one process.
func NewLocalLocker() Locker { return &localLocker{held: map[string]struct{}{}} }

type localLocker struct {
	mu   sync.Mutex
	held map[string]struct{}
}

func (l *localLocker) TryLock(_ context.Context, key string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, busy := l.held[key]; busy {
		return nil, ErrLocked
	}
	l.held[key] = struct{}{}
	return func() {
		l.mu.Lock()
		delete(l.held, key)
		l.mu.Unlock()
	}, nil
}

// NewFallbackLocker uses primary, and fallback only when primary fails for
// any reason other than the key being held — so uploads keep working, more
// slowly, when Redis is down. Replicas that disagree on whether Redis is up
// could each lock in a different place; that takes a partition between some
// replicas and Redis while two requests race on one session.
func NewFallbackLocker(primary, fallback Locker) Locker {
	return fallbackLocker{primary, fallback}
}

type fallbackLocker struct{ primary, fallback Locker }

func (f fallbackLocker) TryLock(ctx context.Context, key string) (func(), error) {
	unlock, err := f.primary.TryLock(ctx, key)
	if err == nil || errors.Is(err, ErrLocked) {
		return unlock, err
	}
	return f.fallback.TryLock(ctx, key)
}

// KeepAlive calls renew every interval until the returned stop is called;
// stop waits for a renewal in progress. renew returns false to end early
// (the lease is no longer ours). Lockers with leases use it so a holder
// working longer than the lease keeps it.
func KeepAlive(interval time.Duration, renew func() bool) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if !renew() {
					return
				}
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
