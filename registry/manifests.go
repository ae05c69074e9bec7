package registry

import (
	"context"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ManifestStore holds a repository's manifests, tags and referrers.
type ManifestStore struct {
	repo *Repository
}

// Manifest is a stored manifest: its bytes exactly as pushed, and its
// descriptor (media type, digest, size, artifact type).
type Manifest struct {
	Descriptor v1.Descriptor
	Payload    []byte
	// Subject is the manifest's subject, if it has one.
	Subject *v1.Descriptor
}

// Get returns the manifest named by reference, a tag or a digest.
func (ms *ManifestStore) Get(ctx context.Context, reference string) (*Manifest, error) {
	return nil, ErrUnsupported
}

// Stat describes the manifest named by reference without its payload.
func (ms *ManifestStore) Stat(ctx context.Context, reference string) (v1.Descriptor, error) {
	return v1.Descriptor{}, ErrUnsupported
}

// Put validates and stores payload under reference (a tag, or the digest of
// payload), with mediaType from the request's Content-Type when the payload
// does not declare one. Every referenced blob and manifest must exist in the
// repository, except where the spec exempts them.
func (ms *ManifestStore) Put(ctx context.Context, reference, mediaType string, payload []byte) (*Manifest, error) {
	return nil, ErrUnsupported
}

// Delete removes a tag, or a manifest by digest together with its tags.
func (ms *ManifestStore) Delete(ctx context.Context, reference string) error {
	return ErrUnsupported
}

// Tags lists the repository's tags in lexical order, at most n after last
// (n <= 0: all). more reports whether tags remain after the page.
func (ms *ManifestStore) Tags(ctx context.Context, last string, n int) (tags []string, more bool, err error) {
	return nil, false, ErrUnsupported
}

// Referrers lists the manifests whose subject is subject, filtered by
// artifactType when it is not empty.
func (ms *ManifestStore) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	return nil, ErrUnsupported
}

// Catalog lists repository names in lexical order, at most n after last
// (n <= 0: all). more reports whether names remain after the page.
func (r *Registry) Catalog(ctx context.Context, last string, n int) (names []string, more bool, err error) {
	return nil, false, ErrUnsupported
}
