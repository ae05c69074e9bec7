package server

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/registry"
)

func (h *handlers) manifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	if err := validateReference(rt.Reference); err != nil {
		return err
	}
	repo, err := h.repository(rt)
	if err != nil {
		return err
	}
	ms := repo.Manifests()
	ctx := r.Context()
	if h.opts.Mirror != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if err := h.opts.Mirror.Manifest(ctx, rt.Repository, rt.Reference); err != nil {
			return err
		}
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		// A cache in front asks again each time: a tag moves (a 304
		// while it stays), and a 404, cacheable by default, would hide
		// a push that follows. Only a digest's answer is kept longer
		// (keepByDigest).
		w.Header().Set("Cache-Control", "no-cache")
	}
	switch r.Method {
	case http.MethodHead:
		// Through the bytes, as a GET (from the cache when held): a HEAD
		// that said 200 where the GET fails (bytes lost or damaged on
		// disk) would make a client skip the push that mends them.
		m, err := h.pulledManifest(ctx, ms, rt)
		if err != nil {
			return err
		}
		desc := m.Descriptor
		if h.opts.Mirror != nil {
			h.opts.Mirror.Pulled(rt.Repository, desc.Digest)
		}
		keepByDigest(w, rt.Reference)
		if noneMatch(r, desc.Digest) {
			writeNotModified(w, desc.Digest, desc.MediaType)
			return nil
		}
		setManifestHeaders(w, desc)
		w.WriteHeader(http.StatusOK)
		return nil
	case http.MethodGet:
		m, err := h.pulledManifest(ctx, ms, rt)
		if err != nil {
			return err
		}
		if h.opts.Mirror != nil {
			h.opts.Mirror.Pulled(rt.Repository, m.Descriptor.Digest)
		}
		keepByDigest(w, rt.Reference)
		if noneMatch(r, m.Descriptor.Digest) {
			writeNotModified(w, m.Descriptor.Digest, m.Descriptor.MediaType)
			return nil
		}
		setManifestHeaders(w, m.Descriptor)
		w.Header().Set("Content-Length", strconv.Itoa(len(m.Payload)))
		w.WriteHeader(http.StatusOK)
		if _, err := w.Write(m.Payload); err == nil {
			h.manifestEvent(r, notify.ActionPull, rt.Repository, m.Descriptor, tagOf(rt.Reference))
		}
		return nil
	case http.MethodDelete:
		if err := h.deletesDisabled(); err != nil {
			return err
		}
		if err := ms.Delete(ctx, rt.Reference); err != nil {
			return err
		}
		writeEmpty(w, http.StatusAccepted)
		if tag := tagOf(rt.Reference); tag != "" {
			h.manifestEvent(r, notify.ActionDelete, rt.Repository, v1.Descriptor{}, tag)
		} else {
			h.manifestEvent(r, notify.ActionDelete, rt.Repository, v1.Descriptor{Digest: digest.Digest(rt.Reference)}, "")
		}
		return nil
	}
	return h.putManifest(w, r, rt, ms)
}

// pulledManifest reads the manifest a GET or HEAD names. On a mirror, one
// removed between its fill and this read (evicted by a collection) is
// filled again, once.
func (h *handlers) pulledManifest(ctx context.Context, ms *registry.ManifestStore, rt Route) (*registry.Manifest, error) {
	m, err := ms.Get(ctx, rt.Reference)
	if h.opts.Mirror == nil || !registry.IsUnknown(err) {
		return m, err
	}
	if err := h.opts.Mirror.Manifest(ctx, rt.Repository, rt.Reference); err != nil {
		return nil, err
	}
	return ms.Get(ctx, rt.Reference)
}

// putManifest stores the body under the reference and every ?tag=
// parameter, which are all checked before the body is read.
func (h *handlers) putManifest(w http.ResponseWriter, r *http.Request, rt Route, ms *registry.ManifestStore) error {
	tags := r.URL.Query()["tag"]
	for _, tag := range tags {
		if err := registry.ValidateTag(tag); err != nil {
			return err
		}
	}
	payload, err := h.readManifest(r)
	if err != nil {
		return err
	}
	mediaType := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(mediaType); err == nil {
		mediaType = mt
	}
	m, err := ms.Put(r.Context(), rt.Reference, mediaType, payload, tags...)
	if err != nil {
		return err
	}
	for _, tag := range tags {
		w.Header().Add("OCI-Tag", tag)
	}
	hdr := w.Header()
	d := m.Descriptor.Digest
	hdr.Set("Location", "/v2/"+rt.Repository+"/manifests/"+d.String())
	hdr.Set("Docker-Content-Digest", d.String())
	if m.Subject != nil {
		hdr.Set("OCI-Subject", m.Subject.Digest.String())
	}
	writeEmpty(w, http.StatusCreated)
	if h.opts.Events != nil {
		pushed(r, h.opts.Events, rt, m.Descriptor, tags)
	}
	return nil
}

// pushed records the push of a manifest: an event for each tag it was
// pushed under, the reference's and the ?tag= parameters', as if each
// were a push of its own (Distribution's push takes one tag); one without
// a tag for a push by digest alone.
func pushed(r *http.Request, events *notify.Notifier, rt Route, desc v1.Descriptor, tags []string) {
	if tag := tagOf(rt.Reference); tag != "" && !slices.Contains(tags, tag) {
		tags = append([]string{tag}, tags...)
	}
	if len(tags) == 0 {
		events.Manifest(r, notify.ActionPush, rt.Repository, desc, "")
	}
	for i, tag := range tags {
		if !slices.Contains(tags[:i], tag) {
			events.Manifest(r, notify.ActionPush, rt.Repository, desc, tag)
		}
	}
}

// readManifest reads a manifest body of at most the configured size. A
// declared length over the limit is refused unread; an undeclared one is
// read only up to the limit. The buffer grows with the bytes received, not
// with the length declared, which costs a client nothing to send.
func (h *handlers) readManifest(r *http.Request) ([]byte, error) {
	limit := h.reg.MaxManifestSize()
	if r.ContentLength > limit {
		return nil, withStatus(http.StatusRequestEntityTooLarge, registry.CodeManifestTooLarge,
			"manifest of %d bytes exceeds the limit of %d", r.ContentLength, limit)
	}
	var buf bytes.Buffer
	body := newClientBody(io.LimitReader(r.Body, limit+1), -1)
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, body.blame(r.Context(), err, registry.CodeManifestInvalid)
	}
	if int64(buf.Len()) > limit {
		return nil, withStatus(http.StatusRequestEntityTooLarge, registry.CodeManifestTooLarge,
			"manifest exceeds the limit of %d bytes", limit)
	}
	return buf.Bytes(), nil
}

func setManifestHeaders(w http.ResponseWriter, desc v1.Descriptor) {
	hdr := w.Header()
	hdr.Set("Content-Type", desc.MediaType)
	hdr.Set("Content-Length", strconv.FormatInt(desc.Size, 10))
	hdr.Set("Docker-Content-Digest", desc.Digest.String())
	hdr.Set("ETag", etagOf(desc.Digest))
}

// keepByDigest lets caches keep a manifest's 200 or 304 by digest as long
// as a blob's: its bytes never change.
func keepByDigest(w http.ResponseWriter, ref string) {
	if tagOf(ref) == "" {
		w.Header().Set("Cache-Control", blobCacheControl)
	}
}

// tagOf returns a manifest reference's tag, "" for a digest.
func tagOf(ref string) string {
	if strings.Contains(ref, ":") {
		return ""
	}
	return ref
}

// validateReference checks that a manifest reference is a digest (it has
// the algorithm's colon) or a tag, before any storage is touched.
func validateReference(ref string) error {
	if strings.Contains(ref, ":") {
		_, err := registry.ParseDigest(ref)
		return err
	}
	return registry.ValidateTag(ref)
}
