package logging

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Buffered gathers the access log's lines and writes them in batches, at
// most interval after each line, or as soon as bufferSize bytes wait. One
// write(2) per request to a pipe or file costs a HEAD about a fifth of its
// time; the lines of the last interval lost in a crash are the price, and
// Close loses none: lines written after it go straight through.
type Buffered struct {
	mu     sync.Mutex
	out    io.Writer
	w      *bufio.Writer
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

const bufferSize = 64 << 10

// NewBuffered starts flushing to w every interval until Close.
func NewBuffered(w io.Writer, interval time.Duration) *Buffered {
	b := &Buffered{out: w, w: bufio.NewWriterSize(w, bufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

// Write keeps p, one line from slog, whole in one batch. A batch its
// writer refuses is dropped, not p.
func (b *Buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.out.Write(p)
	}
	if len(p) > b.w.Available() && b.w.Buffered() > 0 {
		b.flush()
	}
	return b.w.Write(p)
}

// Flush writes what waits.
func (b *Buffered) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flush()
}

// flush drops a batch its writer refused, so that one failed write (a
// full disk) costs those lines and not every later one.
func (b *Buffered) flush() error {
	err := b.w.Flush()
	if err != nil {
		b.w.Reset(b.out)
	}
	return err
}

// Close stops the flushing and writes what waits; later lines are
// written at once.
func (b *Buffered) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	err := b.flush()
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return err
}
