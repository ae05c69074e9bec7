package driver

import (
	"bytes"
	"context"
	"time"
)

// ObjectOps is implemented by drivers for which an operation on a path
// known to name a plain object (written by PutContent, PutState or Create,
// never by a Writer, and never the prefix of other objects) costs less than
// the general one, which must also look for objects below the path and
// writers at it: on an object store, one HEAD or DELETE instead of that and
// several listings. The registry knows which of its paths are such objects
// (blobs, links, markers, leases, session states).
type ObjectOps interface {
	// StatObject is Stat for such a path: PathNotFoundError when no
	// object is there, whatever may lie below it.
	StatObject(ctx context.Context, path string) (FileInfo, error)
	// RemoveObject deletes the object at such a path; none being there is
	// not an error.
	RemoveObject(ctx context.Context, path string) error
}

// PendingWriterLister is implemented by drivers whose writers keep what
// they have not committed out of sight of List, Walk and Stat (S3: a
// multipart upload and a hidden tree of objects), so that a purge can find
// the writers of processes that died before anything else named them.
type PendingWriterLister interface {
	// PendingWriters calls fn, in path order, for each path below dir a
	// writer not committed or cancelled was opened on, with the time it
	// last wrote.
	PendingWriters(ctx context.Context, dir string, fn func(path string, lastWrite time.Time) error) error
}

// PendingWriters is d's PendingWriters; nothing where writers keep
// nothing out of sight (a file system writes the file itself).
func PendingWriters(ctx context.Context, d Driver, dir string, fn func(path string, lastWrite time.Time) error) error {
	if l, ok := d.(PendingWriterLister); ok {
		return l.PendingWriters(ctx, dir, fn)
	}
	return nil
}

// PendingWriters implements PendingWriterLister for the wrapped driver.
func (i *instrumented) PendingWriters(ctx context.Context, dir string, fn func(path string, lastWrite time.Time) error) (err error) {
	defer i.report("PendingWriters", time.Now(), &err)
	if err := i.check(dir); err != nil {
		return err
	}
	return PendingWriters(ctx, i.d, dir, fn)
}

// Persister is implemented by drivers where an object that another
// request wrote may not be durable yet when this one finds it there (a
// file system, whose writes become durable at a sync that may come later).
type Persister interface {
	// Persist makes what is at path durable with the caller's own
	// changes: at the Commit of the batch ctx carries, else on return.
	// Nothing there is not an error: there is nothing to keep.
	Persist(ctx context.Context, path string) error
}

// Persist is d's Persist; elsewhere a write is durable once acknowledged.
func Persist(ctx context.Context, d Driver, path string) error {
	if p, ok := d.(Persister); ok {
		return p.Persist(ctx, path)
	}
	return nil
}

// RemovalPersister is implemented by drivers whose removals become
// durable only at a sync that may come later (a file system).
type RemovalPersister interface {
	// PersistRemovals makes the removals of dir's entries durable, and
	// of dir itself or its parents when Delete pruned them: at the Commit
	// of the batch ctx carries, else on return.
	PersistRemovals(ctx context.Context, dir string) error
}

// PersistRemovals is d's; elsewhere a removal is durable once done.
func PersistRemovals(ctx context.Context, d Driver, dir string) error {
	if p, ok := d.(RemovalPersister); ok {
		return p.PersistRemovals(ctx, dir)
	}
	return nil
}

// PersistRemovals implements RemovalPersister for the wrapped driver.
func (i *instrumented) PersistRemovals(ctx context.Context, dir string) (err error) {
	defer i.report("PersistRemovals", time.Now(), &err)
	if err := i.check(dir); err != nil {
		return err
	}
	return PersistRemovals(ctx, i.d, dir)
}

// Persist implements Persister for the wrapped driver.
func (i *instrumented) Persist(ctx context.Context, path string) (err error) {
	defer i.report("Persist", time.Now(), &err)
	if err := i.check(path); err != nil {
		return err
	}
	return Persist(ctx, i.d, path)
}

// ContentRemover is implemented by drivers that can remove a plain object
// only while it holds given content, so that a writer of the path in
// between keeps what it wrote: a tag removed because it names a manifest
// being deleted must not take with it the value a push has just given it.
type ContentRemover interface {
	// RemoveObjectIf removes the object at path if it holds content, and
	// reports whether it did; other content, or nothing, stays as it is.
	RemoveObjectIf(ctx context.Context, path string, content []byte) (bool, error)
}

// RemoveObjectIf is d's RemoveObjectIf, or else a read, a comparison and
// RemoveObject, which a write between the last two can lose to.
func RemoveObjectIf(ctx context.Context, d Driver, path string, content []byte) (bool, error) {
	if r, ok := d.(ContentRemover); ok {
		return r.RemoveObjectIf(ctx, path, content)
	}
	got, err := d.GetContent(ctx, path)
	if IsNotFound(err) || err == nil && !bytes.Equal(got, content) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, RemoveObject(ctx, d, path)
}

// RemoveObjectIf implements ContentRemover for the wrapped driver.
func (i *instrumented) RemoveObjectIf(ctx context.Context, path string, content []byte) (removed bool, err error) {
	defer i.report("RemoveObjectIf", time.Now(), &err)
	if err := i.check(path); err != nil {
		return false, err
	}
	return RemoveObjectIf(ctx, i.d, path, content)
}

// ContentReplacer is implemented by drivers that can replace a plain object
// only while it holds given content, so that a writer of the path in
// between keeps what it wrote: a lease renewed by a holder that stalled
// past its term must not be written back over another's.
type ContentReplacer interface {
	// ReplaceObjectIf writes content at path if the object there holds
	// old, and reports whether it did; other content, or nothing, stays.
	ReplaceObjectIf(ctx context.Context, path string, old, content []byte) (bool, error)
}

// ReplaceObjectIf is d's ReplaceObjectIf, or else a read, a comparison and
// PutContent, which a write between the last two can lose to.
func ReplaceObjectIf(ctx context.Context, d Driver, path string, old, content []byte) (bool, error) {
	if r, ok := d.(ContentReplacer); ok {
		return r.ReplaceObjectIf(ctx, path, old, content)
	}
	got, err := d.GetContent(ctx, path)
	if IsNotFound(err) || err == nil && !bytes.Equal(got, old) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, d.PutContent(ctx, path, content)
}

// ReplaceObjectIf implements ContentReplacer for the wrapped driver.
func (i *instrumented) ReplaceObjectIf(ctx context.Context, path string, old, content []byte) (replaced bool, err error) {
	defer i.report("ReplaceObjectIf", time.Now(), &err)
	if err := i.check(path); err != nil {
		return false, err
	}
	return ReplaceObjectIf(ctx, i.d, path, old, content)
}

// SegmentLimiter is implemented by drivers that hold path segments up to
// a length (a file system's names stop at 255 bytes); others have none
// short of MaxPathLength.
type SegmentLimiter interface {
	MaxSegment() int
}

// MaxSegment is d's MaxSegment, or 0 for no limit.
func MaxSegment(d Driver) int {
	if l, ok := d.(SegmentLimiter); ok {
		return l.MaxSegment()
	}
	return 0
}

// MaxSegment implements SegmentLimiter for the wrapped driver.
func (i *instrumented) MaxSegment() int { return MaxSegment(i.d) }

// StatObject is d's StatObject, or else its Stat with a directory
// reported as not found.
func StatObject(ctx context.Context, d Driver, path string) (FileInfo, error) {
	if o, ok := d.(ObjectOps); ok {
		return o.StatObject(ctx, path)
	}
	fi, err := d.Stat(ctx, path)
	if err == nil && fi.IsDir {
		return FileInfo{}, PathNotFoundError{Driver: d.Name(), Path: path}
	}
	return fi, err
}

// RemoveObject is d's RemoveObject, or else its Delete with not found
// taken as done.
func RemoveObject(ctx context.Context, d Driver, path string) error {
	if o, ok := d.(ObjectOps); ok {
		return o.RemoveObject(ctx, path)
	}
	if err := d.Delete(ctx, path); err != nil && !IsNotFound(err) {
		return err
	}
	return nil
}

// StatObject implements ObjectOps for the wrapped driver.
func (i *instrumented) StatObject(ctx context.Context, path string) (fi FileInfo, err error) {
	defer i.report("StatObject", time.Now(), &err)
	if err := i.check(path); err != nil {
		return FileInfo{}, err
	}
	return StatObject(ctx, i.d, path)
}

// RemoveObject implements ObjectOps for the wrapped driver.
func (i *instrumented) RemoveObject(ctx context.Context, path string) (err error) {
	defer i.report("RemoveObject", time.Now(), &err)
	if err := i.check(path); err != nil {
		return err
	}
	return RemoveObject(ctx, i.d, path)
}
