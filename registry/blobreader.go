package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// BlobReader reads one blob. Seeking only moves a position: the backend
// reader is opened lazily at the first Read after a seek, so Seek(0,
// io.SeekEnd) costs no I/O, as http.ServeContent and range readers expect.
type BlobReader struct {
	ctx  context.Context
	drv  driver.Driver
	path string
	desc v1.Descriptor
	pos  int64
	rc   io.ReadCloser // open at pos, or nil
}

var errNegativeSeek = errors.New("blob reader: seek to a negative position")

// Descriptor describes the blob.
func (br *BlobReader) Descriptor() v1.Descriptor { return br.desc }

// Size is the blob's length in bytes.
func (br *BlobReader) Size() int64 { return br.desc.Size }

// Read reads from the current position; at the end of the blob it returns io.EOF.
func (br *BlobReader) Read(p []byte) (int, error) {
	if br.pos >= br.desc.Size {
		return 0, io.EOF
	}
	if br.rc == nil {
		rc, err := br.drv.Reader(br.ctx, br.path, br.pos)
		if err != nil {
			return 0, err
		}
		br.rc = rc
	}
	if rest := br.desc.Size - br.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := br.rc.Read(p)
	br.pos += int64(n)
	if err == io.EOF && br.pos < br.desc.Size {
		// The backend ended before the size the store recorded: damage.
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Seek sets the position for the next Read. Every whence uses offset; the
// position may be anywhere from 0 to the size (where Read gives io.EOF);
// outside that range Seek fails and the position is unchanged.
func (br *BlobReader) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = br.pos + offset
	case io.SeekEnd:
		pos = br.desc.Size + offset
	default:
		return br.pos, fmt.Errorf("blob reader: invalid whence %d", whence)
	}
	if pos < 0 {
		return br.pos, errNegativeSeek
	}
	if pos > br.desc.Size {
		return br.pos, fmt.Errorf("blob reader: seek to %d beyond the end (%d)", pos, br.desc.Size)
	}
	if pos != br.pos && br.rc != nil {
		br.rc.Close()
		br.rc = nil
	}
	br.pos = pos
	return pos, nil
}

// Close releases the backend reader, if one is open.
func (br *BlobReader) Close() error { return closeReader(&br.rc) }

// closeReader closes *rc, if open, and forgets it.
func closeReader(rc *io.ReadCloser) error {
	if *rc == nil {
		return nil
	}
	err := (*rc).Close()
	*rc = nil
	return err
}

// CopyRange writes length bytes from offset to w: Range, then its CopyTo.
// It does not move the position.
func (br *BlobReader) CopyRange(w io.Writer, offset, length int64) (int64, error) {
	rg, err := br.Range(offset, length)
	if err != nil {
		return 0, err
	}
	defer rg.Close()
	return rg.CopyTo(w)
}

// Range opens length bytes from offset for CopyTo. Opening before a
// response's status is sent lets a blob gone since its Stat (collected
// meanwhile, or known only to a cache) be answered BLOB_UNKNOWN rather
// than with a body cut short.
func (br *BlobReader) Range(offset, length int64) (*BlobRange, error) {
	if offset < 0 || length < 0 || offset+length > br.desc.Size {
		return nil, fmt.Errorf("blob reader: range %d+%d outside blob of %d bytes", offset, length, br.desc.Size)
	}
	// Opened even for no bytes: the open is what tells the blob is there.
	rc, err := br.drv.Reader(br.ctx, br.path, offset)
	if driver.IsNotFound(err) {
		return nil, newError(CodeBlobUnknown, "blob %s unknown to the registry", br.desc.Digest)
	}
	if err != nil {
		return nil, err
	}
	return &BlobRange{rc: rc, length: length}, nil
}

// BlobRange is an open range of a blob.
type BlobRange struct {
	rc     io.ReadCloser
	length int64
}

// sendfileMin is the largest range CopyTo copies even where sendfile is
// wanted: 4 KiB blobs served 0.98x as many GETs a second by sendfile.
const sendfileMin = 64 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, sendfileMin); return &b }}

// CopyTo writes the range to w straight from the backend's reader, so a
// file system reader meets an http.ResponseWriter's ReadFrom and the kernel
// copies the bytes (sendfile). A w without ReadFrom gets them through large
// buffers instead (see server.kernelCopy), as does a range of at most
// sendfileMin, which one read and one write move for less than the
// separate write of the headers sendfile needs.
func (rg *BlobRange) CopyTo(w io.Writer) (int64, error) {
	if rg.rc == nil || rg.length == 0 {
		return 0, nil
	}
	var n int64
	var err error
	_, toKernel := w.(io.ReaderFrom)
	_, isFile := rg.rc.(*os.File)
	switch {
	case isFile && toKernel && rg.length > sendfileMin:
		n, err = io.Copy(w, io.LimitReader(rg.rc, rg.length))
	case rg.length > copyBufSize:
		// No zero-copy path from a network backend, or none wanted:
		// large buffers, read ahead while the last is sent.
		n, err = copyOut(w, io.LimitReader(rg.rc, rg.length))
	default:
		// One buffer, past w's ReadFrom and its small one; a small range
		// takes a small one, so that many stalled readers of small blobs
		// hold 64 KiB each rather than 1 MiB.
		pool := &copyBufs
		if rg.length <= sendfileMin {
			pool = &smallBufs
		}
		bufp := pool.Get().(*[]byte)
		defer pool.Put(bufp)
		n, err = io.CopyBuffer(writerOnly{w}, io.LimitReader(rg.rc, rg.length), *bufp)
	}
	if err == nil && n < rg.length {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close releases the range's reader.
func (rg *BlobRange) Close() error { return closeReader(&rg.rc) }

// RedirectURL is where the client may fetch the blob directly, or "".
func (br *BlobReader) RedirectURL(r *http.Request) (string, error) {
	return br.drv.RedirectURL(r, br.path)
}

// writerOnly hides a writer's ReadFrom, so io.CopyBuffer uses its buffer.
type writerOnly struct{ io.Writer }
