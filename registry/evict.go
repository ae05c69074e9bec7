package registry

import (
	"context"
	"errors"
	"path"
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
//     marks (evictTags);
//  2. keeps as roots the manifests pulled within Unpulled, beside those
//     the tags left name and the young ones, and removes the other
//     untagged manifests, as DeleteUntagged does, with the blobs only they
//     used;
//  3. removes the markers of manifests the repository no longer holds.
//
// What goes is fetched again by the next pull that asks for it. A pull
// during the run, of a manifest the run found unpulled, may lose that race:
// the next pull fetches it again.

// NotePull records that manifest d was served now, for a mirror's
// eviction. Not made durable: a crash loses at most the note, and the
// manifest may then be evicted as many days early as the notes are apart.
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

// pulledSince reports whether manifest d was noted pulled within Unpulled.
func (m *repoMarker) pulledSince(d digest.Digest) bool {
	k, ok := keyOf(d)
	if !ok {
		return false
	}
	t, ok := m.pulled[k]
	return ok && !t.Before(m.c.unpulledCutoff)
}

// evictTags removes the tags neither written nor pulled within Unpulled
// (step 1 above); with DryRun it only counts them, and marking then
// passes them by. A tag goes only while it names what it named and was
// not written since it was listed (deleteTagIf).
func (m *repoMarker) evictTags(ctx context.Context) error {
	tags, err := m.ms.listTagTimes(ctx)
	if err != nil {
		return err
	}
	m.evicted = map[string]bool{}
	removed := false
	for _, t := range tags {
		if !t.pushed.Before(m.c.unpulledCutoff) {
			continue
		}
		d, err := m.ms.tagDigest(ctx, t.name)
		if errors.Is(err, ErrManifestUnknown) {
			continue
		}
		if err != nil {
			return err
		}
		if m.pulledSince(d) {
			continue
		}
		if !m.c.opts.DryRun {
			ok, err := m.ms.deleteTagIf(ctx, t.name, d, t.pushed)
			if err != nil {
				return errors.Join(err, m.persistEvictions(ctx, removed))
			}
			if !ok {
				continue
			}
			removed = true
		}
		m.evicted[t.name] = true
		m.c.removed(gcCandidate{kind: "tag", repo: m.ms.repo.name, digest: d, tag: t.name})
	}
	return m.persistEvictions(ctx, removed)
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

// pulledMeanwhile reports whether the manifest candidate was noted pulled
// within Unpulled since marking read the markers: it stays.
func (c *collector) pulledMeanwhile(ctx context.Context, cand *gcCandidate) (bool, error) {
	if c.opts.Unpulled <= 0 {
		return false, nil
	}
	fi, err := driver.StatObject(ctx, c.reg.driver, pulledPath(cand.repo, cand.digest))
	if driver.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !fi.ModTime.Before(c.unpulledCutoff), nil
}

// tagEvicted reports whether the tag at p, under the repository's tags,
// was evicted in this run.
func (m *repoMarker) tagEvicted(p string) bool { return m.evicted[path.Base(p)] }
