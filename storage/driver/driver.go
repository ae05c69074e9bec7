// Package driver defines the storage seam under the registry: a small set of
// operations over slash-separated paths that any backend (a local file system,
// memory, an S3-compatible object store) can offer without pretending to be
// the other.
//
// Paths are absolute ("/a/b"), made of segments of [A-Za-z0-9._-] that are
// never "." or "..". No path is ever both an object and the prefix of other
// objects: object stores allow it, file systems do not, so the registry's
// layout never asks for it. ValidatePath enforces the rules once, in the
// Instrument decorator, so each backend can assume valid input.
package driver

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Driver is a storage backend. All methods must be safe for concurrent use.
type Driver interface {
	// Name identifies the backend in logs and metrics ("filesystem", "s3").
	Name() string

	// GetContent returns the whole object at path. Meant for small objects.
	GetContent(ctx context.Context, path string) ([]byte, error)

	// PutContent replaces the object at path atomically: a reader sees the
	// old content or the new, never a mix, and the new content is durable
	// when PutContent returns.
	PutContent(ctx context.Context, path string, content []byte) error

	// PutState is PutContent without the durability: atomic, but after a
	// crash the path may hold what it held before, or, on a file system
	// without a journal, nothing at all. It is for state the caller checks
	// against other data and can discard (an upload session's offset and
	// hash), where a sync per write would cost more than a lost session.
	PutState(ctx context.Context, path string, content []byte) error

	// Create writes content at path only if no object is there yet, as one
	// atomic step; otherwise it returns ErrExists and changes nothing. It is
	// the backend's compare-and-set, used for leases and first-writer-wins.
	// Over a network, a request retried after its answer was lost may find
	// its own first write and report ErrExists: a caller that must tell the
	// two apart writes content of its own (a token) and reads it back.
	Create(ctx context.Context, path string, content []byte) error

	// Reader streams the object at path from offset. Offset equal to the
	// size gives a reader at io.EOF; beyond it, ErrInvalidOffset.
	Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error)

	// Writer returns a writer for a large object written in pieces. With
	// append false it starts empty (replacing any earlier writer's data,
	// committed or not); with append true it continues what earlier
	// writers left after Close, and ErrPathNotFound if there is nothing to
	// continue. What Reader and Stat see at path before Commit is
	// unspecified, except that it is never what was there before a writer
	// with append false began: a Reader either fails or reads the bytes
	// written since.
	Writer(ctx context.Context, path string, append bool) (FileWriter, error)

	// Stat describes the object or directory (a prefix of objects) at path.
	Stat(ctx context.Context, path string) (FileInfo, error)

	// List returns the full paths of the direct children of path, sorted.
	// A child may hold nothing: a file system keeps the folder that a
	// Move emptied, which Stat and List of it then find absent.
	List(ctx context.Context, path string) ([]string, error)

	// Move renames the object src to dst, replacing whatever is at dst.
	// It moves objects only: a directory is PathNotFoundError, since an
	// object store cannot move a prefix in one step.
	Move(ctx context.Context, src, dst string) error

	// Delete removes the object at path, or every object below it.
	Delete(ctx context.Context, path string) error

	// Walk calls fn for every object below path (never for directories), in
	// lexical order of the full path, starting strictly after the path from
	// (empty: from the start). fn returns ErrStopWalk to end the walk early
	// without error. A path with no objects below it calls nothing and
	// returns nil. Walk is how listings resume after a key and stay
	// proportional to the page they produce.
	Walk(ctx context.Context, path, from string, fn WalkFunc) error

	// RedirectURL returns a URL the client may fetch the object from
	// directly, or "" when the backend serves the bytes itself.
	RedirectURL(r *http.Request, path string) (string, error)
}

// FileWriter writes one object in pieces, possibly over several processes'
// lifetimes: Close keeps what was written so a later Writer(append) goes on.
type FileWriter interface {
	io.Writer
	// Close persists what was written so far and releases the writer.
	io.Closer
	// Size is the object's length so far, including earlier writers' data.
	Size() int64
	// Cancel discards the object and everything written to it.
	Cancel(ctx context.Context) error
	// Commit makes the written data readable at the path and its bytes
	// durable, so a Move afterwards publishes bytes that survive a crash.
	// The path's own name need not survive one: writers hold data in
	// progress, and the registry publishes it with Move. Close must still
	// be called afterwards.
	Commit(ctx context.Context) error
}

// Abandoner is a FileWriter that can be let go without recording what it
// wrote since it was opened, as if its process had stopped: for a writer
// whose right to the path lapsed, while another may be writing there.
type Abandoner interface {
	Abandon()
}

// Abandon lets w go as Abandoner says where it can, else closes it (a
// writer whose Close records nothing a stopped process would not leave).
func Abandon(w FileWriter) {
	if a, ok := w.(Abandoner); ok {
		a.Abandon()
		return
	}
	w.Close()
}

// Retracter is a FileWriter that can take back what it wrote since it was
// opened, giving the space back: for a write that met a full backend,
// whose bytes no one counts. It takes back nothing when the object has
// grown by another writer's bytes meanwhile.
type Retracter interface {
	Retract() error
}

// Retract takes back what w wrote since it was opened where it can (see
// Retracter); elsewhere the bytes stay, as a failed write leaves them.
func Retract(w FileWriter) error {
	if r, ok := w.(Retracter); ok {
		return r.Retract()
	}
	return nil
}

// FileInfo describes an object or a directory.
type FileInfo struct {
	Path    string
	Size    int64
	ModTime time.Time
	IsDir   bool
}

// WalkFunc is called by Walk for each object.
type WalkFunc func(FileInfo) error
