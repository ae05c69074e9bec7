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

// Referrers lists every manifest whose subject is subject, filtered by
// artifactType when it is not empty: ReferrersPage, page after page. Each
// descriptor has the referrer's mediaType, digest, size, annotations, and
// artifactType (its own, else its config's media type for an image
// manifest). A subject with no referrers, or a repository that does not
// exist, gives an empty list: the spec forbids a 404 here.
func (ms *ManifestStore) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	out := []v1.Descriptor{}
	var last digest.Digest
	for {
		page, next, err := ms.ReferrersPage(ctx, subject, artifactType, last)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		last = next
	}
}

// Limits of one page of referrers. Clients read a referrers response of at
// most 4 MiB (oras), and the spec pages a list that does not fit one
// manifest; a page also reads a bounded number of entries, so that a
// filter matching few of many referrers costs each request little. Tests
// lower them.
var (
	maxReferrersBytes = 4<<20 - 1<<10 // the descriptors' JSON, the index around them aside
	maxReferrersRead  = 10000
	referrersBatch    = 256
)

// ReferrersPage lists the referrers of subject in digest order, starting
// after the referrer last ("" from the first), as many as fit a page (see
// maxReferrersBytes). next is the last referrer the page covers, where the
// following page starts; "" when none remain.
func (ms *ManifestStore) ReferrersPage(ctx context.Context, subject digest.Digest, artifactType string, last digest.Digest) (page []v1.Descriptor, next digest.Digest, err error) {
	if _, err := ParseDigest(string(subject)); err != nil {
		return nil, "", err
	}
	dir := referrersPath(ms.repo.name, subject)
	from := ""
	if last != "" {
		if _, err := ParseDigest(string(last)); err != nil {
			return nil, "", err
		}
		from = referrerPath(ms.repo.name, subject, last)
	}
	page = []v1.Descriptor{}
	size, read := 0, 0
	for {
		entries, more, err := walkPage(ctx, ms.driver(), dir, from, referrersBatch)
		if err != nil {
			return nil, "", err
		}
		descs, err := ms.readReferrers(ctx, entries)
		if err != nil {
			return nil, "", err
		}
		for i, d := range descs {
			if d != nil && (artifactType == "" || d.ArtifactType == artifactType) {
				b, err := json.Marshal(d)
				if err != nil {
					return nil, "", err
				}
				if size += len(b) + 1; size > maxReferrersBytes && len(page) > 0 {
					// The page ends before this one, after the last read.
					return page, last, nil
				}
				page = append(page, *d)
			}
			last = referrerAt(entries[i], last)
		}
		read += len(entries)
		if !more {
			return page, "", nil
		}
		if read >= maxReferrersRead {
			return page, last, nil
		}
		from = entries[len(entries)-1]
	}
}

// walkPage returns up to n paths below dir after from, and whether more
// remain.
func walkPage(ctx context.Context, drv driver.Driver, dir, from string, n int) ([]string, bool, error) {
	return page(ctx, drv, dir, from, n, func(p string) (string, bool) { return p, true })
}

// referrerAt is the referrer's digest in an entry's path (…/<alg>/<hex>);
// fallback when the path names none.
func referrerAt(entry string, fallback digest.Digest) digest.Digest {
	if d, ok := digestAt(entry, 1); ok {
		return d
	}
	return fallback
}

// readReferrers reads the entries' descriptors, nil for one deleted since
// it was listed.
func (ms *ManifestStore) readReferrers(ctx context.Context, entries []string) ([]*v1.Descriptor, error) {
	descs := make([]*v1.Descriptor, len(entries))
	err := forEach(len(entries), func(i int) error {
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
	return descs, err
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
