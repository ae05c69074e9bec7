package server

import (
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/registry"
)

func (h *handlers) blob(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := registry.ParseDigest(rt.Reference)
	if err != nil {
		return err
	}
	repo, err := h.repository(rt)
	if err != nil {
		return err
	}
	blobs := repo.Blobs()
	switch r.Method {
	case http.MethodDelete:
		if err := h.deletesDisabled(); err != nil {
			return err
		}
		if err := blobs.Delete(r.Context(), d); err != nil {
			return err
		}
		writeEmpty(w, http.StatusAccepted)
		h.blobEvent(r, notify.ActionDelete, rt.Repository, v1.Descriptor{Digest: d}, "")
		return nil
	case http.MethodHead:
		desc, err := blobs.Stat(r.Context(), d)
		if h.opts.Mirror != nil && blobMissing(err) {
			return h.mirrorBlobHead(w, r, rt, d)
		}
		if err != nil {
			return err
		}
		if noneMatch(r, d) {
			writeBlobNotModified(w, d)
			return nil
		}
		// Range is defined for GET alone (RFC 9110, 14.2): a HEAD gets
		// the whole blob's headers, never a 206 or a 416.
		return writeBlobHeader(w, d, desc.Size, 0, desc.Size, rangeNone)
	}

	br, err := blobs.Open(r.Context(), d)
	if h.opts.Mirror != nil && blobMissing(err) {
		var filled bool
		if filled, err = h.mirrorBlobGet(w, r, rt, d); !filled {
			return err
		}
		// Another request's fetch stored it meanwhile.
		br, err = blobs.Open(r.Context(), d)
	}
	if err != nil {
		return err
	}
	defer br.Close()
	if noneMatch(r, d) {
		writeBlobNotModified(w, d)
		return nil
	}
	if target, err := br.RedirectURL(r); err != nil {
		return err
	} else if target != "" {
		w.Header().Set("Location", target)
		writeEmpty(w, http.StatusTemporaryRedirect)
		// The client was handed the blob, from the store's URL.
		h.blobEvent(r, notify.ActionPull, rt.Repository, br.Descriptor(), "")
		return nil
	}
	size := br.Descriptor().Size
	off, n, kind := parseRange(rangeOf(r, d), size)
	if kind == rangeUnsatisfiable {
		return writeBlobHeader(w, d, size, off, n, kind)
	}
	rg, err := br.Range(off, n)
	if err != nil {
		return err
	}
	defer rg.Close()
	if err := writeBlobHeader(w, d, size, off, n, kind); err != nil {
		return err
	}
	if n == 0 { // the empty blob: all there is was sent
		h.blobEvent(r, notify.ActionPull, rt.Repository, br.Descriptor(), "")
		return nil
	}
	// The status is sent: a failure now can only cut the body short, which
	// the client sees against Content-Length.
	body := h.stallGuard(w, r)
	if !kernelCopy(r) {
		body = struct{ io.Writer }{body} // no ReadFrom: CopyTo buffers
	}
	if _, err := rg.CopyTo(body); err != nil {
		if r.Context().Err() == nil {
			h.log.WarnContext(r.Context(), "blob body cut short", "repository", rt.Repository, "digest", d, "error", err)
		}
	} else if off+n == size {
		// A download in ranges (resumed, or in parallel pieces) is one
		// pull, told by the piece that ends the blob.
		h.blobEvent(r, notify.ActionPull, rt.Repository, br.Descriptor(), "")
	}
	return nil
}

// blobCacheControl lets an HTTP cache in front of the registry (a CDN, a
// caching proxy) keep a blob for a year: its bytes are named by their
// digest and never change. A cache does not store a response to a request
// with Authorization under max-age alone (RFC 9111, 3.5), so private
// repositories stay out of shared caches. As with CNCF Distribution; a
// deleted blob may be served by such a cache until it is purged there.
const blobCacheControl = "max-age=31536000"

// writeBlobNotModified answers a blob request whose If-None-Match held,
// with the headers a 200 would carry for caches (RFC 9110, 15.4.5).
func writeBlobNotModified(w http.ResponseWriter, d digest.Digest) {
	w.Header().Set("Cache-Control", blobCacheControl)
	writeNotModified(w, d, "")
}

// writeBlobHeader sends the status and headers of a blob response; the
// body, if any, is n bytes from off. An unsatisfiable range is returned as
// an error for mapError to answer, with the blob's size in Content-Range.
func writeBlobHeader(w http.ResponseWriter, d digest.Digest, size, off, n int64, kind rangeKind) error {
	hdr := w.Header()
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("ETag", etagOf(d))
	sizeStr := strconv.FormatInt(size, 10)
	switch kind {
	case rangeUnsatisfiable:
		hdr.Set("Content-Range", "bytes */"+sizeStr)
		return withStatus(http.StatusRequestedRangeNotSatisfiable, registry.CodeRangeInvalid, "range not satisfiable for a blob of %d bytes", size)
	case rangePartial:
		hdr.Set("Cache-Control", blobCacheControl)
		hdr.Set("Content-Type", "application/octet-stream")
		hdr.Set("Content-Range", "bytes "+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+n-1, 10)+"/"+sizeStr)
		hdr.Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusPartialContent)
	default:
		hdr.Set("Cache-Control", blobCacheControl)
		hdr.Set("Content-Type", "application/octet-stream")
		hdr.Set("Content-Length", sizeStr)
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// kernelCopy reports whether a blob's body should go to r's connection by
// sendfile: over plain TCP, to any peer. TLS takes no sendfile, and gets
// the bytes through large buffers read ahead. To a peer on this host too:
// on this machine's loopback sendfile pulled a 1 GiB blob 1.2-1.4x faster
// than 1 MiB reads and writes, with 0.6x the server's processor time
// (bench/README.md).
func kernelCopy(r *http.Request) bool {
	return r.TLS == nil
}
