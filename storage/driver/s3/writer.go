package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/lading-registry/lading/storage/driver"
)

// writer is a driver.FileWriter whose state lives in the bucket, laid out
// as writerstate.go describes; this process only buffers what is not yet
// stored.
type writer struct {
	d              *Driver
	ctx            context.Context // for Write and Close, which take none
	path, key, dir string

	uploadID   string // "" until needed
	uploadKey  string // key of the ~upload entry, or ""
	parts      int32
	partsEnd   int64  // bytes in parts 1..parts
	partMarker string // key of the latest ~part entry, or ""
	markerDue  bool   // parts were uploaded since partMarker was written
	// The ETags of parts 1..parts, which Commit completes the upload with:
	// those partMarker records (read from it when first needed; legacy
	// marks one without them) and then this writer's own.
	markerETags []string
	markerParts int32
	legacy      bool
	ownETags    []string
	pieces      []piece
	pending     int64    // bytes in pieces
	stale       []string // entries superseded, removed at the next cleanup
	persisted   bool     // the directory holds something

	// base is the size of an object already committed at the path that
	// this writer continues, until its bytes are taken into the writer's
	// own state; -1 when there is none.
	base int64

	buf []byte // written, not yet stored
	// bufBusy: a request carrying buf failed and may still be sending it.
	bufBusy bool
	size    int64
	done    error // driver.ErrWriterClosed, driver.ErrWriterCommitted or driver.ErrWriterCancelled once finished
	err     error // a failed store; the writer cannot go on

	// wrote: this writer was given bytes. completing: its Commit sent the
	// completion of the upload (see completedBefore).
	wrote, completing bool
}

// Writer implements driver.Driver.
func (d *Driver) Writer(ctx context.Context, path string, append bool) (driver.FileWriter, error) {
	w := &writer{d: d, ctx: context.WithoutCancel(ctx), path: path, key: d.key(path), dir: d.writersPrefix(path), base: -1}
	entries, err := d.keysUnder(ctx, w.dir)
	if err != nil {
		return nil, mapErr("writer", path, err)
	}
	// Writers below path would be below an object: never ours to touch.
	entries = slices.DeleteFunc(entries, func(o types.Object) bool { return strings.Contains(aws.ToString(o.Key)[len(w.dir):], "/") })
	if !append {
		if err := w.discard(ctx, entries); err != nil {
			return nil, err
		}
		// What an earlier writer committed goes too: a reader of the path
		// (an upload's catch-up, registry/upload.go) must not take it for
		// this writer's bytes.
		return w, d.RemoveObject(ctx, path)
	}
	if len(entries) == 0 {
		head, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: d.bucket, Key: aws.String(w.key)})
		if err != nil {
			return nil, mapErr("writer", path, err)
		}
		w.base = aws.ToInt64(head.ContentLength)
		w.size = w.base
		return w, nil
	}
	if err := w.load(entries); err != nil {
		return nil, err
	}
	if w.size > 0 || w.uploadKey == "" {
		return w, nil
	}
	// An upload begun with nothing recorded in it: a writer that went on
	// from the object at the path (adoptBase) and stopped before its
	// Close, or a fresh one stopped before its first part was recorded.
	// In the first case the object is still what the path holds.
	fi, err := d.StatObject(ctx, path)
	if driver.IsNotFound(err) {
		return w, nil
	}
	if err != nil {
		return nil, err
	}
	w = &writer{d: d, ctx: w.ctx, path: path, key: w.key, dir: w.dir, base: fi.Size}
	if err := w.discard(ctx, entries); err != nil {
		return nil, err
	}
	w.size = w.base
	return w, nil
}

// discard removes an earlier writer's state so that this one starts empty.
func (w *writer) discard(ctx context.Context, entries []types.Object) error {
	if len(entries) == 0 {
		return nil
	}
	keys := make([]string, len(entries))
	for i, o := range entries {
		keys[i] = aws.ToString(o.Key)
		w.noteUpload(keys[i])
	}
	if w.uploadKey != "" {
		if err := w.abort(ctx); err != nil {
			return err
		}
	}
	return mapErr("writer", w.path, w.d.deleteKeys(ctx, keys))
}

// Write buffers p and uploads a part whenever the pending pieces and the
// buffer make a full one.
func (w *writer) Write(p []byte) (int, error) {
	if w.done != nil {
		return 0, w.done
	}
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	if len(p) > 0 {
		w.wrote = true
	}
	for len(p) > 0 {
		if w.pending+int64(len(w.buf)) >= w.d.partSize {
			// Pieces a writer with a larger part size stored (a replica
			// before a change of storage.s3.partsize) make a part already.
			if err := w.flushPart(w.ctx); err != nil {
				w.err = w.mapped("write", err)
				return written, w.err
			}
			continue
		}
		n := int(min(int64(len(p)), w.d.partSize-w.pending-int64(len(w.buf))))
		if len(w.buf)+n > cap(w.buf) {
			w.growBuf(len(w.buf) + n)
		}
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
		written += n
		w.size += int64(n)
		if w.pending+int64(len(w.buf)) >= w.d.partSize {
			if err := w.flushPart(w.ctx); err != nil {
				w.err = w.mapped("write", err)
				return written, w.err
			}
		}
	}
	return written, nil
}

// Size implements driver.FileWriter.
func (w *writer) Size() int64 { return w.size }

// Close stores what was written: as a part when it and the pending pieces
// make a part, else as one more piece.
func (w *writer) Close() error {
	defer w.releaseBuf()
	switch w.done {
	case driver.ErrWriterClosed:
		return driver.ErrWriterClosed
	case nil:
	default:
		w.done = driver.ErrWriterClosed
		return nil
	}
	w.done = driver.ErrWriterClosed
	if w.err != nil {
		return w.err
	}
	return w.mapped("close", w.store())
}

// Abandon implements driver.Abandoner: nothing more is stored, and parts
// uploaded since the writer opened stay unrecorded, as a stopped process
// leaves them (the next writer ignores or overwrites them).
func (w *writer) Abandon() {
	if w.done == nil {
		w.done = driver.ErrWriterClosed
	}
	w.releaseBuf()
}

// store is Close's work once the writer is usable.
func (w *writer) store() error {
	if len(w.buf) > 0 {
		if err := w.adoptBase(w.ctx); err != nil {
			return err
		}
	}
	if w.pending+int64(len(w.buf)) >= w.closingPartSize() {
		if err := w.flushPart(w.ctx); err != nil {
			return err
		}
	}
	// The marker goes first: a piece stored after parts it does not
	// record would leave a gap for the next writer.
	if err := w.saveMarker(w.ctx); err != nil {
		return err
	}
	if len(w.buf) > 0 || (!w.persisted && w.base < 0) {
		// Also an empty writer leaves a piece, so it can be reopened.
		if err := w.putPiece(w.ctx); err != nil {
			return err
		}
	}
	w.cleanStale(w.ctx)
	return nil
}

// smallBuf is the most a writer holds in a buffer of its own before it
// takes a pooled part-sized one. Most blobs are small (configs, manifests,
// small layers): a part-sized buffer for each would hold part size × uploads
// in flight (16 MiB × 32 pushes of 4 KiB blobs: 500 MiB).
const smallBuf = 1 << 20

// growBuf makes room for need bytes in the buffer, which never needs more
// than a part: a buffer of its own while need is small, a pooled part
// buffer beyond, taken at once by a writer whose first write is large.
func (w *writer) growBuf(need int) {
	var b []byte
	if need > smallBuf || (w.buf == nil && need >= smallBuf/4) {
		b = w.d.partBuf()
	} else {
		b = make([]byte, 0, min(max(need, 2*cap(w.buf), 16<<10), smallBuf))
	}
	w.buf = append(b, w.buf...)
}

// partBuf returns an empty buffer that holds a part without growing.
func (d *Driver) partBuf() []byte {
	if d.partBufs != nil {
		if b, ok := d.partBufs.Get().(*[]byte); ok && int64(cap(*b)) >= d.partSize {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, d.partSize)
}

// sent notes the outcome of a request that carried the buffer: after a
// failure the transport may still be sending it.
func (w *writer) sent(err error) error {
	if err != nil {
		w.bufBusy = true
	}
	return err
}

// releaseBuf hands the buffer back once the writer is closed, unless a
// request that failed may still hold it: then it is left to the collector.
func (w *writer) releaseBuf() {
	if w.buf != nil && !w.bufBusy && w.d.partBufs != nil && int64(cap(w.buf)) >= w.d.partSize {
		b := w.buf[:0]
		w.d.partBufs.Put(&b)
	}
	w.buf = nil
}

// closingPartSize is how much Close needs pending to make a part: S3's
// minimum, or a 2000th of the parts so far, up to the part size.
func (w *writer) closingPartSize() int64 {
	return min(max(MinPartSize, w.partsEnd/2000), w.d.partSize)
}

// Commit completes the object at its path.
func (w *writer) Commit(ctx context.Context) error {
	if w.done != nil {
		return w.done
	}
	if w.err != nil {
		return w.err
	}
	if w.base >= 0 && len(w.buf) == 0 {
		w.done = driver.ErrWriterCommitted // the object at the path is already whole
		return nil
	}
	if err := w.adoptBase(ctx); err != nil {
		return w.fail(err)
	}
	var err error
	switch {
	case w.uploadKey == "" && len(w.buf) == 0 && len(w.pieces) == 1:
		err = w.d.copyObject(ctx, w.pieces[0].key, w.key, w.pieces[0].size)
	case w.uploadKey == "":
		var data []byte
		if data, err = w.pendingData(ctx); err == nil {
			_, err = w.d.client.PutObject(ctx, w.d.putInput(w.key, data))
			w.sent(err)
		}
	default:
		err = w.completeUpload(ctx)
		if errorCode(err) == "NoSuchUpload" && (w.completing || !w.wrote) && w.completedBefore(ctx) {
			err = nil
		}
	}
	if err != nil {
		return w.fail(err)
	}
	w.done = driver.ErrWriterCommitted
	keys := append(w.stale, w.partMarker, w.uploadKey)
	for _, p := range w.pieces {
		keys = append(keys, p.key)
	}
	_ = w.d.deleteKeys(ctx, slices.DeleteFunc(keys, func(k string) bool { return k == "" }))
	return nil
}

// completedBefore reports whether the object at the path is what this
// writer's entries describe, completed by an earlier Commit that could not
// clear them after (a failed cleanup, or its process gone): then their
// upload is gone, and without this every later Commit of the path would
// fail on it. Only the size can be compared, so Commit asks only when the
// upload went missing under its own completion (a retried request whose
// first attempt completed it) or the writer added nothing to the entries.
// A writer given new bytes whose part finds the upload gone must not take
// the object for them: an earlier Commit may have completed it with other
// bytes of the same length, whose answer was lost, and the registry would
// publish them under the digest of these.
func (w *writer) completedBefore(ctx context.Context) bool {
	fi, err := w.d.StatObject(ctx, w.path)
	return err == nil && fi.Size == w.size
}

// completeUpload uploads what is pending as the last part and completes
// the multipart upload.
func (w *writer) completeUpload(ctx context.Context) error {
	data, err := w.pendingData(ctx)
	if err != nil {
		return err
	}
	if err := w.ensureUpload(ctx); err != nil {
		return err
	}
	if len(data) > 0 || w.parts == 0 {
		out, err := w.uploadPart(ctx, w.parts+1, data)
		if err != nil {
			return w.sent(err)
		}
		w.parts++
		w.ownETags = append(w.ownETags, aws.ToString(out.ETag))
	}
	etags, err := w.etags(ctx)
	if err != nil {
		return err
	}
	var parts []types.CompletedPart
	if etags != nil {
		// Completed with the ETags recorded as each part was uploaded: if
		// a writer whose lease lapsed has put other bytes in a part since,
		// S3 refuses the completion (InvalidPart) rather than assemble
		// them under this upload's digest.
		for i, e := range etags {
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: aws.String(e)})
		}
		return w.complete(ctx, parts)
	}
	// A marker written before ETags were recorded: the parts as listed.
	var total int64
	p := s3.NewListPartsPaginator(w.d.client, &s3.ListPartsInput{Bucket: w.d.bucket, Key: aws.String(w.key), UploadId: aws.String(w.uploadID)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, part := range page.Parts {
			// A part beyond ours is from a writer that crashed before
			// recording it; its bytes were never acknowledged.
			if aws.ToInt32(part.PartNumber) <= w.parts {
				parts = append(parts, types.CompletedPart{PartNumber: part.PartNumber, ETag: part.ETag})
				total += aws.ToInt64(part.Size)
			}
		}
	}
	if int32(len(parts)) != w.parts || total != w.size {
		return fmt.Errorf("upload holds %d parts with %d bytes, expected %d parts with %d", len(parts), total, w.parts, w.size)
	}
	return w.complete(ctx, parts)
}

func (w *writer) complete(ctx context.Context, parts []types.CompletedPart) error {
	w.completing = true
	_, err := w.d.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: w.d.bucket, Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if errorCode(err) == "InvalidPart" {
		return fmt.Errorf("%s: completing %s: %w: %w", name, w.path, driver.ErrWriterConflict, err)
	}
	return err
}

// putOnce writes a part marker or a piece only where nothing is: writers
// that agree never write one name twice (a piece's is its offset), so an
// object already there with other content is another writer's (one whose
// lease lapsed), which this one must not overwrite, nor go on beside. The
// same content is this writer's own request, retried after a lost answer.
func (w *writer) putOnce(ctx context.Context, key string, content []byte) error {
	err := w.d.createKey(ctx, key, content)
	if err != driver.ErrExists {
		return err
	}
	there, gerr := w.d.getObject(ctx, key)
	if gerr != nil {
		return gerr
	}
	if !bytes.Equal(there, content) {
		return fmt.Errorf("%s: writer of %s: %s is another writer's: %w", name, w.path, key, driver.ErrWriterConflict)
	}
	return nil
}

// etags returns the ETags of parts 1..parts, reading those the writer's
// marker records the first time; nil when the marker is from before they
// were recorded.
func (w *writer) etags(ctx context.Context) ([]string, error) {
	if w.markerParts > 0 && w.markerETags == nil && !w.legacy {
		content, err := w.d.getObject(ctx, w.partMarker)
		if err != nil {
			return nil, err
		}
		if len(content) == 0 {
			w.legacy = true
		} else if etags := strings.Split(string(content), "\n"); int32(len(etags)) == w.markerParts {
			w.markerETags = etags
		} else {
			return nil, fmt.Errorf("%s: writer state of %s is inconsistent: marker %s lists %d ETags: %w", name, w.path, w.partMarker, len(etags), driver.ErrWriterConflict)
		}
	}
	if w.legacy {
		return nil, nil
	}
	etags := append(slices.Clip(w.markerETags), w.ownETags...)
	if int32(len(etags)) != w.parts {
		return nil, fmt.Errorf("%s: writer of %s knows %d ETags for %d parts", name, w.path, len(etags), w.parts)
	}
	return etags, nil
}

// Cancel discards the writer's state, its upload and the object at its path.
func (w *writer) Cancel(ctx context.Context) error {
	if w.done == driver.ErrWriterClosed || w.done == driver.ErrWriterCommitted {
		return w.done
	}
	w.done = driver.ErrWriterCancelled
	if _, err := w.d.abortUploads(ctx, w.path); err != nil {
		return err
	}
	entries, err := w.d.keysUnder(ctx, w.dir)
	if err != nil {
		return mapErr("cancel", w.path, err)
	}
	keys := []string{w.key}
	for _, o := range entries {
		keys = append(keys, aws.ToString(o.Key))
	}
	return mapErr("cancel", w.path, w.d.deleteKeys(ctx, keys))
}

// flushPart uploads the pending pieces and the buffer as the next part.
func (w *writer) flushPart(ctx context.Context) error {
	if err := w.adoptBase(ctx); err != nil {
		return err
	}
	data, err := w.pendingData(ctx)
	if err != nil {
		return err
	}
	if err := w.ensureUpload(ctx); err != nil {
		return err
	}
	out, err := w.uploadPart(ctx, w.parts+1, data)
	if err != nil {
		return w.sent(err)
	}
	w.advance(w.parts+1, w.partsEnd+int64(len(data)), aws.ToString(out.ETag))
	w.buf = w.buf[:0]
	return nil
}

// advance notes that parts 1..n, ending at end, are uploaded (the new ones
// with etags) and absorbed the pending pieces. Until saveMarker records it,
// the bucket still says what the last Close left, which is all the next
// writer may rely on; the pieces stay until then.
func (w *writer) advance(n int32, end int64, etags ...string) {
	for _, p := range w.pieces {
		w.stale = append(w.stale, p.key)
	}
	w.ownETags = append(w.ownETags, etags...)
	w.parts, w.partsEnd = n, end
	w.pieces, w.pending = nil, 0
	w.markerDue = true
}

// saveMarker records the uploaded parts in the bucket, and then lets the
// entries they superseded go.
func (w *writer) saveMarker(ctx context.Context) error {
	if !w.markerDue {
		return nil
	}
	etags, err := w.etags(ctx)
	if err != nil {
		return err
	}
	marker := w.dir + partEntryName(w.parts, w.partsEnd)
	if err := w.putOnce(ctx, marker, []byte(strings.Join(etags, "\n"))); err != nil {
		return err
	}
	if w.partMarker != "" {
		w.stale = append(w.stale, w.partMarker)
	}
	w.partMarker, w.markerDue, w.persisted = marker, false, true
	w.markerETags, w.markerParts, w.ownETags = etags, w.parts, nil
	w.cleanStale(ctx)
	return nil
}

// putPiece stores the buffer as the next piece.
func (w *writer) putPiece(ctx context.Context) error {
	if err := w.adoptBase(ctx); err != nil {
		return err
	}
	off := w.partsEnd + w.pending
	key := w.dir + pieceEntryName(off)
	put := w.putOnce
	if n := len(w.pieces); n > 0 && w.pieces[n-1].key == key {
		// The empty piece a writer closed with nothing written leaves, so
		// the object can be reopened: it holds no bytes to keep from
		// another writer, and these take its place.
		w.pieces = w.pieces[:n-1]
		put = func(ctx context.Context, key string, content []byte) error {
			_, err := w.d.client.PutObject(ctx, w.d.putInput(key, content))
			return err
		}
	}
	if err := put(ctx, key, w.buf); err != nil {
		return w.sent(err)
	}
	w.pieces = append(w.pieces, piece{key: key, offset: off, size: int64(len(w.buf))})
	w.pending += int64(len(w.buf))
	w.buf = w.buf[:0]
	w.persisted = true
	return nil
}

// adoptBase takes a committed object this writer continues into its own
// state, by server-side copies: as the first parts when it is large enough
// to be one, else as the first piece.
func (w *writer) adoptBase(ctx context.Context) error {
	if w.base < 0 {
		return nil
	}
	size := w.base
	if size >= MinPartSize {
		if err := w.ensureUpload(ctx); err != nil {
			return err
		}
		parts, err := w.d.copyParts(ctx, w.uploadID, w.key, w.key, 1, size)
		if err != nil {
			return err
		}
		etags := make([]string, len(parts))
		for i, p := range parts {
			etags[i] = aws.ToString(p.ETag)
		}
		w.advance(int32(len(parts)), size, etags...)
	} else if size > 0 {
		key := w.dir + pieceEntryName(0)
		if err := w.d.copyObject(ctx, w.key, key, size); err != nil {
			return err
		}
		w.pieces, w.pending, w.persisted = []piece{{key: key, size: size}}, size, true
	}
	w.base = -1
	return nil
}

// pendingData reads the pending pieces back, in parallel, and appends the
// buffer.
func (w *writer) pendingData(ctx context.Context) ([]byte, error) {
	if len(w.pieces) == 0 {
		return w.buf, nil
	}
	data := make([]byte, w.pending+int64(len(w.buf)))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, p := range w.pieces {
		g.Go(func() error {
			out, err := w.d.client.GetObject(gctx, &s3.GetObjectInput{Bucket: w.d.bucket, Key: aws.String(p.key)})
			if err != nil {
				return err
			}
			defer out.Body.Close()
			if aws.ToInt64(out.ContentLength) != p.size {
				return fmt.Errorf("piece %s holds %d bytes, listed with %d", p.key, aws.ToInt64(out.ContentLength), p.size)
			}
			start := p.offset - w.partsEnd
			_, err = io.ReadFull(out.Body, data[start:start+p.size])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	copy(data[w.pending:], w.buf)
	return data, nil
}

// ensureUpload finds or starts the multipart upload.
func (w *writer) ensureUpload(ctx context.Context) error {
	if w.uploadID != "" {
		return nil
	}
	if w.uploadKey != "" {
		id, err := w.d.getObject(ctx, w.uploadKey)
		w.uploadID = string(id)
		return err
	}
	id, err := w.d.createUpload(ctx, w.key)
	if err != nil {
		return err
	}
	// In the name, the id comes with the listing that reopens the writer.
	key, content := w.dir+uploadEntry+"."+base64.RawURLEncoding.EncodeToString([]byte(id)), []byte(nil)
	if len(key) > maxKeyLength {
		key, content = w.dir+uploadEntry, []byte(id)
	}
	if _, err := w.d.client.PutObject(ctx, w.d.putInput(key, content)); err != nil {
		return err
	}
	w.uploadID, w.uploadKey = id, key
	return nil
}

func (w *writer) uploadPart(ctx context.Context, n int32, data []byte) (*s3.UploadPartOutput, error) {
	out, err := w.d.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: w.d.bucket, Key: aws.String(w.key), UploadId: aws.String(w.uploadID),
		PartNumber: aws.Int32(n), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil && errorCode(err) != "NoSuchUpload" && ctx.Err() == nil {
		// A server may refuse a part of an upload that is gone (aborted by
		// a lifecycle rule) by closing the connection before it reads the
		// body (versitygw does), which reads as the network failing: a
		// look at the upload tells the two apart.
		_, lerr := w.d.client.ListParts(ctx, &s3.ListPartsInput{Bucket: w.d.bucket, Key: aws.String(w.key), UploadId: aws.String(w.uploadID), MaxParts: aws.Int32(1)})
		if errorCode(lerr) == "NoSuchUpload" {
			return nil, lerr
		}
	}
	return out, err
}

// abort aborts the upload named in the writer's directory.
func (w *writer) abort(ctx context.Context) error {
	if err := w.ensureUpload(ctx); err != nil {
		if driver.IsNotFound(err) {
			return nil
		}
		return mapErr("writer", w.path, err)
	}
	_, err := w.d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: w.d.bucket, Key: aws.String(w.key), UploadId: aws.String(w.uploadID)})
	if err != nil && errorCode(err) != "NoSuchUpload" {
		return mapErr("writer", w.path, err)
	}
	w.uploadID, w.uploadKey = "", ""
	return nil
}

// cleanStale removes superseded entries; any left over are recognised as
// stale by the next writer, so failure here costs nothing but litter.
func (w *writer) cleanStale(ctx context.Context) {
	if len(w.stale) > 0 && !w.markerDue && w.d.deleteKeys(ctx, w.stale) == nil {
		w.stale = nil
	}
}

func (w *writer) fail(err error) error {
	w.err = w.mapped("commit", err)
	return w.err
}

// mapped gives an error of the writer's requests the driver's types (an
// object store down is UnavailableError, so the client is told to retry),
// as mapErr does, unless it has them already.
func (w *writer) mapped(op string, err error) error {
	if err == nil || driver.IsNotFound(err) || driver.IsUnavailable(err) {
		return err
	}
	return mapErr(op, w.path, err)
}
