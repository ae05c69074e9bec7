package registry

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// Each manifest with a subject leaves its referrers descriptor under the
// subject's digest (referrerPath), written when it is pushed. Listing a
// subject's referrers is then one listing of that prefix, whatever the size
// of the repository, and needs neither the subject nor the payloads.

// Referrers lists the manifests whose subject is subject, filtered by
// artifactType when it is not empty. Each descriptor has the referrer's
// mediaType, digest, size, annotations, and artifactType (its own, else its
// config's media type for an image manifest). A subject with no referrers,
// or a repository that does not exist, gives an empty list: the spec
// forbids a 404 here.
func (ms *ManifestStore) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	if _, err := ParseDigest(string(subject)); err != nil {
		return nil, err
	}
	entries, err := listAll(ctx, ms.driver(), referrersPath(ms.repo.name, subject))
	if err != nil {
		return nil, err
	}
	descs := make([]*v1.Descriptor, len(entries))
	err = forEach(len(entries), func(i int) error {
		b, err := ms.driver().GetContent(ctx, entries[i])
		if driver.IsNotFound(err) {
			return nil // deleted since the listing saw it
		}
		if err != nil {
			return err
		}
		var desc v1.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil {
			return errors.Join(errors.New("registry: corrupt referrer entry "+entries[i]), err)
		}
		descs[i] = &desc
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []v1.Descriptor{}
	for _, d := range descs {
		if d != nil && (artifactType == "" || d.ArtifactType == artifactType) {
			out = append(out, *d)
		}
	}
	return out, nil
}

// addReferrer records manifest m, described by desc, as a referrer of its
// subject.
func (ms *ManifestStore) addReferrer(ctx context.Context, m *parsedManifest, desc v1.Descriptor) error {
	b, err := ms.referrerEntry(m, desc)
	if err != nil {
		return err
	}
	return ms.driver().PutContent(ctx, referrerPath(ms.repo.name, m.subject.Digest, desc.Digest), b)
}

// referrerEntry is what the subject's referrers list says of m.
func (ms *ManifestStore) referrerEntry(m *parsedManifest, desc v1.Descriptor) ([]byte, error) {
	return json.Marshal(v1.Descriptor{
		MediaType:    desc.MediaType,
		Digest:       desc.Digest,
		Size:         desc.Size,
		ArtifactType: m.referrerType(),
		Annotations:  m.annotations,
	})
}

// removeReferrer drops referrer's entry under subject; a missing entry is
// fine, as an earlier interrupted delete may have removed it.
func (ms *ManifestStore) removeReferrer(ctx context.Context, subject, referrer digest.Digest) error {
	return driver.RemoveObject(ctx, ms.driver(), referrerPath(ms.repo.name, subject, referrer))
}
