package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// eachRepository calls fn for every repository holding anything, found by
// listing /repositories level by level rather than through the catalog, so
// a repository whose catalog marker was lost is collected like any other
// (its links must count, or its blobs would go).
func (r *Registry) eachRepository(ctx context.Context, fn func(name string) error) error {
	return r.eachRepositoryUnder(ctx, reposRoot, fn)
}

func (r *Registry) eachRepositoryUnder(ctx context.Context, dir string, fn func(name string) error) error {
	children, err := r.driver.List(ctx, dir)
	if driver.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	isRepo := false
	var nested []string
	for _, child := range children {
		if strings.HasPrefix(path.Base(child), "_") {
			isRepo = true
		} else {
			nested = append(nested, child)
		}
	}
	if name := strings.TrimPrefix(dir, reposRoot+"/"); isRepo && ValidateName(name) == nil {
		if err := fn(name); err != nil {
			return err
		}
	}
	for _, sub := range nested {
		if err := r.eachRepositoryUnder(ctx, sub, fn); err != nil {
			return err
		}
	}
	return nil
}

// maxVisited caps the images a repository's marking remembers having
// followed. Past it an image reached twice is followed twice: slower,
// never wrong, since the graph has no cycles (a digest cannot name itself).
// Indexes and subjects, which lead on to others, are always remembered:
// followed again, a chain of indexes each naming the next twice would cost
// reads twice its length's power. A variable for tests.
var maxVisited = 1 << 17

// repoMarker marks one repository.
type repoMarker struct {
	c         *collector
	ms        *ManifestStore
	kept      *digestSet // manifests kept
	uses      *digestSet // digests kept manifests need linked
	records   *digestSet // manifests the repository holds
	visited   map[digestKey]struct{}
	referrers map[digestKey][]digest.Digest // subject → referrers, as indexed
	// unlisted holds the referrers the index lacks (a partial restore;
	// fsck reports them), found by the subject their records name.
	unlisted map[digestKey][]digest.Digest
	// forgot is set once a kept manifest went unremembered (maxVisited);
	// relisting while marking again for the unlisted referrers (mark).
	forgot, relisting bool
	// sweeping is set once kept is being read: a manifest the sweep finds
	// pinned or re-written then only adds what it uses.
	sweeping bool
	// With Unpulled (evict.go): each manifest's last noted pull, and the
	// tags evicted in this run.
	pulled  map[digestKey]time.Time
	evicted map[string]bool
}

// collectRepository marks one repository, removes its unkept manifests and
// unused links, and adds what its kept manifests use, and its surviving
// links, to the blob mark set.
func (c *collector) collectRepository(ctx context.Context, name string) error {
	repo, err := c.reg.stored(name)
	if err != nil {
		return err
	}
	m := &repoMarker{
		c:       c,
		ms:      repo.Manifests(),
		kept:    newDigestSet(c.opts.TempDir, 0),
		uses:    newDigestSet(c.opts.TempDir, 0),
		records: newDigestSet(c.opts.TempDir, 0),
		visited: map[digestKey]struct{}{},
	}
	defer m.kept.Close()
	defer m.uses.Close()
	defer m.records.Close()
	if err := m.indexReferrers(ctx); err != nil {
		return err
	}
	if c.opts.Unpulled > 0 {
		if err := m.readPulled(ctx); err != nil {
			return err
		}
		if err := m.evictTags(ctx); err != nil {
			return err
		}
	}
	if err := m.mark(ctx); err != nil {
		return err
	}
	if err := m.sweepManifests(ctx); err != nil {
		return err
	}
	if err := m.sweepMarkers(ctx, tagRefsRoot(name), m.tagMarkerDigest); err != nil {
		return err
	}
	if c.opts.Unpulled > 0 {
		if err := m.sweepMarkers(ctx, pulledRoot(name), m.pullMarkerDigest); err != nil {
			return err
		}
	}
	return m.sweepLinks(ctx)
}

// indexReferrers reads the repository's referrer entries once, so that
// following a kept manifest's referrers costs no listing.
func (m *repoMarker) indexReferrers(ctx context.Context) error {
	m.referrers = map[digestKey][]digest.Digest{}
	m.unlisted = map[digestKey][]digest.Digest{}
	root := repoPath(m.ms.repo.name) + "/_referrers"
	err := m.c.reg.driver.Walk(ctx, root, "", func(fi driver.FileInfo) error {
		// <root>/<subject alg>/<subject hex>/<alg>/<hex>
		segs := strings.Split(strings.TrimPrefix(fi.Path, root+"/"), "/")
		if len(segs) != 4 {
			return nil
		}
		subject, ok1 := keyOf(digest.Digest(segs[0] + ":" + segs[1]))
		referrer := digest.Digest(segs[2] + ":" + segs[3])
		if _, ok2 := keyOf(referrer); ok1 && ok2 {
			m.referrers[subject] = append(m.referrers[subject], referrer)
		}
		return nil
	})
	if driver.IsNotFound(err) {
		return nil
	}
	return err
}

// mark keeps the repository's roots and all they reach.
func (m *repoMarker) mark(ctx context.Context) error {
	if err := m.markRoots(ctx); err != nil {
		return err
	}
	if !m.forgot || len(m.unlisted) == 0 {
		return nil
	}
	// A subject kept, and not remembered, before its unlisted referrers
	// were found did not keep them: mark again, knowing them all.
	clear(m.visited)
	m.relisting = true
	return m.markRoots(ctx)
}

// markRoots keeps what tags point at, then young manifests (and on a
// mirror those pulled lately), and (unless untagged manifests are
// collected) every manifest that is not a referrer.
func (m *repoMarker) markRoots(ctx context.Context) error {
	drv := m.c.reg.driver
	err := drv.Walk(ctx, tagsPath(m.ms.repo.name), "", func(fi driver.FileInfo) error {
		if m.dryEvicted(fi.Path) {
			return nil
		}
		b, err := drv.GetContent(ctx, fi.Path)
		if driver.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		d := digest.Digest(b)
		if validateDigest(d) != nil {
			return nil // names nothing; fsck reports it
		}
		return m.keep(ctx, d, nil, reach{named: true})
	})
	if err != nil && !driver.IsNotFound(err) {
		return err
	}
	err = drv.Walk(ctx, repoPath(m.ms.repo.name)+"/_manifests", "", func(fi driver.FileInfo) error {
		m.c.prog.Manifests++
		m.c.progress("mark")
		d, ok := digestAt(fi.Path, 1)
		if !ok {
			return nil
		}
		m.records.Add(d)
		if m.c.opts.Unpulled > 0 {
			if err := m.adopt(ctx, d); err != nil {
				return err
			}
		}
		if !fi.ModTime.Before(m.c.untaggedCutoff) || m.c.opts.Unpulled > 0 && m.pulledSince(d) {
			return m.keep(ctx, d, nil, byRecord)
		}
		if k, ok := keyOf(d); ok {
			if _, seen := m.visited[k]; seen {
				return nil // kept already: no need to read its record again
			}
		}
		raw, err := m.c.reg.driver.GetContent(ctx, fi.Path)
		if driver.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		// Read even when untagged manifests are collected: a referrer the
		// index lacks is known by its record alone. (The sweep reads the
		// record of each it removes again, to check it.)
		var rec manifestRecord
		if json.Unmarshal(raw, &rec) == nil && rec.Subject != nil {
			return m.referrerFound(ctx, d, &rec)
		}
		if m.c.opts.DeleteUntagged {
			return nil
		}
		return m.keep(ctx, d, &rec, byRecord)
	})
	if driver.IsNotFound(err) {
		return nil
	}
	return err
}

// referrerFound keeps referrer d, which marking has not reached, if its
// subject is kept already, and notes it under its subject if the index
// does not list it there: a subject kept later keeps it then.
func (m *repoMarker) referrerFound(ctx context.Context, d digest.Digest, rec *manifestRecord) error {
	sk, ok := keyOf(rec.Subject.Digest)
	if !ok {
		return nil // a subject the store cannot hold is never kept
	}
	if !m.relisting {
		// Indexed referrers come sorted from the walk.
		if _, listed := slices.BinarySearch(m.referrers[sk], d); !listed {
			m.unlisted[sk] = append(m.unlisted[sk], d)
		}
	}
	if _, kept := m.visited[sk]; kept {
		return m.keep(ctx, d, rec, byRecord)
	}
	return nil
}

// reach says how marking came to a manifest.
type reach struct {
	// named: by a tag, an index or an entry of the referrers index. A
	// tag and an entry are published only once the manifest's bytes are
	// durable, and an index is pushed only over children whose bytes
	// are, which the collector keeps while it keeps the index: its bytes
	// missing under its record are damage. An index may also name a
	// child deleted by digest (no record), or list a plain blob.
	named bool
	// size is an index's word for its child's size, 0 from a tag or an
	// entry.
	size int64
}

// markReadMax bounds the bytes of a manifest without a record that marking
// reads, whatever the index naming it says (it may list a layer).
const markReadMax = 64 << 20

// byRecord is a manifest reached by its own record (young, untagged, a
// referrer of a kept subject): a record a crash kept without its bytes
// reads as nothing.
var byRecord = reach{}

// keep marks manifest d and everything it reaches: its bytes, config and
// layers, its index children, and its referrers. rec, when known, saves a
// read.
func (m *repoMarker) keep(ctx context.Context, d digest.Digest, rec *manifestRecord, via reach) error {
	k, ok := keyOf(d)
	if !ok {
		return nil
	}
	if _, seen := m.visited[k]; seen {
		return nil
	}
	recorded := true
	if rec == nil {
		raw, err := m.c.reg.driver.GetContent(ctx, manifestLinkPath(m.ms.repo.name, d))
		if driver.IsNotFound(err) && !via.named {
			return nil // a referrer nothing lists, or a concurrent push's
		} else if driver.IsNotFound(err) {
			// Named without a record: one lost (a partial restore; fsck
			// reports it), or a child deleted while an index names it.
			// Its bytes, when there, still say what it needs.
			recorded = false
		} else if err != nil {
			return err
		}
		// A damaged record (fsck reports it) still keeps what the
		// payload, read without its media type, points at.
		rec = &manifestRecord{}
		_ = json.Unmarshal(raw, rec)
	}
	// Unrecorded manifests, rare, are always remembered: their media
	// type is unknown, and one may be an index.
	if len(m.visited) < maxVisited || !recorded || isIndex(rec.MediaType) || len(m.referrers[k]) > 0 || len(m.unlisted[k]) > 0 {
		m.visited[k] = struct{}{}
	} else {
		m.forgot = true
	}
	if !m.sweeping {
		m.kept.Add(d)
	}
	m.uses.Add(d)
	// Its bytes stay whatever became of its link: a client may have
	// deleted the manifest's digest as a blob, and the manifest is still
	// read from them.
	m.c.marked.Add(d)
	if !recorded {
		// Without a record it may be no manifest at all (an index may
		// list a plain blob): one larger than a manifest can be is not
		// read, and bytes that are no manifest reference nothing.
		// A manifest may have been pushed under a larger limit than
		// today's: a tag names nothing else, and an index's word for
		// the size stands for the limit at its push; either up to a
		// bound on what marking holds in memory.
		fi, err := driver.StatObject(ctx, m.c.reg.driver, blobPath(d))
		if err != nil && !driver.IsNotFound(err) {
			return err
		}
		trusted := via.size == 0 || fi.Size == via.size
		if err == nil && fi.Size > max(m.c.reg.maxMan, DefaultMaxManifestSize) && (!trusted || fi.Size > markReadMax) {
			return m.keepReferrers(ctx, k)
		}
	}
	payload, err := m.c.reg.driver.GetContent(ctx, blobPath(d))
	if driver.IsNotFound(err) && via.named && recorded {
		return m.damaged(d, "are missing")
	} else if driver.IsNotFound(err) && via.named {
		// A name left without record or bytes (fsck's repair of lost
		// bytes removes the record; an index may still name it): what
		// the bytes used is unknown, but its signatures and SBOMs are
		// still its, for when it is pushed again.
		return m.keepReferrers(ctx, k)
	} else if driver.IsNotFound(err) {
		return nil // a record a crash kept without its bytes
	}
	if err != nil {
		return err
	}
	// Bytes that are not the manifest's cannot tell what it references,
	// which may be healthy still: the run stops before removing any of it.
	// The whole run stops, rather than keep this repository whole and
	// collect the rest: damage seldom comes alone (a failing disk, a
	// partial restore), and fsck finds what else it reached.
	if got := d.Algorithm().FromBytes(payload); got != d {
		return m.damaged(d, "hash to "+got.String())
	}
	refs, err := readReferences(payload, rec.MediaType)
	if err != nil && !recorded {
		return m.keepReferrers(ctx, k) // a blob, not a manifest
	} else if err != nil {
		return m.damaged(d, "do not parse ("+err.Error()+")")
	}
	for _, ref := range refs {
		m.uses.Add(ref.desc.Digest)
		// The bytes stay whether or not the repository still links them: a
		// client's DELETE of the blob, or a lost link, takes the link alone
		// (sweepLinks), and the image pulls again once it is linked back
		// (fsck --repair, or a push of the layer, which finds the bytes
		// stored). The link is not put back here: its delete was asked
		// for, and the collector only removes.
		m.c.marked.Add(ref.desc.Digest)
		if ref.kind == refManifest {
			if err := m.keep(ctx, ref.desc.Digest, nil, reach{named: true, size: ref.desc.Size}); err != nil {
				return err
			}
		}
	}
	return m.keepReferrers(ctx, k)
}

// keepReferrers keeps the referrers of the manifest of key k, listed or
// found by their records.
func (m *repoMarker) keepReferrers(ctx context.Context, k digestKey) error {
	for i, referrers := range [][]digest.Digest{m.referrers[k], m.unlisted[k]} {
		for _, referrer := range referrers {
			if err := m.keep(ctx, referrer, nil, reach{named: i == 0}); err != nil {
				return err
			}
		}
	}
	return nil
}

// damaged stops a run at kept manifest d, whose stored bytes cannot tell
// what it references (problem says why).
func (m *repoMarker) damaged(d digest.Digest, problem string) error {
	return fmt.Errorf("registry: repository %q, manifest %s: its stored bytes %s; the garbage collection stopped before removing anything it may reference: run lading fsck",
		m.ms.repo.name, d, problem)
}

// storedReferences lists what a stored manifest needs the repository to
// hold. Stored manifests were valid when pushed; one that no longer passes
// validation is read loosely, so that its layers are kept, not dropped.
func storedReferences(payload []byte, mediaType string) []reference {
	refs, _ := readReferences(payload, mediaType)
	return refs
}

// readReferences is storedReferences, with the error of bytes that do not
// read even loosely (what they told so far beside it).
func readReferences(payload []byte, mediaType string) (refs []reference, err error) {
	pm, perr := parseManifest(payload, mediaType)
	if perr != nil {
		var doc manifestDoc
		err = json.Unmarshal(payload, &doc)
		pm = &parsedManifest{config: doc.Config, layers: doc.Layers, manifests: doc.Manifests}
	}
	return slices.DeleteFunc(pm.references(), func(r reference) bool { return r.kind == refExternal }), err
}

// sweepManifests removes the repository's manifests that marking did not
// keep and that are older than the untagged grace.
func (m *repoMarker) sweepManifests(ctx context.Context) error {
	kept, err := m.kept.Iterate()
	if err != nil {
		return err
	}
	defer kept.Close()
	m.sweeping = true
	name := m.ms.repo.name
	err = m.c.reg.driver.Walk(ctx, repoPath(name)+"/_manifests", "", func(fi driver.FileInfo) error {
		d, ok := digestAt(fi.Path, 1)
		if !ok || manifestLinkPath(name, d) != fi.Path {
			return nil
		}
		k, _ := keyOf(d)
		if kept.Contains(k) || !fi.ModTime.Before(m.c.untaggedCutoff) {
			return nil
		}
		return m.c.remove(ctx, gcCandidate{kind: "manifest", repo: name, digest: d, path: fi.Path, ms: m.ms,
			// A writer is using it after all: so is everything it points at.
			kept: func(ctx context.Context) error { return m.keep(ctx, d, nil, byRecord) }})
	})
	return m.c.endSweep(ctx, err, kept)
}

// sweepMarkers removes the markers under root (tags.go's, evict.go's)
// of digests the repository held no manifest of when marking listed its
// manifests; of reads a marker's digest from its path.
func (m *repoMarker) sweepMarkers(ctx context.Context, root string, of func(p string) (digest.Digest, bool)) error {
	records, err := m.records.Iterate()
	if err != nil {
		return err
	}
	defer records.Close()
	name := m.ms.repo.name
	err = m.c.reg.driver.Walk(ctx, root, "", func(fi driver.FileInfo) error {
		d, ok := of(fi.Path)
		if !ok {
			return nil
		}
		k, _ := keyOf(d)
		if records.Contains(k) || !fi.ModTime.Before(m.c.cutoff) {
			return nil
		}
		// The re-check keeps a marker whose record is back.
		return m.c.remove(ctx, gcCandidate{kind: "marker", repo: name, digest: d, path: fi.Path})
	})
	return m.c.endSweep(ctx, err, records)
}

// tagMarkerDigest reads the digest of a tag marker's path:
// <root>/<alg>/<hex>/<tag>.
func (m *repoMarker) tagMarkerDigest(p string) (digest.Digest, bool) {
	d, ok := digestAt(path.Dir(p), 1)
	return d, ok && tagRefsPath(m.ms.repo.name, d) == path.Dir(p)
}

// sweepLinks removes links no kept manifest uses that are older than the
// grace; every other link's digest joins the blob mark set.
func (m *repoMarker) sweepLinks(ctx context.Context) error {
	uses, err := m.uses.Iterate()
	if err != nil {
		return err
	}
	defer uses.Close()
	name := m.ms.repo.name
	err = m.c.reg.driver.Walk(ctx, repoPath(name)+"/_layers", "", func(fi driver.FileInfo) error {
		m.c.prog.Links++
		d, ok := digestAt(fi.Path, 1)
		if !ok || layerLinkPath(name, d) != fi.Path {
			return nil
		}
		k, _ := keyOf(d)
		if uses.Contains(k) || !fi.ModTime.Before(m.c.cutoff) {
			m.c.marked.addKey(k)
			return nil
		}
		return m.c.remove(ctx, gcCandidate{kind: "link", repo: name, digest: d, path: fi.Path,
			kept: func(context.Context) error { m.c.marked.addKey(k); return nil }})
	})
	return m.c.endSweep(ctx, err, uses)
}

// isIndex reports a media type of manifests that name other manifests.
func isIndex(mediaType string) bool {
	return mediaType == MediaTypeOCIIndex || mediaType == MediaTypeDockerManifestList
}
