package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "crypto/sha256" // registers the algorithms with go-digest
	_ "crypto/sha512"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// An upload session's state, stored beside its data. The hash states are
// those of the stdlib hashes at Offset, serialised with
// encoding.BinaryMarshaler, so a commit (on any replica, after any restart)
// finishes the digest without re-reading the bytes. Only the latest state
// is kept: O(1) per session.
type uploadState struct {
	ID         string                      `json:"id"`
	Repository string                      `json:"repository"`
	StartedAt  time.Time                   `json:"startedAt"`
	Offset     int64                       `json:"offset"`
	Hashes     map[digest.Algorithm][]byte `json:"hashes"`
	// Boot is the machine's boot (bootID) the hashes were taken in from
	// the first byte, on a driver that defers durability (a file system):
	// neither the data nor the state is synced per chunk, so after a crash
	// of the machine the data may hold less than the state hashed, or
	// zeros where the disk never got the bytes, at the same size. Hashes
	// from another boot are rebuilt from the data before they are trusted
	// (rehash).
	Boot string `json:"boot,omitempty"`
}

// Upload is a resumable upload session. Its state lives in the backend, so
// a session begun on one replica continues on another. Every operation
// holds the session's lock and checks the state this handle last read
// against the stored data's size, reading the state again when they
// disagree (write, appendLocked).
type Upload struct {
	bs    *BlobStore
	state uploadState
	// private: a session no request can see (Put's), with nothing stored.
	private bool
	// ended: the session was removed (damaged, or a quota refused its
	// commit), and nothing of it may be saved again.
	ended bool
	// lockLost is closed if the lock this handle's request holds lapses,
	// or could not be renewed in time; nil (never closed) for a lock that
	// cannot.
	lockLost <-chan struct{}
}

// UploadOptions configure a new upload session.
type UploadOptions struct {
	// Algorithms to hash as bytes arrive; sha256 always is. Committing with
	// an algorithm not hashed here costs one re-read of the data, so a
	// client that announces sha512 up front avoids it.
	Algorithms []digest.Algorithm
}

// validUploadID reports whether id has the shape newUploadID makes,
// 8-4-4-4-12 lower-case hex digits, checked on every upload request before
// the id names a path.
func validUploadID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// copyBufSize is large enough that a chunk of a big blob is written in few
// system calls, small enough to pool one per concurrent upload.
const copyBufSize = 1 << 20

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// Upload starts a resumable upload session.
func (bs *BlobStore) Upload(ctx context.Context, opts UploadOptions) (*Upload, error) {
	for _, a := range opts.Algorithms {
		if a != digest.SHA256 && a != digest.SHA512 {
			return nil, newError(CodeDigestInvalid, "unsupported digest algorithm %q", a)
		}
	}
	if q := bs.repo.reg.quotas; q != nil {
		if err := q.mayStart(ctx, bs.repo.name, ""); err != nil {
			return nil, err
		}
	}
	u := bs.newUpload(opts.Algorithms)
	var err error
	if len(opts.Algorithms) == 0 {
		// The common session (sha256 only, nothing yet) is its empty data
		// and no state (see load): a file system makes the file in place,
		// and it becomes the blob, so a push frees no inode.
		err = bs.driver().PutState(ctx, uploadDataPath(bs.repo.name, u.state.ID), nil)
	} else {
		err = u.save(ctx)
	}
	if err != nil {
		return nil, err
	}
	bs.repo.reg.uploadObs(+1)
	return u, nil
}

func (bs *BlobStore) newUpload(algs []digest.Algorithm) *Upload {
	hashes := map[digest.Algorithm][]byte{digest.SHA256: nil}
	for _, a := range algs {
		hashes[a] = nil
	}
	u := &Upload{bs: bs, state: uploadState{
		ID:         newUploadID(),
		Repository: bs.repo.name,
		StartedAt:  bs.repo.reg.now().UTC(),
		Hashes:     hashes,
	}}
	u.hashesFromNow()
	return u
}

// Resume reopens an upload session by id, as stored in the backend.
func (bs *BlobStore) Resume(ctx context.Context, id string) (*Upload, error) {
	u := &Upload{bs: bs, state: uploadState{ID: id, Repository: bs.repo.name}}
	if err := u.load(ctx); err != nil {
		return nil, err
	}
	return u, nil
}

// ID names the session in the client's Location URL.
func (u *Upload) ID() string { return u.state.ID }

// Offset is the number of bytes the session held when last read.
func (u *Upload) Offset() int64 { return u.state.Offset }

// Append writes r at the session's end. at is where the client says the
// chunk starts (-1: wherever the session stands); a mismatch, or another
// writer holding the session, is a *RangeError. Bytes received before r
// fails are kept, so the client can resume after them.
func (u *Upload) Append(ctx context.Context, r io.Reader, at int64) (int64, error) {
	unlock, err := u.lockForChunk(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	n, err := u.appendLocked(ctx, r, at, false)
	if n > 0 {
		// Whatever reached the backend is part of the session, even when
		// the body broke off: the client resumes from the new offset.
		if serr := u.save(context.WithoutCancel(ctx)); serr != nil {
			return n, serr
		}
	}
	return n, err
}

// AppendCommit is Append then Commit(d, -1) under one hold of the session,
// for a final PUT that carries the last (or only) chunk: the state in
// between is never written. Should the write or the commit fail, the
// session stays resumable as after Append: bytes that arrived are kept,
// except those a full backend took back.
func (u *Upload) AppendCommit(ctx context.Context, r io.Reader, at int64, d digest.Digest) (v1.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return v1.Descriptor{}, err
	}
	unlock, err := u.lockForChunk(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()
	// A body that turns out empty (a final PUT sent chunked, with no
	// length) makes this a plain commit, whose path also completes one a
	// crash cut short after its move (storedAs), where an append would
	// find the data gone.
	var first [1]byte
	switch k, rerr := io.ReadFull(r, first[:]); {
	case k == 0 && rerr == io.EOF:
		return u.commitLocked(ctx, d, -1)
	case k == 0:
		r = errReader{rerr}
	default:
		r = io.MultiReader(bytes.NewReader(first[:k]), r)
	}
	n, err := u.appendLocked(ctx, r, at, true)
	if err == nil && n > 0 && u.state.Offset > n {
		// Earlier chunks were acknowledged: the saved state must cover
		// this one too before finish moves the data away. A crash in
		// between would otherwise leave a state behind the bytes and no
		// data to resume from; with it, the session reports the whole
		// upload, and a commit then finds the bytes moved (storedAs).
		// A session with no bytes before has nothing acknowledged to keep.
		// Not synced, as every state: a machine's crash keeps this order
		// only as far as its file system keeps the order of writes.
		err = u.save(context.WithoutCancel(ctx))
	}
	var desc v1.Descriptor
	if err == nil {
		if desc, err = u.finish(ctx, d, -1, true); err == nil {
			u.bs.repo.reg.uploadObs(-1)
			return desc, nil
		}
	}
	if n > 0 && !u.ended {
		if serr := u.save(context.WithoutCancel(ctx)); serr != nil {
			return v1.Descriptor{}, errors.Join(err, serr)
		}
	}
	return v1.Descriptor{}, err
}

// errReader fails every read with its error.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// appendLocked writes r at the session's end; the caller holds the lock
// and saves the state. commit is as for write.
func (u *Upload) appendLocked(ctx context.Context, r io.Reader, at int64, commit bool) (int64, error) {
	// The state this handle holds (from Resume, or its last chunk) is
	// checked against the data's size once the writer is open (see write),
	// rather than read again here: one backend read less per chunk. A
	// mismatch with the client's offset may only mean the handle is stale.
	if at >= 0 && at != u.state.Offset {
		if err := u.load(ctx); err != nil {
			return 0, err
		}
		if at != u.state.Offset {
			return 0, u.rangeError(at)
		}
	}
	return u.write(ctx, r, at, commit)
}

func (u *Upload) rangeError(at int64) error {
	return &RangeError{Offset: u.state.Offset, Message: fmt.Sprintf("chunk starts at %d", at)}
}

// write appends r to the data, hashing as it goes, and advances the
// in-memory state. at is the client's offset (-1: none), as in Append. With
// commit set, the last chunk is coming: once r has ended cleanly the data
// is made durable through the same writer, ready for finish, instead of
// through another opened for it. The caller holds the lock (or owns the
// session alone).
func (u *Upload) write(ctx context.Context, r io.Reader, at int64, commit bool) (int64, error) {
	drv := u.bs.driver()
	path := uploadDataPath(u.state.Repository, u.state.ID)
	// Always continuing what is there: the data's size tells whether this
	// handle's state is stale, even at offset 0 (Upload leaves empty data).
	w, err := drv.Writer(ctx, path, !u.private)
	if driver.IsNotFound(err) {
		// No data: a session begun with a state (announced algorithms)
		// and no chunk yet, or one that ended meanwhile. The state tells.
		if err := u.load(ctx); err != nil {
			return 0, err
		}
		if u.state.Offset != 0 {
			return 0, u.lost(ctx, "its data is gone")
		}
		w, err = drv.Writer(ctx, path, false)
	}
	if err != nil {
		return 0, err
	}
	if w, err = u.reconcile(ctx, w, path, at); err != nil {
		return 0, err
	}
	if u.state.Offset == 0 {
		u.hashesFromNow() // nothing hashed yet to doubt
	}
	hashers, err := u.hashers()
	if err != nil {
		w.Close()
		return 0, err
	}
	hs := make([]hash.Hash, 0, len(hashers))
	for _, h := range hashers {
		hs = append(hs, h)
	}
	n, rerr, werr := copyIn(w, r, hs, u.held)
	if rerr == io.EOF {
		rerr = nil
	}
	if err := u.held(); err != nil {
		// The session is another request's now: let the writer go as a
		// stopped process would, recording nothing of this chunk there.
		driver.Abandon(w)
		return 0, err
	}
	if commit && rerr == nil && werr == nil && u.state.Offset+n > 0 {
		// Not cut short by a client hanging up: a completion that lands
		// unanswered leaves the session unable to go on.
		werr = w.Commit(context.WithoutCancel(ctx))
	}
	if driver.IsFull(werr) && u.held() == nil {
		// Give the space back where the backend can: no one counts these
		// bytes, and a file system left full by a failed push fails every
		// other write too.
		if err := driver.Retract(w); err != nil {
			u.bs.repo.reg.log.Warn("could not take back an upload's bytes on a full backend", "repository", u.state.Repository, "upload", u.state.ID, "error", err)
		}
	}
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	if reason := dataLost(werr); reason != "" {
		return 0, u.lost(ctx, reason, werr)
	}
	if werr != nil {
		// The backend may hold part of the chunk; the next writer will see
		// a size that disagrees with the state and catch up or end the
		// session cleanly.
		return 0, fmt.Errorf("writing upload data: %w", werr)
	}
	u.state.Offset += n
	if err := u.keepHashes(hashers); err != nil {
		return n, err
	}
	if rerr != nil {
		return n, &Error{Code: CodeBlobUploadInvalid, Message: "reading request body: " + rerr.Error()}
	}
	return n, nil
}

// fill reads into buf until it is full or r fails. Unlike io.ReadFull it
// passes r's error through unchanged: io.EOF is the body's end, anything
// else (io.ErrUnexpectedEOF from a body cut short, a reset connection) is a
// broken chunk the caller must report, even though the bytes before it count.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Refresh brings the session up to the bytes its data holds, which after a
// crash may be ahead of its saved state, so that the status a client resumes
// from is where the data really ends. It costs one stat when nothing is to
// be done, and does nothing while another request writes to the session.
func (u *Upload) Refresh(ctx context.Context) error {
	path := uploadDataPath(u.state.Repository, u.state.ID)
	fi, err := u.bs.driver().Stat(ctx, path)
	if err != nil || fi.Size <= u.state.Offset {
		return nil // nothing ahead, or data a backend keeps out of sight until commit
	}
	unlock, err := u.lock(ctx)
	if err != nil {
		return nil // a chunk is arriving: the state will be right after it
	}
	defer unlock()
	if err := u.load(ctx); err != nil {
		return err
	}
	if fi, err = u.bs.driver().Stat(ctx, path); err != nil || fi.Size <= u.state.Offset {
		return nil
	}
	return u.catchUp(ctx, path, fi.Size)
}

// reconcile checks the data's size, which w holds open, against the
// handle's state before a write or a commit goes on from there, and
// returns the writer to use; at is as for Append. On an error w is closed.
func (u *Upload) reconcile(ctx context.Context, w driver.FileWriter, path string, at int64) (driver.FileWriter, error) {
	if u.savedInAnotherBoot() {
		// The handle's state may be older than one saved since.
		if err := u.load(ctx); err != nil {
			w.Close()
			return nil, err
		}
		if err := u.rehash(ctx, path, w.Size()); err != nil {
			w.Close()
			return nil, err
		}
	}
	if w.Size() != u.state.Offset {
		// The handle's state predates another request's chunk, or a crash
		// came between writing data and saving state. The stored state
		// tells which.
		if err := u.load(ctx); err != nil {
			w.Close()
			return nil, err
		}
		if u.state.Offset == 0 && w.Size() > 0 {
			// A first chunk cut off before any was acknowledged: the client
			// starts over, so the session does too.
			w.Close()
			return u.bs.driver().Writer(ctx, path, false)
		}
		if w.Size() > u.state.Offset {
			// A crash between a chunk's data and its state: the bytes are
			// the client's, in order, so hash them in and go on from there.
			if err := u.catchUp(ctx, path, w.Size()); err != nil {
				w.Close()
				return nil, err
			}
		}
		if w.Size() != u.state.Offset {
			// Less data than the state vouches for: the hash state no
			// longer matches the bytes, and the session cannot go on.
			w.Close()
			return nil, u.lost(ctx, fmt.Sprintf("data holds %d bytes, state %d", w.Size(), u.state.Offset))
		}
	}
	// The state may have been loaded above: the chunk must start where that
	// one stands.
	if at >= 0 && at != u.state.Offset {
		w.Close()
		return nil, u.rangeError(at)
	}
	return w, nil
}

// dataLost tells why an error of a writer the session opened means its
// data can no longer be trusted or reached, or "": another writer changed
// it, or it went (on S3, a multipart upload a bucket's lifecycle rule
// aborted). The session then ends, so the client starts the blob over
// rather than meet the same failure at every retry.
func dataLost(err error) string {
	switch {
	case errors.Is(err, driver.ErrWriterConflict):
		return "another writer changed its data"
	case driver.IsNotFound(err):
		return "its data is gone"
	}
	return ""
}

// savedInAnotherBoot reports a state whose bytes may not be what it hashed
// (see uploadState.Boot).
func (u *Upload) savedInAnotherBoot() bool {
	return u.bs.repo.reg.deferring && u.state.Offset > 0 && u.state.Boot != bootID()
}

// rehash rebuilds the state's hashes from the bytes the data holds up to
// its offset, when it was saved in another boot: a crash can leave ranges
// of the data that never reached the disk reading as zeros while its size
// agrees, and the running hash would then vouch for bytes that are not
// there. size is the data's. A failure drops the session.
func (u *Upload) rehash(ctx context.Context, path string, size int64) error {
	if !u.savedInAnotherBoot() {
		return nil // the state as just loaded was saved in this boot since
	}
	vouched := u.state.Offset
	if size < vouched {
		return u.lost(ctx, fmt.Sprintf("data holds %d bytes, state %d", size, vouched))
	}
	u.bs.repo.reg.log.Info("rehashing an upload saved before a restart of the machine", "repository", u.state.Repository, "upload", u.state.ID, "bytes", vouched)
	u.state.Offset = 0
	for alg := range u.state.Hashes {
		u.state.Hashes[alg] = nil
	}
	u.hashesFromNow()
	if err := u.hashTail(ctx, path, vouched); err != nil {
		return u.lostUnlessBackend(ctx, "its data could not be read back", err)
	}
	return nil
}

// hashesFromNow marks the state's hashes as taken in this boot, from its
// first byte: only then does a save vouch for them in this boot. Every
// other save keeps the boot they were first taken in, so that no catch-up
// over hashes from another boot (Refresh's) passes them off as checked.
func (u *Upload) hashesFromNow() {
	if u.bs.repo.reg.deferring {
		u.state.Boot = bootID()
	}
}

// bootID names the running boot of the machine's kernel ("" where it has
// none to tell). A variable for tests.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// catchUp hashes the data between the state's offset and size into the
// state and saves it. It reads back at most what one chunk wrote. When that
// fails (a backend that cannot read data in progress, as S3 before
// completion) the session is dropped, and the error says so.
func (u *Upload) catchUp(ctx context.Context, path string, size int64) error {
	offset := u.state.Offset
	if err := u.hashTail(ctx, path, size); err != nil {
		return u.lostUnlessBackend(ctx, fmt.Sprintf("data holds %d bytes, state %d, and could not be read back", size, offset), err)
	}
	return nil
}

// lostUnlessBackend drops the session for err, a failed read-back and save
// of its data, unless the backend is full or unavailable: then nothing is
// damaged, err is returned, and the next request tries again.
func (u *Upload) lostUnlessBackend(ctx context.Context, why string, err error) error {
	if driver.IsFull(err) || driver.IsUnavailable(err) {
		return err
	}
	return u.lost(ctx, why, err)
}

func (u *Upload) hashTail(ctx context.Context, path string, size int64) error {
	hashers, err := u.hashers()
	if err != nil {
		return err
	}
	rc, err := u.bs.driver().Reader(ctx, path, u.state.Offset)
	if err != nil {
		return err
	}
	defer rc.Close()
	ws := make([]io.Writer, 0, len(hashers))
	for _, h := range hashers {
		ws = append(ws, h)
	}
	if _, err := io.CopyN(io.MultiWriter(ws...), rc, size-u.state.Offset); err != nil {
		return err
	}
	if err := u.keepHashes(hashers); err != nil {
		return err
	}
	u.state.Offset = size
	return u.save(context.WithoutCancel(ctx))
}

// Commit checks the session's bytes against d (and size, unless -1), moves
// them to their content address and links the blob into the repository.
// On a mismatch it returns DIGEST_INVALID or SIZE_INVALID and the session
// stays open.
func (u *Upload) Commit(ctx context.Context, d digest.Digest, size int64) (v1.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return v1.Descriptor{}, err
	}
	unlock, err := u.lock(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()
	return u.commitLocked(ctx, d, size)
}

// commitLocked is Commit once the session is held.
func (u *Upload) commitLocked(ctx context.Context, d digest.Digest, size int64) (v1.Descriptor, error) {
	if err := u.load(ctx); err != nil {
		return v1.Descriptor{}, err
	}
	desc, err := u.finish(ctx, d, size, false)
	if err != nil {
		return v1.Descriptor{}, err
	}
	u.bs.repo.reg.uploadObs(-1)
	return desc, nil
}

// finish verifies and publishes the blob, then removes the session. The
// blob becomes visible at its content address whole (a move), and in the
// repository only after that (the link), so a failure at any step leaves
// nothing half-visible: at worst an unlinked blob for the collector, or
// after a crash before the batch's Commit a link without its blob, which
// reads as absent.
// committed says the caller's write has already made the data durable.
func (u *Upload) finish(ctx context.Context, d digest.Digest, size int64, committed bool) (v1.Descriptor, error) {
	drv := u.bs.driver()
	dataPath := uploadDataPath(u.state.Repository, u.state.ID)
	hasData := u.state.Offset > 0
	if hasData && !committed {
		w, err := drv.Writer(ctx, dataPath, true)
		switch {
		case driver.IsNotFound(err):
			// A commit cut short after its move left the bytes at their
			// address and the session behind: finish linking them.
			if !u.storedAs(ctx, d) {
				return v1.Descriptor{}, u.lost(ctx, "its data is gone")
			}
			hasData = false
		case err != nil:
			return v1.Descriptor{}, err
		default:
			// The bytes published are the data's, whatever its size: it
			// must be what the state hashed.
			if w, err = u.reconcile(ctx, w, dataPath, -1); err != nil {
				return v1.Descriptor{}, err
			}
			err = w.Commit(context.WithoutCancel(ctx))
			w.Close()
			if reason := dataLost(err); reason != "" {
				return v1.Descriptor{}, u.lost(ctx, reason, err)
			}
			if err != nil {
				return v1.Descriptor{}, err
			}
		}
	}
	if size >= 0 && size != u.state.Offset {
		return v1.Descriptor{}, newError(CodeSizeInvalid, "upload holds %d bytes, %d declared", u.state.Offset, size)
	}
	got, err := u.digest(ctx, d.Algorithm(), dataPath)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if got != d {
		return v1.Descriptor{}, &Error{Code: CodeDigestInvalid, Message: fmt.Sprintf("upload digest is %s, %s declared", got, d)}
	}
	linked := false
	if q := u.bs.repo.reg.quotas; q != nil {
		hold, err := q.admit(ctx, u.state.Repository, d, u.state.Offset, false)
		if errors.Is(err, ErrDenied) {
			u.end(ctx)
		}
		if err != nil {
			return v1.Descriptor{}, err
		}
		defer func() { hold.done(linked) }()
	}
	// Guarded against a garbage collection in progress (gcguard.go): the
	// blob may be stored yet unreferenced, and about to be collected.
	guard, err := u.bs.repo.reg.guardWrite(ctx, d)
	if err != nil {
		return v1.Descriptor{}, err
	}
	// The bytes, then their link, become visible in that order and durable
	// with one wait (driver.Batch), before the guard settles. A crash before
	// the wait may keep the link without the bytes: it reads as absent.
	if err := u.held(); err != nil {
		return v1.Descriptor{}, err
	}
	bctx, batch := driver.WithBatch(ctx)
	dst := blobPath(d)
	moved := false
	if fi, err := driver.StatObject(ctx, drv, dst); err == nil && (fi.Size == u.state.Offset || !hasData) {
		// Already stored: content addressing makes this upload redundant.
		// The bytes may be another push's, not durable yet: they must be
		// once this one's link is.
		if err := driver.Persist(bctx, drv, dst); err != nil {
			return v1.Descriptor{}, err
		}
	} else if err == nil {
		// Stored at another size: damaged (cut short by a disk fault, a
		// partial copy of the store). The bytes just verified replace
		// them, so a push mends what it would otherwise link to.
		u.bs.repo.reg.log.Warn("blob stored at the wrong size, replaced by an upload", "digest", d, "stored", fi.Size, "size", u.state.Offset)
		if err := drv.Move(bctx, dataPath, dst); err != nil {
			return v1.Descriptor{}, err
		}
		moved = true
	} else if !driver.IsNotFound(err) {
		return v1.Descriptor{}, err
	} else if hasData {
		if err := drv.Move(bctx, dataPath, dst); err != nil {
			return v1.Descriptor{}, err
		}
		moved = true
	} else if u.state.Offset > 0 {
		// The bytes a commit cut short had moved to their address, which
		// storedAs saw, were collected before this commit's guard: they
		// are nowhere now, and the empty blob below is not theirs.
		return v1.Descriptor{}, u.lost(ctx, "its data is gone")
	} else if err := drv.PutContent(bctx, dst, nil); err != nil {
		return v1.Descriptor{}, err
	}
	if err := u.bs.link(bctx, d); err != nil {
		return v1.Descriptor{}, err
	}
	if err := batch.Commit(); err != nil {
		return v1.Descriptor{}, err
	}
	linked = true
	dataLeft := hasData && !moved
	if err := guard.settle(ctx, func(ctx context.Context) error { return u.ensureCommitted(ctx, d, dataPath, dataLeft) }); err != nil {
		return v1.Descriptor{}, err
	}
	// Only once settled, as Mount does: a commit failed at its settle must
	// leave no replica answering HEAD from a cache for bytes a collection
	// removed.
	u.bs.cacheLink(ctx, d, u.state.Offset)
	if err := u.cleanUp(context.WithoutCancel(ctx), moved); err != nil && !driver.IsNotFound(err) {
		u.bs.repo.reg.log.Warn("upload session left behind after commit", "repository", u.state.Repository, "upload", u.state.ID, "err", err)
	}
	return blobDescriptor(d, u.state.Offset), nil
}

// storedAs reports whether the session's running hash says its bytes are d
// and a blob of their size is stored as d.
func (u *Upload) storedAs(ctx context.Context, d digest.Digest) bool {
	if _, kept := u.state.Hashes[d.Algorithm()]; !kept {
		return false
	}
	hashers, err := u.hashers()
	if err != nil || digest.NewDigest(d.Algorithm(), hashers[d.Algorithm()]) != d {
		return false
	}
	fi, err := driver.StatObject(ctx, u.bs.driver(), blobPath(d))
	return err == nil && fi.Size == u.state.Offset
}

// digest returns the digest of the session's bytes with algorithm alg,
// from the running hash when the session kept one, else by reading the
// committed data once.
func (u *Upload) digest(ctx context.Context, alg digest.Algorithm, dataPath string) (digest.Digest, error) {
	if _, kept := u.state.Hashes[alg]; kept {
		hashers, err := u.hashers()
		if err != nil {
			return "", err
		}
		return digest.NewDigest(alg, hashers[alg]), nil
	}
	if u.state.Offset == 0 {
		return alg.FromBytes(nil), nil
	}
	rc, err := u.bs.driver().Reader(ctx, dataPath, 0)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return alg.FromReader(rc)
}

// Cancel ends the session and removes its data.
func (u *Upload) Cancel(ctx context.Context) error {
	unlock, err := u.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	err = u.bs.repo.reg.deleteUpload(ctx, u.state.Repository, u.state.ID, true)
	if driver.IsNotFound(err) {
		return newError(CodeBlobUploadUnknown, "upload %s unknown", u.state.ID)
	}
	if err == nil {
		u.bs.repo.reg.uploadObs(-1)
	}
	return err
}

// lock holds the session for this request. Another request holding it is
// TOOMANYREQUESTS (429): a commit or a cancel is refused while a chunk is in
// flight, and the client retries it.
func (u *Upload) lock(ctx context.Context) (func(), error) {
	unlock, lost, err := tryLock(ctx, u.bs.repo.reg.locker, uploadLockKey(u.state.Repository, u.state.ID))
	if errors.Is(err, ErrLocked) {
		return nil, newError(CodeTooManyRequests, "another request is writing to upload %s; try again once it has ended", u.state.ID)
	}
	u.lockLost = lost
	return unlock, err
}

// lockForChunk is lock for a request that brings a chunk: one arriving
// while another is written is out of order, a *RangeError (416), after
// which the client asks where the session stands.
func (u *Upload) lockForChunk(ctx context.Context) (func(), error) {
	unlock, err := u.lock(ctx)
	if errors.Is(err, &Error{Code: CodeTooManyRequests}) {
		return nil, &RangeError{Offset: u.state.Offset, Message: "another request is writing to this upload"}
	}
	return unlock, err
}

// held fails once this request's lock on the session has lapsed, or could
// not be renewed in time (see LossReporter): another request may be
// writing to it now, so nothing more may be written, saved or published.
// The client asks where the session stands and goes on from there.
func (u *Upload) held() error {
	select {
	case <-u.lockLost:
		return &RangeError{Offset: u.state.Offset, Message: "this request's lock on the upload lapsed or could not be renewed; another may be writing to it"}
	default:
		return nil
	}
}

func (u *Upload) load(ctx context.Context) error {
	unknown := func() error { return newError(CodeBlobUploadUnknown, "upload %s unknown", u.state.ID) }
	if !validUploadID(u.state.ID) {
		return unknown()
	}
	repo := u.bs.repo.name
	raw, err := u.bs.driver().GetContent(ctx, uploadStatePath(repo, u.state.ID))
	if driver.IsNotFound(err) {
		// No state yet: a new session hashing sha256 only, if Upload left
		// its data (bytes a crash left there before any chunk was
		// acknowledged are dealt with by write and Refresh). Its start is
		// taken as now: purging judges sessions by that, and one begun
		// moments ago is not a candidate either way.
		if _, err := driver.StatObject(ctx, u.bs.driver(), uploadDataPath(repo, u.state.ID)); driver.IsNotFound(err) {
			return unknown()
		} else if err != nil {
			return err
		}
		u.state = uploadState{ID: u.state.ID, Repository: repo, StartedAt: u.bs.repo.reg.now().UTC(),
			Hashes: map[digest.Algorithm][]byte{digest.SHA256: nil}}
		u.hashesFromNow()
		return nil
	}
	if err != nil {
		return err
	}
	var st uploadState
	if err := json.Unmarshal(raw, &st); err != nil || st.ID != u.state.ID || st.Repository != repo || st.Offset < 0 {
		return u.lost(ctx, "its state is unreadable", err)
	}
	u.state = st
	return nil
}

func (u *Upload) save(ctx context.Context) error {
	if err := u.held(); err != nil {
		return err
	}
	if u.ended {
		return nil // removed (lost, end): saved, it would linger as a state without data
	}
	raw, err := json.Marshal(&u.state)
	if err != nil {
		return err
	}
	// Not synced: after a crash, a state older or newer than the data
	// shows as a size mismatch and the session is dropped cleanly, while
	// a sync per chunk would stall every chunk on the disk.
	return u.bs.driver().PutState(ctx, uploadStatePath(u.state.Repository, u.state.ID), raw)
}

// lost removes a session that can no longer be continued safely and says so
// in the client's terms: the upload is unknown, start again.
func (u *Upload) lost(ctx context.Context, why string, cause ...error) error {
	if err := u.held(); err != nil {
		// The session is another request's now: not ours to drop, and what
		// looked damaged may be its work in progress.
		return err
	}
	// The cause goes to the log only: a backend's error names the
	// server's paths and hosts, which are not the client's to see.
	u.bs.repo.reg.log.Warn("dropping damaged upload session", "repository", u.state.Repository, "upload", u.state.ID, "reason", why, "error", errors.Join(cause...))
	_ = u.bs.repo.reg.deleteUpload(context.WithoutCancel(ctx), u.state.Repository, u.state.ID, true)
	u.ended = true
	return newError(CodeBlobUploadUnknown, "upload %s can no longer be resumed: %s", u.state.ID, why)
}

// end removes a session whose bytes the repository's quota refused: the
// client would commit them in vain, and the session must not linger
// until the purge. Put's private session is its caller's to remove, and
// one another request holds now is not ours.
func (u *Upload) end(ctx context.Context) {
	if u.private || u.held() != nil {
		return
	}
	if err := u.bs.repo.reg.deleteUpload(context.WithoutCancel(ctx), u.state.Repository, u.state.ID, true); err != nil && !driver.IsNotFound(err) {
		u.bs.repo.reg.log.Warn("upload session a quota refused left behind, for the purge", "repository", u.state.Repository, "upload", u.state.ID, "err", err)
		return
	}
	u.ended = true
	u.bs.repo.reg.uploadObs(-1)
}

// cleanUp removes what a committed session leaves: its state, and its data
// when the blob was stored already. Put's private session has no state.
func (u *Upload) cleanUp(ctx context.Context, moved bool) error {
	if u.private {
		if moved {
			return nil
		}
		return u.bs.driver().Delete(ctx, uploadDataPath(u.state.Repository, u.state.ID))
	}
	return u.bs.repo.reg.deleteUpload(ctx, u.state.Repository, u.state.ID, !moved)
}

// deleteUpload removes a session's state and, with data set, its data,
// and is then PathNotFoundError when neither was there (without data, a
// missing state is no error). The state goes first:
// without it the session is unknown to every request at once, and data
// left by a crash in between is purged by its age.
func (r *Registry) deleteUpload(ctx context.Context, repo, id string, data bool) error {
	if !data {
		return driver.RemoveObject(ctx, r.driver, uploadStatePath(repo, id))
	}
	serr := r.driver.Delete(ctx, uploadStatePath(repo, id))
	if serr != nil && !driver.IsNotFound(serr) {
		return serr
	}
	derr := r.driver.Delete(ctx, uploadDataPath(repo, id))
	if driver.IsNotFound(derr) && serr == nil {
		return nil // the state was there
	}
	return derr
}

// hashers restores the running hashes from the state.
func (u *Upload) hashers() (map[digest.Algorithm]hash.Hash, error) {
	hs := make(map[digest.Algorithm]hash.Hash, len(u.state.Hashes))
	for alg, st := range u.state.Hashes {
		h := alg.Hash()
		if st != nil {
			if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
				return nil, fmt.Errorf("restoring %s state of upload %s: %w", alg, u.state.ID, err)
			}
		}
		hs[alg] = h
	}
	return hs, nil
}

func (u *Upload) keepHashes(hs map[digest.Algorithm]hash.Hash) error {
	for alg, h := range hs {
		st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return err
		}
		u.state.Hashes[alg] = st
	}
	return nil
}

func newUploadID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
