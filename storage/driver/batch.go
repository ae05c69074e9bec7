package driver

import (
	"context"
	"sync"
)

// Batch lets one request make several changes durable with one wait.
//
// Some backends (a file system) make a new name durable with a sync shared
// by every change made before it, so a request that makes several names (a
// blob, then its link) need wait only once, after the last. Under a context
// from WithBatch, PutContent, Create and Move may return once their change
// is visible but before it is durable, and Commit then waits once for all
// of them. Changes are visible in the order they are made, but until Commit
// returns a crash may keep any subset of them: batch only changes of which
// every subset is harmless (a link without its blob reads as absent), and
// Commit between changes whose order must survive a crash. Backends whose
// changes are durable on return (an object store) ignore batches. Nothing
// made under a batch may be reported as stored before Commit returns nil.
type Batch struct {
	mu   sync.Mutex
	keys []any
	owed map[any]Owed
}

// Owed is what a batch owes one backend: a sync that makes every change
// recorded in it durable.
type Owed interface {
	Sync() error
}

type batchKey struct{}

// Deferring is implemented by drivers that use batches: under one, their
// writes may be visible before they are durable, so after a crash a later
// write of a batch may be there without an earlier one. Callers that read
// one object as proof of another (a record of its bytes) check both on
// such drivers only.
type Deferring interface {
	DefersUnderBatch() bool
}

// Defers reports whether d may defer durability under a Batch.
func Defers(d Driver) bool {
	x, ok := d.(Deferring)
	return ok && x.DefersUnderBatch()
}

// DefersUnderBatch implements Deferring for the wrapped driver.
func (i *instrumented) DefersUnderBatch() bool { return Defers(i.d) }

// WithBatch returns ctx carrying a new, empty batch.
func WithBatch(ctx context.Context) (context.Context, *Batch) {
	b := &Batch{}
	return context.WithValue(ctx, batchKey{}, b), b
}

// Defer is for drivers: when ctx carries a batch it calls add, under the
// batch's lock, with what the batch owes under key (made by mk the first
// time: one Sync of it makes every change recorded in it durable) and
// returns true; the driver may then return without waiting. Without a
// batch it returns false and the driver waits itself.
func Defer[T Owed](ctx context.Context, key any, mk func() T, add func(T)) bool {
	b, _ := ctx.Value(batchKey{}).(*Batch)
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.owed[key]
	if !ok {
		o = mk()
		b.oweLocked(key, o)
	}
	add(o.(T))
	return true
}

// oweLocked records o as owed under key; b.mu is held.
func (b *Batch) oweLocked(key any, o Owed) {
	if b.owed == nil {
		b.owed = make(map[any]Owed)
	}
	b.keys = append(b.keys, key)
	b.owed[key] = o
}

// Commit makes every change made under the batch so far durable. The
// batch may be used again afterwards; after a failure, what was not made
// durable stays owed, so a later Commit tries again rather than report it
// done. Changes under the batch must not be made while Commit runs.
func (b *Batch) Commit() error {
	b.mu.Lock()
	keys, owed := b.keys, b.owed
	b.keys, b.owed = nil, nil
	b.mu.Unlock()
	for i, k := range keys {
		if err := owed[k].Sync(); err != nil {
			b.mu.Lock()
			defer b.mu.Unlock()
			for _, left := range keys[i:] {
				if _, ok := b.owed[left]; !ok {
					b.oweLocked(left, owed[left])
				}
			}
			return err
		}
	}
	return nil
}
