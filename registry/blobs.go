package registry

import (
	"context"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// BlobStore is a repository's view of the content store: blobs are stored
// once under their digest and linked into each repository that has them.
type BlobStore struct {
	repo *Repository
}

// Stat describes a blob linked into the repository (BLOB_UNKNOWN otherwise).
func (bs *BlobStore) Stat(ctx context.Context, d digest.Digest) (v1.Descriptor, error) {
	return v1.Descriptor{}, ErrUnsupported
}

// Open returns a reader over a blob linked into the repository.
func (bs *BlobStore) Open(ctx context.Context, d digest.Digest) (*BlobReader, error) {
	return nil, ErrUnsupported
}

// Delete unlinks a blob from the repository; the bytes stay for the
// garbage collector, since other repositories may hold them.
func (bs *BlobStore) Delete(ctx context.Context, d digest.Digest) error {
	return ErrUnsupported
}

// Mount links a blob into this repository without moving bytes. from names
// the source repository; empty means any repository of the registry. It
// returns BLOB_UNKNOWN when the source does not have the blob.
func (bs *BlobStore) Mount(ctx context.Context, from string, d digest.Digest) (v1.Descriptor, error) {
	return v1.Descriptor{}, ErrUnsupported
}

// Put stores a whole blob in one call and checks it against d.
func (bs *BlobStore) Put(ctx context.Context, d digest.Digest, r io.Reader) (v1.Descriptor, error) {
	return v1.Descriptor{}, ErrUnsupported
}

// Upload starts a resumable upload session.
func (bs *BlobStore) Upload(ctx context.Context, opts UploadOptions) (*Upload, error) {
	return nil, ErrUnsupported
}

// Resume reopens an upload session by id, as stored in the backend.
func (bs *BlobStore) Resume(ctx context.Context, id string) (*Upload, error) {
	return nil, ErrUnsupported
}

// UploadOptions configure a new upload session.
type UploadOptions struct {
	// Algorithms to hash as bytes arrive; sha256 is always among them.
	// Committing with an algorithm not hashed here costs one re-read.
	Algorithms []digest.Algorithm
}

// BlobReader reads one blob. Seek is exact and costs no I/O.
type BlobReader struct{}

func (br *BlobReader) Read(p []byte) (int, error)                   { return 0, io.EOF }
func (br *BlobReader) Seek(offset int64, whence int) (int64, error) { return 0, nil }
func (br *BlobReader) Close() error                                 { return nil }

// Descriptor describes the blob.
func (br *BlobReader) Descriptor() v1.Descriptor { return v1.Descriptor{} }

// CopyRange writes length bytes from offset to w straight from the backend's
// reader, so a file system reader meets an http.ResponseWriter's ReadFrom and
// the kernel copies the bytes (sendfile).
func (br *BlobReader) CopyRange(w io.Writer, offset, length int64) (int64, error) { return 0, nil }

// RedirectURL is where the client may fetch the blob directly, or "".
func (br *BlobReader) RedirectURL(r *http.Request) (string, error) { return "", nil }

// Upload is a resumable upload session. Its state lives in the backend; the
// handle caches what it last read.
type Upload struct{}

// ID names the session in the client's Location URL.
func (u *Upload) ID() string { return "" }

// Offset is the number of bytes the session holds.
func (u *Upload) Offset() int64 { return 0 }

// Append writes r at the session's end. at is where the client says the
// chunk starts (-1: wherever the session stands); a mismatch, or another
// writer holding the session, is a *RangeError. Bytes received before r
// fails are kept, so the client can resume after them.
func (u *Upload) Append(ctx context.Context, r io.Reader, at int64) (int64, error) {
	return 0, ErrUnsupported
}

// Commit checks the session's bytes against d (and size, unless -1), moves
// them to their content address and links the blob into the repository.
// On a mismatch it returns DIGEST_INVALID or SIZE_INVALID and the session
// stays open.
func (u *Upload) Commit(ctx context.Context, d digest.Digest, size int64) (v1.Descriptor, error) {
	return v1.Descriptor{}, ErrUnsupported
}

// Cancel ends the session and removes its data.
func (u *Upload) Cancel(ctx context.Context) error { return ErrUnsupported }
