package driver

import (
	"errors"
	"fmt"
	"syscall"
)

var (
	// ErrStopWalk ends a Walk early; Walk then returns nil.
	ErrStopWalk = errors.New("driver: stop walk")
	// ErrExists is returned by Create when the path is taken.
	ErrExists = errors.New("driver: path exists")
	// ErrUnsupported is returned by operations a backend cannot offer.
	ErrUnsupported = errors.New("driver: unsupported operation")

	// A finished FileWriter answers later calls with how it finished, so
	// a caller using it by mistake learns why it refuses.

	// ErrWriterClosed is returned by a FileWriter used after Close.
	ErrWriterClosed = errors.New("driver: writer closed")
	// ErrWriterCommitted is returned by Write or Commit after Commit.
	ErrWriterCommitted = errors.New("driver: writer committed")
	// ErrWriterCancelled is returned by Write or Commit after Cancel.
	ErrWriterCancelled = errors.New("driver: writer cancelled")

	// ErrWriterConflict is returned by a FileWriter that finds bytes it
	// did not write in its object (another writer's, one whose lease
	// lapsed): what its caller knows of the object, such as a hash of the
	// bytes it wrote, no longer holds, and the object cannot go on.
	ErrWriterConflict = errors.New("driver: another writer changed the object")
)

// PathNotFoundError means nothing exists at Path.
type PathNotFoundError struct {
	Driver string
	Path   string
}

func (e PathNotFoundError) Error() string {
	return fmt.Sprintf("%s: path not found: %s", e.Driver, e.Path)
}

// InvalidPathError means Path breaks the path rules.
type InvalidPathError struct {
	Driver string
	Path   string
	Reason string
}

func (e InvalidPathError) Error() string {
	return fmt.Sprintf("%s: invalid path %q: %s", e.Driver, e.Path, e.Reason)
}

// InvalidOffsetError means a read started beyond the end of an object, or
// at a negative offset.
type InvalidOffsetError struct {
	Driver string
	Path   string
	Offset int64
}

func (e InvalidOffsetError) Error() string {
	return fmt.Sprintf("%s: invalid offset %d for %s", e.Driver, e.Offset, e.Path)
}

// IsNotFound reports whether err means the path does not exist.
func IsNotFound(err error) bool {
	var nf PathNotFoundError
	return errors.As(err, &nf)
}

// IsInvalidPath reports whether err is an InvalidPathError.
func IsInvalidPath(err error) bool {
	var ip InvalidPathError
	return errors.As(err, &ip)
}

// IsInvalidOffset reports whether err is an InvalidOffsetError.
func IsInvalidOffset(err error) bool {
	var io InvalidOffsetError
	return errors.As(err, &io)
}

// UnavailableError means the backend could not be reached or asked to be
// called again later (a refused or timed-out connection, a 503 or a
// throttling answer from an object store): the request may succeed if
// retried, unlike a fault of the data or of the call.
type UnavailableError struct {
	Driver string
	Err    error
}

func (e UnavailableError) Error() string {
	return fmt.Sprintf("%s: backend unavailable: %v", e.Driver, e.Err)
}

func (e UnavailableError) Unwrap() error { return e.Err }

// IsUnavailable reports whether err says the backend is unavailable: a
// file system turned read-only too (ext4's errors=remount-ro after a disk
// error), which refuses every write until an operator steps in, and a
// process or system out of file descriptors, which a retry may find free.
func IsUnavailable(err error) bool {
	var u UnavailableError
	return errors.As(err, &u) || errors.Is(err, syscall.EROFS) ||
		errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// ErrStorageFull means the backend has no room for a write: a full file
// system or quota, an object store out of space. A retry helps only once
// space is freed.
var ErrStorageFull = errors.New("storage full")

// IsFull reports whether err says the backend had no room for a write.
func IsFull(err error) bool {
	return errors.Is(err, ErrStorageFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
