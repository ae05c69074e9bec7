package server

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/registry"
)

func (h *handlers) referrers(w http.ResponseWriter, r *http.Request, rt Route) error {
	subject, err := registry.ParseDigest(rt.Reference)
	if err != nil {
		return err
	}
	repo, err := h.repository(rt)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	artifactType := q.Get("artifactType")
	var last digest.Digest
	if l := q.Get("last"); l != "" {
		if last, err = registry.ParseDigest(l); err != nil {
			return err
		}
	}
	descs, next, err := repo.Manifests().ReferrersPage(r.Context(), subject, artifactType, last)
	switch {
	case errors.Is(err, registry.ErrNameUnknown), errors.Is(err, registry.ErrManifestUnknown):
		// The spec answers an unknown subject with an empty index.
		descs, next = nil, ""
	case err != nil:
		return err
	}
	if descs == nil {
		descs = []v1.Descriptor{}
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if next != "" {
		// A list that does not fit one response goes on in the next.
		q := url.Values{}
		if artifactType != "" {
			q.Set("artifactType", artifactType)
		}
		setNextLink(w, "/v2/"+rt.Repository+"/referrers/"+subject.String(), 0, next.String(), q)
	}
	index := v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: descs,
	}
	body, err := registry.MarshalUnescaped(index)
	if err != nil {
		return err
	}
	writeBody(w, r, http.StatusOK, v1.MediaTypeImageIndex, body)
	return nil
}
