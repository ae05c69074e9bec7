package registry

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// Each manifest with a subject leaves its referrers descriptor under the
// subject's digest (referrerPath), written when it is pushed. Listing a
// subject's referrers is then one listing of that prefix, whatever the size
// of the repository, and needs neither the subject nor the payloads.

// Limits of one page of referrers. Clients read a referrers response of at
// most 4 MiB (oras), and the spec pages a list that does not fit one
// manifest; a page also reads a bounded number of entries, so that a
// filter matching few of many referrers costs each request little. Tests
// lower them.
var (
	maxReferrersBytes = 4<<20 - 1<<10 // the descriptors' JSON, the index around them aside
	maxReferrersRead  = 10000
	referrersBatch    = 256 // entries read at once
)

// ReferrersPage lists the manifests whose subject is subject, filtered by
// artifactType when it is not empty, in digest order, starting after the
// referrer last ("" from the first), as many as fit a page (see
// maxReferrersBytes). next is the last referrer the page covers, where the
// following page starts; "" when none remain. Each descriptor has the
// referrer's mediaType, digest, size, annotations, and artifactType (its
// own, else its config's media type for an image manifest). A subject with
// no referrers, or a repository that does not exist, gives an empty page:
// the spec forbids a 404 here.
func (ms *ManifestStore) ReferrersPage(ctx context.Context, subject digest.Digest, artifactType string, last digest.Digest) (page []v1.Descriptor, next digest.Digest, err error) {
	if _, err := ParseDigest(string(subject)); err != nil {
		return nil, "", err
	}
	from := ""
	if last != "" {
		if _, err := ParseDigest(string(last)); err != nil {
			return nil, "", err
		}
		from = referrerPath(ms.repo.name, subject, last)
	}
	page = []v1.Descriptor{}
	size, read := 0, 0
	// take adds a batch of entries, in order, to the page, until the page
	// is full: next then names the last entry it covers. cut says the
	// batch did not fit whole.
	take := func(batch []string) (cut bool, err error) {
		descs, sizes, err := ms.readReferrers(ctx, batch)
		if err != nil {
			return false, err
		}
		for i, d := range descs {
			r, ok := digestAt(batch[i], 1)
			if !ok {
				continue // not an entry Lading wrote
			}
			if d != nil && (artifactType == "" || d.ArtifactType == artifactType) {
				// An entry is json.Marshal of the descriptor, escapes
				// and all: no shorter than what the index writes of it.
				if size += sizes[i] + 1; size > maxReferrersBytes && len(page) > 0 {
					next = last // the page ends before this one
					return true, nil
				}
				page = append(page, *d)
			}
			last = r
		}
		// A page reads a bounded number of entries, once it covers one.
		if read += len(batch); read >= maxReferrersRead && last != "" && referrerPath(ms.repo.name, subject, last) != from {
			next = last
		}
		return false, nil
	}
	var batch []string
	var batchBytes int64
	more := false
	err = ms.driver().Walk(ctx, referrersPath(ms.repo.name, subject), from, func(fi driver.FileInfo) error {
		if next != "" {
			more = true // an entry past a full page
			return driver.ErrStopWalk
		}
		// A batch also ends at a page's worth of bytes: an entry holds its
		// referrer's annotations, up to a manifest's size, and a batch is
		// read and decoded whole.
		batch, batchBytes = append(batch, fi.Path), batchBytes+fi.Size
		if len(batch) < referrersBatch && batchBytes < int64(maxReferrersBytes) {
			return nil
		}
		cut, err := take(batch)
		batch, batchBytes = batch[:0], 0
		if cut {
			more = true
			return driver.ErrStopWalk
		}
		return err
	})
	if err != nil && !driver.IsNotFound(err) {
		return nil, "", err
	}
	if next == "" && len(batch) > 0 {
		if more, err = take(batch); err != nil {
			return nil, "", err
		}
	}
	if !more {
		next = ""
	}
	return page, next, nil
}

// MarshalUnescaped is json.Marshal without its escaping of <, > and &
// (six bytes each), which would let a page of referrers outgrow its bound:
// the referrers index is written with it.
func MarshalUnescaped(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// readReferrers reads the entries' descriptors, nil for one deleted since
// it was listed, and the entries' sizes.
func (ms *ManifestStore) readReferrers(ctx context.Context, entries []string) ([]*v1.Descriptor, []int, error) {
	descs, sizes := make([]*v1.Descriptor, len(entries)), make([]int, len(entries))
	err := forEach(len(entries), func(i int) error {
		b, err := ms.driver().GetContent(ctx, entries[i])
		if driver.IsNotFound(err) {
			return nil // deleted since the listing saw it
		}
		if err != nil {
			return err
		}
		var desc v1.Descriptor
		err = json.Unmarshal(b, &desc)
		if r, ok := digestAt(entries[i], 1); err != nil || (ok && desc.Digest != r) {
			// Damaged on disk: left out, so that one entry does not hide
			// every other referrer of the subject. A push of the
			// referrer, or fsck's repair, writes it again.
			if ms.repo.reg.damagedReferrers.Allow() {
				ms.repo.reg.log.Warn("referrer entry damaged, left out of the list: push the referrer again, or run lading fsck --repair (logged once a minute)", "entry", entries[i], "err", err)
			}
			return nil
		}
		descs[i], sizes[i] = &desc, len(b)
		return nil
	})
	return descs, sizes, err
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
