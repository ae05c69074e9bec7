package registry

import (
	"context"
	"sync"
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
