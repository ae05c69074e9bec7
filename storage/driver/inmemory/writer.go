package inmemory

import (
	"context"
	"time"

	"github.com/lading-registry/lading/storage/driver"
)

// writer appends straight to the stored object: what Reader sees before
// Commit is unspecified, and this is the cheapest of the allowed answers.
type writer struct {
	d    *Driver
	path string
	obj  *object
	// done is set by Close, Commit or Cancel; it is the error later writes get.
	done error
}

func (w *writer) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.done != nil {
		return 0, w.done
	}
	w.obj.data = append(w.obj.data, p...)
	w.obj.modTime = time.Now()
	return len(p), nil
}

func (w *writer) Size() int64 {
	w.d.mu.RLock()
	defer w.d.mu.RUnlock()
	return int64(len(w.obj.data))
}

func (w *writer) Close() error {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.done == driver.ErrWriterClosed {
		return driver.ErrWriterClosed
	}
	w.done = driver.ErrWriterClosed
	return nil
}

func (w *writer) Commit(context.Context) error {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.done != nil {
		return w.done
	}
	w.done = driver.ErrWriterCommitted
	return nil
}

func (w *writer) Cancel(context.Context) error {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.done == driver.ErrWriterClosed || w.done == driver.ErrWriterCommitted {
		return w.done
	}
	w.done = driver.ErrWriterCancelled
	// Only the object this writer wrote; a later PutContent's stays.
	if w.d.objects[w.path] == w.obj {
		w.d.remove(w.path)
	}
	return nil
}
