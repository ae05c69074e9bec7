package filesystem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lading-registry/lading/storage/driver"
	"golang.org/x/sys/unix"
)

// Writer implements driver.Driver. The writer writes in place at the path:
// what is seen there before Commit is unspecified, and a large object is
// not worth copying once more at the end.
func (d *Driver) Writer(ctx context.Context, path string, append bool) (driver.FileWriter, error) {
	file, err := d.file(path)
	if err != nil {
		return nil, err
	}
	since := d.barrier.since() // before the file's first byte is written
	var f *os.File
	if append {
		f, err = openFile(file, unix.O_WRONLY|unix.O_APPEND, 0)
	} else {
		// Data in progress needs no durable name: Move publishes it.
		err = d.place(ctx, file, false, func() error {
			f, err = openFile(file, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
			return err
		})
	}
	if err != nil {
		return nil, d.pathErr(path, err)
	}
	w := &writer{d: d, f: f, file: file}
	if append {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		w.size = fi.Size()
		w.behind = w.size
		w.start = w.size
	}
	if w.size == 0 {
		// Every byte will go through this writer (see fileDurable).
		w.since = since
	}
	return w, nil
}

// openFile opens a file for writing through openFD, as every chunk of
// every upload does.
func openFile(name string, flags int, perm uint32) (*os.File, error) {
	fd, err := openFD(name, flags, perm)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

type writer struct {
	d    *Driver
	f    *os.File
	file string
	size int64
	// start is the file's size at the open.
	start int64
	// since is the barrier's since when the file was empty at the open,
	// else 0 (see fileDurable).
	since uint64
	// behind is where the bytes not yet handed to writeback begin.
	behind int64
	// done is set by Commit or Cancel: the error a later Write gets.
	done   error
	closed bool
	// dropped says a failed Commit closed the writer and removed its file.
	dropped bool
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	if w.size-w.behind >= writeBehind {
		// Start writing what came so far while more arrives, rather than
		// all of it at Commit: the disk works during the upload, and a
		// sync or fsync at Commit (or another request's) finds little left.
		unix.SyncFileRange(int(w.f.Fd()), w.behind, w.size-w.behind, unix.SYNC_FILE_RANGE_WRITE)
		w.behind = w.size
	}
	return n, err
}

// Retract implements driver.Retracter: the file is cut back to its size
// at the open, unless another writer has appended since (its size is not
// this writer's), which a truncate would cut too.
func (w *writer) Retract() error {
	if err := w.usable(); err != nil || w.size == w.start {
		return err
	}
	if ok, err := w.unchanged(); !ok {
		return err // another writer's bytes are not this one's to cut
	}
	if err := unix.Ftruncate(int(w.f.Fd()), w.start); err != nil {
		return err
	}
	w.size = w.start
	w.behind = min(w.behind, w.start)
	// A writer not opened to append would write its next bytes past a
	// hole: it is done.
	w.done = errRetracted
	return nil
}

var errRetracted = errors.New("filesystem: writer retracted")

// unchanged reports whether the file holds what this writer believes it
// wrote: no other writer (a request whose lock lapsed) appended to it or
// cut it meanwhile.
func (w *writer) unchanged() (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(w.f.Fd()), &st); err != nil {
		return false, err
	}
	return st.Size == w.size, nil
}

// writeBehind is how much a writer lets the kernel hold before starting to
// write it out.
const writeBehind = 8 << 20

func (w *writer) Size() int64 { return w.size }

// Close keeps the data without syncing it: a writer reopened later goes on
// from whatever the kernel holds, and only Commit promises durability.
func (w *writer) Close() error {
	if w.closed {
		if w.done == driver.ErrWriterCancelled || w.dropped {
			return nil
		}
		return driver.ErrWriterClosed
	}
	w.closed = true
	return w.f.Close()
}

func (w *writer) Commit(context.Context) error {
	if err := w.usable(); err != nil {
		return err
	}
	// Only this writer's bytes may be published under the caller's hash
	// of them: a file another writer changed meanwhile is refused.
	if ok, err := w.unchanged(); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("filesystem: %s does not hold the %d bytes its writer wrote: %w", w.file, w.size, driver.ErrWriterConflict)
	}
	// The bytes must be durable before a Move publishes them (the name
	// here is transient): the barrier's sync, or an fsync of the file.
	if err := w.d.fileDurable(w.file, int(w.f.Fd()), w.d.barrier.ticket(), w.since); err != nil {
		// A failed writeback is reported once: a later Commit would
		// succeed over bytes that never reached the disk. The file goes,
		// so that whoever resumes it finds nothing rather than them.
		w.dropped = true
		w.discard(err)
		return err
	}
	w.done = driver.ErrWriterCommitted
	return nil
}

// Cancel needs the writer open: once closed, another writer may have taken
// the path over, and this one must not destroy its work.
func (w *writer) Cancel(context.Context) error {
	switch {
	case w.done == driver.ErrWriterCancelled:
		return nil
	case w.closed || w.done != nil:
		return w.usable()
	}
	return w.discard(driver.ErrWriterCancelled)
}

// discard closes the writer with done and removes its file.
func (w *writer) discard(done error) error {
	w.done, w.closed = done, true
	w.f.Close()
	if err := os.Remove(w.file); err != nil && !os.IsNotExist(err) {
		return err
	}
	w.d.prune(filepath.Dir(w.file))
	return nil
}

func (w *writer) usable() error {
	switch {
	case w.dropped:
		return w.done
	case w.closed:
		return driver.ErrWriterClosed
	case w.done != nil:
		return w.done
	}
	return nil
}
