package registry

import (
	"context"
	"errors"
	"sync"
	"time"
)

// keyQueue serialises this process's holders of a key: each waits on a
// channel for the one before to hand the key over, rather than poll.
type keyQueue struct {
	mu   sync.Mutex
	keys map[string]*queuedKey
}

type queuedKey struct {
	token chan struct{} // holds a value while the key is held
	refs  int           // holders and waiters; the entry goes at 0
}

var errQueueTimeout = errors.New("registry: key still held at the deadline")

func newKeyQueue() *keyQueue { return &keyQueue{keys: map[string]*queuedKey{}} }

// lock takes key, waiting until deadline (a zero deadline: not at all) or
// ctx's end. waited, when not nil, is told when the key is found held.
// errQueueTimeout says the key was still held.
func (q *keyQueue) lock(ctx context.Context, key string, deadline time.Time, waited func(string)) (func(), error) {
	q.mu.Lock()
	k := q.keys[key]
	if k == nil {
		k = &queuedKey{token: make(chan struct{}, 1)}
		q.keys[key] = k
	}
	k.refs++
	q.mu.Unlock()
	drop := func() {
		q.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(q.keys, key)
		}
		q.mu.Unlock()
	}
	release := func() {
		<-k.token
		drop()
	}
	select {
	case k.token <- struct{}{}:
		return release, nil
	default:
	}
	if waited != nil {
		waited(key)
	}
	if deadline.IsZero() {
		drop()
		return nil, errQueueTimeout
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case k.token <- struct{}{}:
		return release, nil
	case <-t.C:
		drop()
		return nil, errQueueTimeout
	case <-ctx.Done():
		drop()
		return nil, context.Cause(ctx)
	}
}
