package registry

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/lading-registry/lading/logging"
)

// Locker grants exclusive, non-blocking ownership of a key (an upload
// session) so two writers never interleave bytes. Implementations span what
// the deployment shares: one process, or replicas through Redis or the
// storage backend.
type Locker interface {
	// TryLock takes key or fails at once with ErrLocked.
	TryLock(ctx context.Context, key string) (unlock func(), err error)
}

// LossReporter is a Locker whose locks are leases that can lapse while
// held: a holder stalled past its lease (a pause, a partition) finds the
// key taken by another. TryLockLost is TryLock plus a channel closed once
// the lock is no longer the caller's, or may lapse before its holder can
// renew it, so that it stops writing.
type LossReporter interface {
	TryLockLost(ctx context.Context, key string) (unlock func(), lost <-chan struct{}, err error)
}

// tryLock takes key from l, with the channel that tells of its loss: nil,
// never closed, from a Locker that cannot lose a lock.
func tryLock(ctx context.Context, l Locker, key string) (func(), <-chan struct{}, error) {
	if lr, ok := l.(LossReporter); ok {
		return lr.TryLockLost(ctx, key)
	}
	unlock, err := l.TryLock(ctx, key)
	return unlock, nil, err
}

// errLeaseLost ends work done under a lease that lapsed, or could not be
// renewed before its term ends (see whileHeld).
var errLeaseLost = errors.New("registry: the lease lapsed or could not be renewed; another process may hold it now")

// whileHeld returns ctx, canceled with errLeaseLost as its cause once lost
// is closed, so that long work under a lease (a collection, a purge) stops
// at its next request rather than run on beside the lease's new holder.
// stop releases what it holds.
func whileHeld(ctx context.Context, lost <-chan struct{}) (context.Context, func()) {
	if lost == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-lost:
			cancel(errLeaseLost)
		case <-done:
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// holdLease takes the backend lease key for work one process at a time
// does (a collection, a purge, the retention rules), across replicas:
// ErrCollectorBusy when another holds it. The work runs in the context
// returned, which ends if the lease is lost; release, deferred with the
// work's error, names a lost lease in it and lets the lease go.
func (r *Registry) holdLease(ctx context.Context, key string) (held context.Context, release func(*error), err error) {
	unlock, lost, err := tryLock(ctx, NewBackendLocker(r.driver, 0), key)
	if errors.Is(err, ErrLocked) {
		return nil, nil, ErrCollectorBusy
	}
	if err != nil {
		return nil, nil, err
	}
	held, stop := whileHeld(ctx, lost)
	return held, func(err *error) {
		*err = leaseErr(held, *err)
		stop()
		unlock()
	}, nil
}

// leaseLost reports whether ctx (from whileHeld) ended with its lease.
func leaseLost(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errLeaseLost)
}

// leaseErr names a lost lease as the reason err ended the work, if it did.
func leaseErr(ctx context.Context, err error) error {
	if err != nil && leaseLost(ctx) {
		return errors.Join(errLeaseLost, err)
	}
	return err
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
// replicas and Redis while two requests race on one session. Each fallback
// is logged at warning level, at most once a minute, so that a Redis that
// never answers (a wrong password, a wrong address) does not go unnoticed.
// fellBack, when not nil, is told of each fallback (a metric).
func NewFallbackLocker(primary, fallback Locker, log *slog.Logger, fellBack func()) Locker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if fellBack == nil {
		fellBack = func() {}
	}
	return &fallbackLocker{primary: primary, fallback: fallback, log: log, fellBack: fellBack}
}

type fallbackLocker struct {
	primary, fallback Locker
	log               *slog.Logger
	warned            logging.EveryMinute
	fellBack          func()
}

func (f *fallbackLocker) TryLock(ctx context.Context, key string) (func(), error) {
	unlock, _, err := f.TryLockLost(ctx, key)
	return unlock, err
}

func (f *fallbackLocker) TryLockLost(ctx context.Context, key string) (func(), <-chan struct{}, error) {
	unlock, lost, err := tryLock(ctx, f.primary, key)
	if err == nil || errors.Is(err, ErrLocked) || ctx.Err() != nil {
		return unlock, lost, err
	}
	f.fellBack()
	if f.warned.Allow() {
		f.log.Warn("lock failed in Redis, taken in the store instead (logged once a minute)", "error", err)
	}
	return tryLock(ctx, f.fallback, key)
}

// releaseRetry is the first pause before a failed release is tried again;
// the pauses double up to 8 s. A variable for the tests.
var releaseRetry = 500 * time.Millisecond

// ReleaseLater tries release again in the background until it succeeds or
// deadline passes. A release that failed once (a store throttling, a
// connection dropped) would leave the key locked by no one until its lease
// ends, and every request on it refused meanwhile. release must be safe to
// repeat until deadline: past it, the key may be another's.
func ReleaseLater(deadline time.Time, release func(context.Context) error) {
	go func() {
		for pause := releaseRetry; time.Now().Add(pause).Before(deadline); pause = min(2*pause, 8*time.Second) {
			time.Sleep(pause)
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			err := release(ctx)
			cancel()
			if err == nil {
				return
			}
		}
	}()
}

// ErrLeaseGone is what a lease's renewal returns when the lease is no
// longer the holder's: lapsed, or taken by another.
var ErrLeaseGone = errors.New("registry: the lease is gone")

// KeepLease renews a lease of ttl, taken by a request sent at taken, every
// ttl/3 until the returned stop is called; stop waits for a renewal in
// progress. renew returns ErrLeaseGone when the lease is no longer the
// holder's. lost is closed then, and also when the term ends before a
// renewal got through (counted, less a margin, from when the last good one
// was sent), whether the renewals failed or still hang: a holder cut off
// from where the lease is kept stops writing before another may take it,
// rather than find out afterwards. A renewal has a twelfth of the term; a
// failed one is tried again a twelfth later, so a short outage costs
// nothing (a client that keeps no deadline, go-redis on its sockets, may
// hold a renewal past its own: the term's end is kept apart).
func KeepLease(ttl time.Duration, taken time.Time, renew func(context.Context) error) (stop func(), lost <-chan struct{}) {
	interval := ttl / 3
	retry := ttl / 12
	// The margin leaves the holder time to stop, and covers clocks that
	// disagree a little.
	term := ttl - retry
	ends := taken.Add(term)
	gone := make(chan struct{})
	var once sync.Once
	lapse := func() { once.Do(func() { close(gone) }) }
	// The term's end is kept by a timer, not by the renewals, which a
	// client may hold past their deadline (go-redis reads a socket with its
	// own timeout).
	lapsed := time.AfterFunc(time.Until(ends), lapse)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer lapsed.Stop()
		next := time.NewTimer(interval)
		defer next.Stop()
		for {
			select {
			case <-quit:
				return
			case <-gone:
				return
			case <-next.C:
			}
			sent := time.Now()
			// A renewal that hangs (a connection dropped without a word) is
			// given up in time for another on a fresh one.
			deadline := sent.Add(retry)
			if ends.Before(deadline) {
				deadline = ends
			}
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			err := renew(ctx)
			cancel()
			switch {
			case err == nil:
				if !lapsed.Stop() {
					return // the term ended while the renewal was on its way
				}
				ends = sent.Add(term)
				lapsed.Reset(time.Until(ends))
				next.Reset(interval)
			case errors.Is(err, ErrLeaseGone):
				lapse()
				return
			default:
				next.Reset(retry)
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}, gone
}
