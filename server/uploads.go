package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/registry"
)

// startUpload serves POST /v2/<name>/blobs/uploads/: a mount, a whole blob
// in one request (?digest=), or a new session.
func (h *handlers) startUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	repo, err := h.repository(rt)
	if err != nil {
		return err
	}
	blobs := repo.Blobs()
	q := r.URL.Query()
	ctx := r.Context()

	if q.Has("mount") && h.mayMountFrom(r, rt.MountFrom) {
		d, err := registry.ParseDigest(q.Get("mount"))
		if err != nil {
			return err
		}
		if rt.MountFrom != "" {
			if err := registry.ValidateName(rt.MountFrom); err != nil {
				return err
			}
		}
		desc, err := blobs.Mount(ctx, rt.MountFrom, d)
		if err == nil {
			blobCreated(w, rt.Repository, d)
			h.blobEvent(r, notify.ActionMount, rt.Repository, desc, rt.MountFrom)
			return nil
		}
		if !errors.Is(err, registry.ErrBlobUnknown) {
			return err
		}
		// The source lacks the blob (or the caller may not read it): the
		// spec has the client upload it through a session instead.
	} else if q.Has("digest") {
		d, err := registry.ParseDigest(q.Get("digest"))
		if err != nil {
			return err
		}
		if err := h.checkBlobSize(0, r.ContentLength); err != nil {
			return err
		}
		body := newClientBody(h.limitBlob(r.Body, func() int64 { return 0 }), -1)
		desc, err := blobs.Put(ctx, d, body)
		if err := body.blame(ctx, err, registry.CodeBlobUploadInvalid); err != nil {
			return err
		}
		blobCreated(w, rt.Repository, d)
		h.blobEvent(r, notify.ActionPush, rt.Repository, desc, "")
		return nil
	}

	up, err := blobs.Upload(ctx, registry.UploadOptions{})
	if err != nil {
		return err
	}
	uploadAccepted(w, rt.Repository, up, http.StatusAccepted)
	return nil
}

// upload serves an existing session: status, a chunk, the final PUT, or
// cancellation.
func (h *handlers) upload(w http.ResponseWriter, r *http.Request, rt Route) error {
	repo, err := h.repository(rt)
	if err != nil {
		return err
	}
	ctx := r.Context()

	var d digest.Digest
	if r.Method == http.MethodPut {
		// Refuse a bad digest before touching the session or the body.
		if d, err = registry.ParseDigest(r.URL.Query().Get("digest")); err != nil {
			return err
		}
	}
	// Resume refuses ids of any other shape than its own, before they
	// could reach a storage path.
	up, err := repo.Blobs().Resume(ctx, rt.Reference)
	if err != nil {
		return err
	}

	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := up.Refresh(ctx); err != nil {
			return err
		}
		uploadAccepted(w, rt.Repository, up, http.StatusNoContent)
		return nil
	case http.MethodDelete:
		if err := up.Cancel(ctx); err != nil {
			return err
		}
		writeEmpty(w, http.StatusNoContent)
		return nil
	case http.MethodPatch:
		if _, err := h.appendChunk(w, r, rt.Repository, up, ""); err != nil {
			return err
		}
		uploadAccepted(w, rt.Repository, up, http.StatusAccepted)
		return nil
	}

	// PUT: an optional last chunk, then the commit — in one hold of the
	// session when there is a chunk.
	var desc v1.Descriptor
	if r.ContentLength != 0 || r.Header.Get("Content-Range") != "" {
		if desc, err = h.appendChunk(w, r, rt.Repository, up, d); err != nil {
			return err
		}
	} else {
		// A session may hold more than the limit from before it was set
		// or lowered.
		if err := h.checkBlobSize(0, up.Offset()); err != nil {
			return err
		}
		if desc, err = up.Commit(ctx, d, -1); err != nil {
			return err
		}
	}
	blobCreated(w, rt.Repository, d)
	h.blobEvent(r, notify.ActionPush, rt.Repository, desc, "")
	return nil
}

// appendChunk writes the request body at the end of the session. With a
// Content-Range the chunk must start where the session stands (else the
// registry's RangeError becomes a 416, which still names the session so
// the client can ask where it stands and resume) and hold exactly the
// bytes named.
//
// With commit set (a final PUT), the chunk is committed as that digest in
// the same step, and the blob's descriptor returned.
func (h *handlers) appendChunk(w http.ResponseWriter, r *http.Request, repo string, up *registry.Upload, commit digest.Digest) (v1.Descriptor, error) {
	at, length := int64(-1), int64(-1)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok {
			return v1.Descriptor{}, withStatus(http.StatusBadRequest, registry.CodeBlobUploadInvalid, "malformed Content-Range %q", cr)
		}
		at, length = start, end-start+1
		if r.ContentLength >= 0 && r.ContentLength != length {
			return v1.Descriptor{}, withStatus(http.StatusBadRequest, registry.CodeBlobUploadInvalid,
				"Content-Length %d does not match Content-Range %q", r.ContentLength, cr)
		}
	}
	// A chunk that names its range is checked where that range ends (one
	// that starts elsewhere than the session gets the registry's 416);
	// another where the session stands.
	if at >= 0 {
		if err := h.checkBlobSize(at, length); err != nil {
			return v1.Descriptor{}, err
		}
	} else if err := h.checkBlobSize(up.Offset(), r.ContentLength); err != nil {
		return v1.Descriptor{}, err
	}
	// The reader takes the session's offset once the registry has read it
	// under the session's lock: the one Resume saw may be behind.
	body := newClientBody(h.limitBlob(r.Body, up.Offset), length)
	var desc v1.Descriptor
	var err error
	if commit != "" {
		desc, err = up.AppendCommit(r.Context(), body, at, commit)
	} else {
		_, err = up.Append(r.Context(), body, at)
	}
	var rangeErr *registry.RangeError
	if errors.As(err, &rangeErr) {
		w.Header().Set("Location", uploadLocation(repo, up.ID()))
		w.Header().Set("Docker-Upload-UUID", up.ID())
	}
	return desc, body.blame(r.Context(), err, registry.CodeBlobUploadInvalid)
}

func uploadLocation(repo, id string) string {
	return "/v2/" + repo + "/blobs/uploads/" + id
}

func uploadAccepted(w http.ResponseWriter, repo string, up *registry.Upload, status int) {
	hdr := w.Header()
	hdr.Set("Location", uploadLocation(repo, up.ID()))
	hdr.Set("Range", uploadRange(up.Offset()))
	hdr.Set("Docker-Upload-UUID", up.ID())
	writeEmpty(w, status)
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	hdr := w.Header()
	hdr.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	hdr.Set("Docker-Content-Digest", d.String())
	writeEmpty(w, http.StatusCreated)
}

// checkBlobSize refuses, unread, a body of declared length (-1: unknown)
// that would take a blob of offset bytes past MaxBlobSize.
func (h *handlers) checkBlobSize(offset, declared int64) error {
	if limit := h.opts.MaxBlobSize; limit > 0 && declared > 0 && declared > limit-offset {
		return blobTooLarge(limit)
	}
	return nil
}

// limitBlob reads r up to what keeps the blob within MaxBlobSize, from the
// blob's size offset returns at the first read, and fails with a
// *blobLimitError past it: a session keeps no byte beyond the limit.
func (h *handlers) limitBlob(r io.Reader, offset func() int64) io.Reader {
	if h.opts.MaxBlobSize <= 0 {
		return r
	}
	return &blobLimit{r: r, offset: offset, left: -1, max: h.opts.MaxBlobSize}
}

// blobLimit is limitBlob's reader.
type blobLimit struct {
	r      io.Reader
	offset func() int64
	left   int64 // -1 until the first read
	max    int64
}

func (b *blobLimit) Read(p []byte) (int, error) {
	if b.left < 0 {
		b.left = max(b.max-b.offset(), 0)
	}
	// One byte past what is left tells a body that ends at the limit from
	// one that goes on.
	if int64(len(p)) > b.left {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		n = int(b.left)
		b.left = 0
		return n, &blobLimitError{max: b.max}
	}
	b.left -= int64(n)
	return n, err
}

// blobLimitError is a body that would take its blob past MaxBlobSize.
type blobLimitError struct{ max int64 }

func (e *blobLimitError) Error() string {
	return fmt.Sprintf("blob exceeds the registry's limit of %d bytes", e.max)
}

func blobTooLarge(limit int64) error {
	return withStatus(http.StatusRequestEntityTooLarge, registry.CodeBlobUploadInvalid, "%v", &blobLimitError{max: limit})
}
