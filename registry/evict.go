package registry

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// A mirror's eviction (GCOptions.Unpulled). A mirror notes each manifest it
// serves (NotePull) in a marker under the repository's _pulled folder, at
// most once in a while per manifest, whose time is the pull's. A collection
// with Unpulled then
//
//  1. removes the tags whose manifest was not pulled within Unpulled and
//     that were not written (fetched, moved) within it either, before it
//     marks (evictTags); a signature's tag of the referrers tag scheme
//     (cosign's sha256-<hex>.sig) stays while its image is pulled or
//     tagged;
//  2. keeps as roots the manifests pulled within Unpulled, beside those
//     the tags left name and the young ones, and removes the other
//     untagged manifests, as DeleteUntagged does, with the blobs only they
//     used;
//  3. removes the markers of manifests the repository no longer holds.
//
// A manifest without a marker (held before eviction was turned on, or
// whose note was lost) counts as pulled at this run, and marking writes
// its marker: eviction never takes what it has not watched for Unpulled.
//
// What goes is fetched again by the next pull that asks for it, and so is
// what a pull during the run was served just before the run removed it:
// the run does not look for pulls after it read the markers, so an image
// goes whole or stays whole.

// NotePull records that manifest d was served now, for a mirror's
// eviction. Not made durable: a crash may bring back the note before it
// (the manifest then goes as much earlier as notes are apart) or lose the
// marker (it then counts as pulled at the next collection).
func (ms *ManifestStore) NotePull(ctx context.Context, d digest.Digest) error {
	return ms.driver().PutState(ctx, pulledPath(ms.repo.name, d), nil)
}

// readPulled reads the repository's pull markers: each manifest's last
// noted pull.
func (m *repoMarker) readPulled(ctx context.Context) error {
	m.pulled = map[digestKey]time.Time{}
	err := m.c.reg.driver.Walk(ctx, pulledRoot(m.ms.repo.name), "", func(fi driver.FileInfo) error {
		d, ok := digestAt(fi.Path, 1)
		if !ok || pulledPath(m.ms.repo.name, d) != fi.Path {
			return nil
		}
		if k, ok := keyOf(d); ok {
			m.pulled[k] = fi.ModTime
		}
		return nil
	})
	if driver.IsNotFound(err) {
		return nil
	}
	return err
}

// pulledSince reports whether manifest d was noted pulled within Unpulled,
// or has no marker (see above).
func (m *repoMarker) pulledSince(d digest.Digest) bool {
	k, ok := keyOf(d)
	if !ok {
		return false
	}
	t, ok := m.pulled[k]
	return !ok || !t.Before(m.c.unpulledCutoff)
}

// noted reports whether manifest d has a marker.
func (m *repoMarker) noted(d digest.Digest) bool {
	k, ok := keyOf(d)
	_, noted := m.pulled[k]
	return ok && noted
}

// adopt writes the marker of manifest d, held without one, as pulled now;
// a dry run only counts it so.
func (m *repoMarker) adopt(ctx context.Context, d digest.Digest) error {
	k, ok := keyOf(d)
	if !ok {
		return nil
	}
	if m.noted(d) || m.c.opts.DryRun {
		return nil
	}
	m.pulled[k] = m.c.reg.now()
	return m.ms.NotePull(ctx, d)
}

// evictTags removes the tags neither written nor pulled within Unpulled
// (step 1 above); with DryRun it only counts them, and marking then
// passes them by. A tag goes only while it names what it named and was
// not written since it was listed (deleteTagIf). Signatures' tags are
// judged last, by their image: pulled, or named by a tag that stays.
func (m *repoMarker) evictTags(ctx context.Context) error {
	tags, err := m.ms.listTagTimes(ctx)
	if err != nil {
		return err
	}
	m.evicted = map[string]bool{}
	staying := map[digest.Digest]bool{} // named by a tag that stays
	type doomed struct {
		listedTag
		d digest.Digest
	}
	var plain, signatures []doomed
	// A tag written lately stays whatever it names; what it names is read
	// only for the signatures' sake (marking reads every tag again).
	anySignature := slices.ContainsFunc(tags, func(t listedTag) bool { return schemaTag(t.name) })
	for _, t := range tags {
		if !anySignature && !t.pushed.Before(m.c.unpulledCutoff) {
			continue
		}
		d, err := m.ms.tagDigest(ctx, t.name)
		if errors.Is(err, ErrManifestUnknown) {
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case schemaTag(t.name):
			signatures = append(signatures, doomed{t, d})
		case !t.pushed.Before(m.c.unpulledCutoff) || m.pulledSince(d):
			staying[d] = true
		default:
			plain = append(plain, doomed{t, d})
		}
	}
	removed := false
	evict := func(t doomed) error {
		if !m.c.opts.DryRun {
			ok, err := m.ms.deleteTagIf(ctx, t.name, t.d, t.pushed)
			if err != nil || !ok {
				return err
			}
			removed = true
		}
		m.evicted[t.name] = true
		m.c.removed(gcCandidate{kind: "tag", repo: m.ms.repo.name, digest: t.d, tag: t.name})
		return nil
	}
	for _, t := range plain {
		if err := evict(t); err != nil {
			return errors.Join(err, m.persistEvictions(ctx, removed))
		}
	}
	for _, t := range signatures {
		image, known := schemaTagSubject(t.name)
		if !known || staying[image] {
			continue
		}
		if m.noted(image) {
			if m.pulledSince(image) {
				continue
			}
		} else if !t.pushed.Before(m.c.unpulledCutoff) || m.pulledSince(t.d) {
			continue // an image not held here: the tag is judged by itself
		}
		if err := evict(t); err != nil {
			return errors.Join(err, m.persistEvictions(ctx, removed))
		}
	}
	return m.persistEvictions(ctx, removed)
}

// schemaTagSubject returns the image a tag of the referrers tag scheme
// names; known is false when the tag cannot name it whole (a sha512
// subject's hex is cut to fit a tag).
func schemaTagSubject(tag string) (d digest.Digest, known bool) {
	alg, rest, _ := strings.Cut(tag, "-")
	hexPart, _, _ := strings.Cut(rest, ".")
	d = digest.Digest(alg + ":" + hexPart)
	return d, alg == "sha256" && d.Validate() == nil
}

// persistEvictions makes the tags' removals durable: a crash bringing a
// tag back after its manifest went would leave it naming nothing.
func (m *repoMarker) persistEvictions(ctx context.Context, removed bool) error {
	if !removed {
		return nil
	}
	return driver.PersistRemovals(context.WithoutCancel(ctx), m.c.reg.driver, tagsPath(m.ms.repo.name))
}

// pullMarkerDigest reads the digest of a pull marker's path (step 3
// above: see sweepMarkers).
func (m *repoMarker) pullMarkerDigest(p string) (digest.Digest, bool) {
	d, ok := digestAt(p, 1)
	return d, ok && pulledPath(m.ms.repo.name, d) == p
}

// dryEvicted reports whether a dry run counted the tag at p, under the
// repository's tags, as evicted. (A real run removed it; the same tag
// found again was filled again since.)
func (m *repoMarker) dryEvicted(p string) bool {
	return m.c.opts.DryRun && m.evicted[path.Base(p)]
}
