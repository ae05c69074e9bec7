package filesystem

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// barrier makes every change made before it (bytes written, rename, link,
// mkdir) durable, with one syncfs(2) of the file system shared by every
// caller that arrives while the previous one runs. An fsync per file or
// directory costs a journal commit or a device flush each, and concurrent
// fsyncs queue behind one another; concurrent pushes would pay several per
// blob. New bytes wait for a barrier of their own before their name is
// made, so a barrier never publishes a name whose bytes could still be lost.
type barrier struct {
	sync func() error // syncfs of the root; tests replace it

	mu      sync.Mutex
	cond    sync.Cond
	started uint64 // syncs begun; one is running while started > done
	done    uint64 // syncs finished
	// failed numbers the latest sync that failed, with its error. syncfs
	// reports a writeback error once, so a later sync's success does not
	// clear it for the callers that failed sync covered.
	failed    uint64
	failedErr error
}

func newBarrier(root string) (*barrier, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	b := &barrier{sync: func() error { return unix.Syncfs(int(f.Fd())) }}
	b.cond.L = &b.mu
	return b, nil
}

// wait returns once a sync that began after the call has finished: one
// already running may have missed this caller's changes.
func (b *barrier) wait() error { return b.waitFor(b.ticket()) }

// ticket names the first sync that begins after the call: one that covers
// every change made before it.
func (b *barrier) ticket() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started + 1
}

// waitFor returns once sync number t has finished, starting it if none is
// running. A caller may thus make a change, take a ticket, and wait later:
// by then another caller's sync may have covered it already.
func (b *barrier) waitFor(t uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.done < t {
		if b.started != b.done {
			b.cond.Wait()
			continue
		}
		b.started++
		b.mu.Unlock()
		err := b.sync()
		b.mu.Lock()
		b.done = b.started
		if err != nil {
			b.failed, b.failedErr = b.done, err
		}
		b.cond.Broadcast()
	}
	if b.failed >= t {
		return b.failedErr
	}
	return nil
}
