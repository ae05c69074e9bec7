package server

import (
	"errors"
	"net/http"

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
	artifactType := r.URL.Query().Get("artifactType")
	descs, err := repo.Manifests().Referrers(r.Context(), subject, artifactType)
	switch {
	case errors.Is(err, registry.ErrNameUnknown), errors.Is(err, registry.ErrManifestUnknown):
		// The spec answers an unknown subject with an empty index.
		descs = nil
	case err != nil:
		return err
	}
	if descs == nil {
		descs = []v1.Descriptor{}
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	index := v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: descs,
	}
	writeBody(w, r, http.StatusOK, v1.MediaTypeImageIndex, mustJSON(index))
	return nil
}
