package registry

import (
	"context"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// ManifestNeeds is what a manifest's push requires the repository to hold,
// as Put checks it.
type ManifestNeeds struct {
	// MediaType is the media type Put stores the manifest under.
	MediaType string
	// Blobs must be blobs of the repository (config and layers, but for
	// non-distributable layers).
	Blobs []digest.Digest
	// Manifests must be manifests of the repository, or blobs (an index's
	// children).
	Manifests []digest.Digest
}

// InspectManifest validates payload as Put does, but for its size, and says
// what a push of it needs, so that a tool copying manifests in can order
// them and tell which cannot be pushed before trying. mediaType is as Put's.
// The subject is not among the needs: a referrer may come before it.
func InspectManifest(payload []byte, mediaType string) (ManifestNeeds, error) {
	m, err := parseManifest(payload, mediaType)
	if err != nil {
		return ManifestNeeds{}, err
	}
	needs := ManifestNeeds{MediaType: m.mediaType}
	for _, r := range m.references() {
		switch r.kind {
		case refBlob:
			needs.Blobs = append(needs.Blobs, r.desc.Digest)
		case refManifest:
			needs.Manifests = append(needs.Manifests, r.desc.Digest)
		}
	}
	return needs, nil
}

// StatBlob describes a blob the registry stores, in whichever repository
// (BLOB_UNKNOWN otherwise): what a Mount without a source would link.
func (r *Registry) StatBlob(ctx context.Context, d digest.Digest) (v1.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return v1.Descriptor{}, err
	}
	fi, err := driver.StatObject(ctx, r.driver, blobPath(d))
	if driver.IsNotFound(err) {
		return v1.Descriptor{}, newError(CodeBlobUnknown, "blob %s unknown to the registry", d)
	} else if err != nil {
		return v1.Descriptor{}, err
	}
	return blobDescriptor(d, fi.Size), nil
}
