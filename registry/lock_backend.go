package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"time"

	"github.com/lading-registry/lading/storage/driver"
)

// NewBackendLocker returns a Locker whose locks are leases kept in the
// storage backend itself, for replicas that share a bucket and nothing else.
// A lease is created with the driver's first-writer-wins Create, renewed by
// its holder while held, and may be broken by anyone once it has expired,
// so a crashed replica never wedges a session for longer than ttl.
//
// Breaking an expired lease is delete-then-create: two processes that find
// the same expired lease at the same instant can both believe they hold it.
// Renewal keeps that to replicas stalled for longer than ttl, and writes
// over the lease only while it is as its holder left it, so a stalled
// holder never takes back a lease another broke (where the driver has
// ContentReplacer). Redis, when configured, gives locks without the window.
func NewBackendLocker(d driver.Driver, ttl time.Duration) Locker {
	if ttl <= 0 {
		ttl = 2 * time.Minute
	}
	return &backendLocker{d: d, ttl: ttl, now: time.Now}
}

type backendLocker struct {
	d   driver.Driver
	ttl time.Duration
	now func() time.Time
}

type lease struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

func (l *backendLocker) TryLock(ctx context.Context, key string) (func(), error) {
	unlock, _, err := l.TryLockLost(ctx, key)
	return unlock, err
}

// TryLockLost implements LossReporter: a renewal that finds the lease gone
// or another's reports the loss, as do renewals failing or hanging until
// the lease could lapse (KeepLease).
func (l *backendLocker) TryLockLost(ctx context.Context, key string) (func(), <-chan struct{}, error) {
	path := lockPath(key)
	var tok [16]byte
	rand.Read(tok[:])
	mine := lease{Token: hex.EncodeToString(tok[:])}
	var taken time.Time
	for attempt := 0; ; attempt++ {
		taken = time.Now()
		mine.Expires = l.now().Add(l.ttl)
		raw, _ := json.Marshal(mine)
		err := l.d.Create(ctx, path, raw)
		if err == nil {
			break
		}
		if !errors.Is(err, driver.ErrExists) {
			if mayHaveLanded(ctx, err) {
				// Its answer lost, or the request cancelled by a client
				// hanging up: that lease would hold the key for its
				// whole term, and lie in /locks until the key is locked
				// again.
				l.releaseLater(path, mine)
			}
			return nil, nil, err
		}
		if attempt > 0 {
			return nil, nil, ErrLocked
		}
		raw, held, gerr := l.readRaw(ctx, path)
		if gerr == nil && held.Token == mine.Token {
			// This Create's own write, its answer lost and the request
			// retried by the store's client, which then found it there.
			break
		}
		if gerr == nil && l.now().Before(held.Expires) {
			return nil, nil, ErrLocked
		}
		if gerr != nil && !driver.IsNotFound(gerr) {
			return nil, nil, gerr
		}
		// Released meanwhile (not found): just try again. An expired lease
		// is removed only as read: two that found it expired would
		// otherwise both take it, the second removing the first's new one.
		if gerr == nil {
			removed, derr := driver.RemoveObjectIf(ctx, l.d, path, raw)
			if derr != nil {
				return nil, nil, derr
			}
			if !removed {
				return nil, nil, ErrLocked
			}
		}
	}
	written, _ := json.Marshal(mine)
	stop, lost := KeepLease(l.ttl, taken, func(ctx context.Context) error {
		renewed := mine
		renewed.Expires = l.now().Add(l.ttl)
		raw, _ := json.Marshal(renewed)
		// Written over the lease only while it is as this holder left it:
		// a holder that stalled past its term must not write its lease
		// back over one another took meanwhile (atomic where the driver
		// has ContentReplacer).
		ok, err := driver.ReplaceObjectIf(ctx, l.d, path, written, raw)
		if err != nil {
			return err // the backend may answer next time
		}
		if !ok {
			// Gone, another's, or a renewal of this holder's that landed
			// though its answer was lost: read what is there.
			was, held, err := l.readRaw(ctx, path)
			if driver.IsNotFound(err) || err == nil && held.Token != mine.Token {
				return ErrLeaseGone // broken by another after expiry
			}
			if err != nil {
				return err
			}
			if ok, err = driver.ReplaceObjectIf(ctx, l.d, path, was, raw); err != nil {
				return err
			}
			if !ok {
				// Taken since that read, or this very write landed and its
				// retry, cut off, met it: the bytes tell.
				if now, err := l.d.GetContent(ctx, path); err != nil || !bytes.Equal(now, raw) {
					return ErrLeaseGone
				}
			}
		}
		// Only a stored renewal extends what unlock trusts without a read.
		mine, written = renewed, raw
		return nil
	})
	return func() {
		stop() // after it, mine is no longer renewed concurrently
		ctx := context.Background()
		// Nobody breaks a lease before it expires, so one well within its
		// term is still ours and needs no read before the delete: the read
		// is for a holder that stalled past expiry, or heard it was lost.
		// The margin covers clock skew between replicas.
		if mine.Expires.Sub(l.now()) > l.ttl/2 && !closed(lost) {
			if driver.RemoveObject(ctx, l.d, path) != nil {
				l.releaseLater(path, mine)
			}
			return
		}
		// As read: a lease broken and taken again since is the other's.
		if raw, held, err := l.readRaw(ctx, path); err == nil && held.Token == mine.Token {
			// Refused: rewritten since the read, by a renewal of this
			// holder's landing late, or by another; releaseLater tells.
			if removed, err := driver.RemoveObjectIf(ctx, l.d, path, raw); err != nil || !removed {
				l.releaseLater(path, mine)
			}
		}
	}, lost, nil
}

// mayHaveLanded reports whether a write that failed with err may have been
// applied all the same: its request cut off, not refused.
func mayHaveLanded(ctx context.Context, err error) bool {
	var ne net.Error
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

// releaseLater removes lease ls at path in the background, until it
// expires: only while it holds ls's token, and only as read, since a
// delete that failed may have gone through, and another taken the key
// since. By token, not by ls's bytes: a renewal applied with its answer
// lost left newer bytes than ls.
func (l *backendLocker) releaseLater(path string, ls lease) {
	ReleaseLater(time.Now().Add(ls.Expires.Sub(l.now())), func(ctx context.Context) error {
		raw, held, err := l.readRaw(ctx, path)
		if driver.IsNotFound(err) || err == nil && held.Token != ls.Token {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = driver.RemoveObjectIf(ctx, l.d, path, raw)
		return err
	})
}

func (l *backendLocker) read(ctx context.Context, path string) (lease, error) {
	_, ls, err := l.readRaw(ctx, path)
	return ls, err
}

// readRaw is read with the lease's bytes.
func (l *backendLocker) readRaw(ctx context.Context, path string) ([]byte, lease, error) {
	var ls lease
	raw, err := l.d.GetContent(ctx, path)
	if err != nil {
		return nil, ls, err
	}
	if err := json.Unmarshal(raw, &ls); err != nil {
		// Unreadable lease: treat as expired so it cannot wedge the key.
		return raw, lease{}, nil
	}
	return raw, ls, nil
}

// closed reports whether c is closed.
func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
