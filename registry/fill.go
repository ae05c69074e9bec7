package registry

import "context"

// Fill stores a manifest that a pull-through cache fetched from its
// upstream, byte-exact, under reference: a tag, or the payload's digest.
// Unlike Put, what the manifest references need not be stored: a mirror
// fetches an index's children and an image's config and layers only when a
// client asks for them, and most clients of a multi-platform index ask for
// one child. Garbage collection keeps such a manifest like any other; a
// reference not stored is simply not there to keep (gcmark.go: a child
// named by an index without record or bytes, a layer without a link).
func (ms *ManifestStore) Fill(ctx context.Context, reference, mediaType string, payload []byte) (*Manifest, error) {
	return ms.put(ctx, reference, mediaType, payload, true, nil)
}
