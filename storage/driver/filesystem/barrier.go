package filesystem

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// barrier makes every name change (rename, link, mkdir) made before it
// durable, with one syncfs(2) of the file system shared by every caller that
// arrives while the previous one runs. A directory fsync per operation costs
// a journal commit each; concurrent pushes would pay one per blob twice
// over. File contents are synced by their writers before they are renamed
// into place, so the barrier never publishes a name whose bytes could still
// be lost.
type barrier struct {
	root *os.File

	mu      sync.Mutex
	cond    sync.Cond
	started uint64 // syncs begun; one is running while started > done
	done    uint64 // syncs finished; the latest's error is err
	err     error
}

func newBarrier(root string) (*barrier, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	b := &barrier{root: f}
	b.cond.L = &b.mu
	return b, nil
}

// wait returns once a sync that began after the call has finished: one
// already running may have missed this caller's changes.
func (b *barrier) wait() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	target := b.started + 1
	for b.done < target {
		if b.started != b.done {
			b.cond.Wait()
			continue
		}
		b.started++
		b.mu.Unlock()
		err := unix.Syncfs(int(b.root.Fd()))
		b.mu.Lock()
		b.done = b.started
		b.err = err
		b.cond.Broadcast()
	}
	return b.err
}
